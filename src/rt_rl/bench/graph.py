"""`rt-rl bench graph`: the live graph's timing against Paper A's prediction, on this machine.

Runs the real graph (separate processes over DDS) once per worker count N with a random policy and
`synthetic_latency` = 4 control periods, and compares the measured fresh-action ratio with
min(1, N * period / T) computed from the T measured in the same run. Writes a table (Markdown), the raw
summaries (JSON) and a plot (PNG).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm


def run_once(params: str, workers: int, latency: float, duration: float, run_dir: Path) -> dict:
    summary = run_dir / "summary.json"
    cmd = [
        sys.executable,
        "-m",
        "rt_rl.cli",
        "launch",
        params,
        "--workers",
        str(workers),
        "--synthetic-latency",
        str(latency),
        "--duration",
        str(duration),
        "--summary",
        str(summary),
        "--run-dir",
        str(run_dir),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"launch with {workers} worker(s) failed ({proc.returncode}): {proc.stderr.strip()[-500:]}"
        )
    return json.loads(summary.read_text())


def table(rows: list[dict], period_ms: float) -> str:
    head = (
        "| N | fresh ratio | predicted min(1,N·P/T) | T mean (ms) | period p50 / p99 / max (ms) | "
        "action age p50 / p99 (ms) | age − T (ms) | fallback ticks | sim RTF |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        c, age = r["control"], r["action_age_ms"]
        p = c["period_ms"]
        gap = age["p50"] - r["inference_ms_mean"] if age["p50"] is not None else None
        lines.append(
            f"| {r['num_workers']} | {r['fresh_action_ratio']:.3f} | {r['predicted_fresh_action_ratio']:.3f} | "
            f"{r['inference_ms_mean']:.2f} | {p['p50']:.2f} / {p['p99']:.2f} / {p['max']:.2f} | "
            f"{age['p50']:.1f} / {age['p99']:.1f} | {gap:.1f} | {r['fallback_ticks']} | "
            f"{r['sim']['real_time_factor']:.4f} |"
        )
    return "\n".join(lines) + f"\n\nControl period P = {period_ms:g} ms.\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["num_workers"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(n, [r["predicted_fresh_action_ratio"] for r in rows], "k--", label="min(1, N·P/T), measured T")
    a.plot(n, [r["fresh_action_ratio"] for r in rows], "o-", label="live graph")
    a.set(
        xlabel="inference workers N", ylabel="fresh-action ratio", ylim=(0, 1.05), title="Inaction (Paper A)"
    )
    a.set_xticks(n)
    a.legend()
    b.plot(n, [r["inference_ms_mean"] for r in rows], "k--", label="inference time T")
    b.plot(n, [r["action_age_ms"]["p50"] for r in rows], "o-", label="action age p50")
    b.plot(n, [r["action_age_ms"]["p99"] for r in rows], "s:", label="action age p99")
    b.set(
        xlabel="inference workers N",
        ylabel="ms",
        title="Delay: staggering does not remove it",
        ylim=(0, None),
    )
    b.set_xticks(n)
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rt-rl bench graph", description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="config/bench_100hz.yaml")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--latency-periods", type=float, default=4.0, help="synthetic latency in control periods")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds measured per run")
    ap.add_argument("--out", default="docs/bench_graph", help="output prefix (.md, .json, .png)")
    a = ap.parse_args(argv)
    import yaml

    rate = yaml.safe_load(Path(a.params).read_text())["actuator_arbiter"]["ros__parameters"][
        "control_rate_hz"
    ]
    period = 1.0 / rate
    latency = a.latency_periods * period
    rows = []
    with tempfile.TemporaryDirectory(prefix="rt_rl_bench_") as tmp:
        for n in tqdm(a.workers, desc="bench graph", unit="run"):
            rows.append(run_once(a.params, n, latency, a.duration, Path(tmp) / f"n{n}"))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "rt-rl bench graph " + " ".join(argv if argv is not None else sys.argv[1:])
    text = (
        f"# Live graph timing\n\n`{command.strip()}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{a.duration:g} s measured per run, synthetic latency {latency * 1e3:g} ms.\n\n"
        + table(rows, period * 1e3)
        + "\n"
        + rows[0]["measurement"]
        + "\n"
    )
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2))
    plot(rows, out.with_suffix(".png"))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
