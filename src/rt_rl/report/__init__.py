"""`rt-rl report`: one self-contained HTML page describing one run, from its bag or its run directory.

  rt-rl report RUN_DIR_OR_BAG [-o report.html]

RUN_DIR_OR_BAG is a run directory of `rt-rl launch` (runs/<time>: bag_<time>/, timeline.jsonl,
params.yaml, summary.json) or a rosbag2 bag directory (metadata.yaml and an .mcap). The page shows the
command inter-arrival at the recorder, the fresh-action ratio over time, the action age at the recorder,
the workers' inference spans against the command times (the staggering), the episode returns, and the
run's parameters and summary. Every image is an inlined PNG: the page fetches nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rt_rl.report.load import ReportError, load_run, one_line
from rt_rl.report.page import render_html


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="rt-rl report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("path", help="run directory (runs/<time>) or rosbag2 bag directory")
    ap.add_argument("-o", "--output", default="report.html", help="HTML file to write (default report.html)")
    ap.add_argument(
        "--summary", help="the run's summary JSON (default: found in the run directory or runs/demo)"
    )
    ap.add_argument(
        "--window", type=float, default=0.3, help="seconds of the staggering picture, mid-run (default 0.3)"
    )
    a = ap.parse_args(argv)
    if a.window <= 0:
        ap.error("--window must be > 0")
    started = time.monotonic()
    try:
        run = load_run(Path(a.path), Path(a.summary) if a.summary else None)
        page = render_html(run, window_s=a.window)
    except ReportError as e:
        print(f"rt-rl report: error: {one_line(str(e))}", file=sys.stderr)
        return 2
    out = Path(a.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    print(f"rt-rl report: wrote {out} ({len(page) / 1e6:.2f} MB) in {time.monotonic() - started:.1f} s")
    return 0
