"""`rt-rl bench graph`: the live graph's timing and CPU against Paper A's prediction, on this machine.

Runs the real graph (separate processes over DDS) `--repeat` times per worker count N with a random
policy and `synthetic_latency` = 4 control periods, each run beside an outside subscriber (a plain
rclpy node at normal priority on the command topic: what the rest of the machine sees) and, with
`--busy-loop`, beside a process spinning on one core. Reports min / median / max over the runs of
the fresh-action ratio (against min(1, N * period / T) with T measured in the same run), control
period, action age, the outside subscriber's inter-arrival times, the graph's steady-state CPU and
the startup time. Writes a table (Markdown), the raw summaries (JSON) and a plot (PNG).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from rt_rl.bench.probe import inter_arrival_ms

BUSY_LOOP = "while True: pass"


def bench_env() -> dict[str, str]:
    """The environment of a benchmark's processes: its own ROS domain (unless the caller set one) and
    localhost discovery, so a run does not meet another graph on the network."""
    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", str(random.randint(100, 200)))
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return env


def run_once(
    params: str,
    workers: int,
    latency: float,
    duration: float,
    run_dir: Path,
    busy_loop: bool,
    record: Path | None = None,
) -> dict:
    """One launch with the outside probe (and a busy loop, and recording into `record`); returns the
    summary plus `outside`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    env = bench_env()
    summary, probe_out = run_dir / "summary.json", run_dir / "probe.json"
    probe = subprocess.Popen([sys.executable, "-m", "rt_rl.bench.probe", str(probe_out)], env=env)
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if busy_loop else None
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
        "--quiet",
        *(["--record", str(record)] if record is not None else []),
    ]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    finally:
        wall_s = time.monotonic() - t0
        if busy is not None:
            busy.kill()
            busy.wait()
        probe.send_signal(signal.SIGINT)
        probe.wait(timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(
            f"launch with {workers} worker(s) failed ({proc.returncode}): {proc.stderr.strip()[-500:]}"
        )
    s = json.loads(summary.read_text())
    p = json.loads(probe_out.read_text())
    start = s["window_start_wall"]
    s["outside"] = inter_arrival_ms(p["wall"], p["mono"], start, start + s["measured_s"])
    s["launch_wall_s"] = round(wall_s, 2)
    s["busy_loop"] = busy_loop
    return s


def spread(values: list[float], fmt: str = "{:.3f}") -> str:
    """median (min-max) of the runs (None and NaN left out)."""
    v = [x for x in values if x is not None and x == x]
    if not v:
        return "-"
    if len(v) == 1:
        return fmt.format(v[0])
    return f"{fmt.format(statistics.median(v))} ({fmt.format(min(v))}-{fmt.format(max(v))})"


def table(groups: dict[int, list[dict]], period_ms: float) -> str:
    head = (
        "| N | runs | fresh ratio | predicted min(1,N·P/T) | period p99 (ms) | period max (ms) | "
        "outside subscriber period p99 (ms) | action age p50 (ms) | T mean (ms) | graph CPU (% of one core) | "
        "ready after (s) |"
    )
    lines = [head, "|" + "---|" * 11]
    for n, runs in groups.items():
        lines.append(
            f"| {n} | {len(runs)} | {spread([r['fresh_action_ratio'] for r in runs])} | "
            f"{spread([r['predicted_fresh_action_ratio'] for r in runs])} | "
            f"{spread([r['control']['period_ms']['p99'] for r in runs], '{:.2f}')} | "
            f"{spread([r['control']['period_ms']['max'] for r in runs], '{:.2f}')} | "
            f"{spread([r['outside']['p99'] for r in runs], '{:.2f}')} | "
            f"{spread([r['action_age_ms']['p50'] for r in runs], '{:.1f}')} | "
            f"{spread([r['inference_ms_mean'] for r in runs], '{:.2f}')} | "
            f"{spread([r['cpu_percent_total'] for r in runs], '{:.1f}')} | "
            f"{spread([r['startup_s'] for r in runs], '{:.1f}')} |"
        )
    return (
        "\n".join(lines)
        + f"\n\nEach cell: median (min-max) over the runs. Control period P = {period_ms:g} ms.\n"
    )


def cpu_table(groups: dict[int, list[dict]]) -> str:
    """Per node, the workers summed and as the mean of one."""

    def split(run: dict) -> dict[str, float]:
        cpu = run["cpu_percent"]
        workers = [v for k, v in cpu.items() if k.startswith("inference_worker") and v is not None]
        out = {k: v for k, v in cpu.items() if not k.startswith("inference_worker")}
        out["workers (sum)"] = round(sum(workers), 1)
        out["one worker (mean)"] = round(sum(workers) / len(workers), 1) if workers else None
        out["graph total"] = run["cpu_percent_total"]
        return out

    names = list(split(next(iter(groups.values()))[0]))
    lines = ["| N | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    for n, runs in groups.items():
        rows = [split(r) for r in runs]
        cells = [spread([r.get(k) for r in rows], "{:.1f}") for k in names]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(groups: dict[int, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = list(groups)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    pred = [statistics.median(r["predicted_fresh_action_ratio"] for r in groups[k]) for k in n]
    a.plot(n, pred, "k--", label="min(1, N·P/T), measured T")
    for k in n:
        a.plot([k] * len(groups[k]), [r["fresh_action_ratio"] for r in groups[k]], "o", color="C0", alpha=0.6)
    a.plot(
        n,
        [statistics.median(r["fresh_action_ratio"] for r in groups[k]) for k in n],
        "-",
        color="C0",
        label="live graph (each run, median line)",
    )
    a.set(
        xlabel="inference workers N", ylabel="fresh-action ratio", ylim=(0, 1.05), title="Inaction (Paper A)"
    )
    a.set_xticks(n)
    a.legend()
    b.plot(
        n,
        [statistics.median(r["inference_ms_mean"] for r in groups[k]) for k in n],
        "k--",
        label="inference time T",
    )
    b.plot(
        n,
        [statistics.median(r["action_age_ms"]["p50"] for r in groups[k]) for k in n],
        "o-",
        label="action age p50",
    )
    b.plot(
        n,
        [statistics.median(r["action_age_ms"]["p99"] for r in groups[k]) for k in n],
        "s:",
        label="action age p99",
    )
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
    ap.add_argument("--params", default="config/bench_100hz.yaml", help="graph parameters file")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 5], help="worker counts to measure")
    ap.add_argument("--latency-periods", type=float, default=4.0, help="synthetic latency in control periods")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds measured per run")
    ap.add_argument("--repeat", type=int, default=3, help="runs per worker count (min/median/max)")
    ap.add_argument(
        "--busy-loop", action="store_true", help="a process spinning on one core beside the graph"
    )
    ap.add_argument("--out", default="docs/results/bench_graph", help="output prefix (.md, .json, .png)")
    a = ap.parse_args(argv)
    import yaml

    if not Path(a.params).is_file():
        print(f"rt-rl bench graph: error: params file '{a.params}' not found", file=sys.stderr)
        return 2
    rate = yaml.safe_load(Path(a.params).read_text())["actuator_arbiter"]["ros__parameters"][
        "control_rate_hz"
    ]
    period = 1.0 / rate
    latency = a.latency_periods * period
    groups: dict[int, list[dict]] = {n: [] for n in a.workers}
    with tempfile.TemporaryDirectory(prefix="rt_rl_bench_") as tmp:
        todo = [(n, i) for n in a.workers for i in range(a.repeat)]
        for n, i in tqdm(todo, desc="bench graph", unit="run"):
            groups[n].append(run_once(a.params, n, latency, a.duration, Path(tmp) / f"n{n}_{i}", a.busy_loop))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "rt-rl bench graph " + " ".join(argv if argv is not None else sys.argv[1:])
    first = next(iter(groups.values()))[0]
    text = (
        f"# Live graph timing\n\n`{command.strip()}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} cores, {a.duration:g} s measured per run, {a.repeat} run(s) per N, "
        f"synthetic latency {latency * 1e3:g} ms"
        + (", **a busy-loop process on one core beside the graph**" if a.busy_loop else "")
        + ".\n\n"
        + table(groups, period * 1e3)
        + "\nSteady-state CPU per node (% of one core, median (min-max)):\n\n"
        + cpu_table(groups)
        + "\nHow it is measured: "
        + first["measurement"]
        + " Outside subscriber: a separate plain rclpy process at normal priority (classic executor, best-effort"
        " subscription) stamping each command on arrival with the monotonic clock; inter-arrival p99/max over"
        " the same window. CPU: utime + stime of each node process over the window (/proc), in % of one core."
        " Ready after: from `rt-rl launch` start to the graph ready and scheduled.\n"
    )
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps(groups, indent=2))
    plot(groups, out.with_suffix(".png"))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
