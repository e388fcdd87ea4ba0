"""`rt-rl bench soak`: a long run of the live graph; does memory grow, does timing drift?

Runs `rt-rl launch` for `--duration` seconds (default 600) and reads the run's timeline.jsonl (one
record every 5 s: each node's resident memory, the arbiter's control period over its last 60 s).
Reports, per node, resident memory after the first minute and at the end (growth in %), and the
control period p99 of the first minute against the last minute. Writes a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rt_rl.bench.graph import bench_env


def soak_report(records: list[dict], settle: float = 60.0) -> dict:
    """From timeline records: memory growth per node after `settle` s, and the 60 s rolling period
    p99 at the first record >= `settle` s against the last record. Pure: tested without a graph."""
    later = [r for r in records if r["t"] >= settle]
    if len(later) < 2:
        raise ValueError(f"the run needs records beyond {settle:g} s (got {len(records)} records)")
    first, last = later[0], later[-1]
    memory = {}
    for node, kb0 in first["rss_kb"].items():
        kb1 = last["rss_kb"].get(node)
        if kb0 and kb1:
            memory[node] = {
                "rss_mb_first": round(kb0 / 1024, 1),
                "rss_mb_last": round(kb1 / 1024, 1),
                "growth_pct": round(100.0 * (kb1 - kb0) / kb0, 2),
            }
    p_first = (first.get("recent_period_ms") or {}).get("p99")
    p_last = (last.get("recent_period_ms") or {}).get("p99")
    return {
        "t_first": first["t"],
        "t_last": last["t"],
        "memory": memory,
        "max_growth_pct": max((m["growth_pct"] for m in memory.values()), default=None),
        "period_p99_first_minute_ms": p_first,
        "period_p99_last_minute_ms": p_last,
        "period_p99_change_ms": round(p_last - p_first, 3)
        if p_first is not None and p_last is not None
        else None,
    }


def markdown(report: dict, command: str, summary: dict) -> str:
    lines = [
        "# Soak run\n",
        f"`{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores.\n",
        f"Resident memory per node at {report['t_first']:g} s (after the first minute) and at "
        f"{report['t_last']:g} s:\n",
        "| node | RSS first (MB) | RSS last (MB) | growth (%) |",
        "|---|---|---|---|",
    ]
    for node, m in report["memory"].items():
        lines.append(f"| {node} | {m['rss_mb_first']} | {m['rss_mb_last']} | {m['growth_pct']} |")
    lines += [
        "",
        f"Control period p99 over the first minute: {report['period_p99_first_minute_ms']} ms; over the last "
        f"minute: {report['period_p99_last_minute_ms']} ms (change {report['period_p99_change_ms']} ms). "
        f"Whole run: fresh ratio {summary.get('fresh_action_ratio')}, period p50/p99/max "
        f"{summary['control']['period_ms']}, graph CPU {summary.get('cpu_percent_total')} % of one core.",
        "",
        "How it is measured: VmRSS from /proc every 5 s by the launcher; period = difference of consecutive "
        "command publish times in the arbiter (monotonic clock), p99 over a rolling 60 s window.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rt-rl bench soak", description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="config/bench_100hz.yaml", help="graph parameters file")
    ap.add_argument("--workers", type=int, default=5, help="staggered workers")
    ap.add_argument("--duration", type=float, default=600.0, help="seconds measured")
    ap.add_argument("--out", default="docs/results/bench_soak.md", help="Markdown report")
    a = ap.parse_args(argv)
    if a.duration < 130:
        print(
            "rt-rl bench soak: error: --duration must be >= 130 s (two minutes to compare)", file=sys.stderr
        )
        return 2
    env = bench_env()
    with tempfile.TemporaryDirectory(prefix="rt_rl_soak_") as tmp:
        run_dir = Path(tmp) / "run"
        cmd = [
            sys.executable,
            "-m",
            "rt_rl.cli",
            "launch",
            a.params,
            "--workers",
            str(a.workers),
            "--duration",
            str(a.duration),
            "--run-dir",
            str(run_dir),
        ]
        proc = subprocess.run(cmd, env=env)
        if proc.returncode != 0:
            print(f"rt-rl bench soak: error: launch failed ({proc.returncode})", file=sys.stderr)
            return proc.returncode
        records = [json.loads(line) for line in (run_dir / "timeline.jsonl").read_text().splitlines()]
        summary = json.loads((run_dir / "summary.json").read_text())
    report = soak_report(records)
    command = "rt-rl bench soak " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(report, command.strip(), summary)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(text)
    Path(a.out).with_suffix(".json").write_text(json.dumps({"report": report, "summary": summary}, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
