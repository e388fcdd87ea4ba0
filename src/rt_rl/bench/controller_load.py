"""`rt-rl bench controller-load`: does the graph leave a robot's control loop alone?

A ros2_control controller manager runs its update loop at SCHED_FIFO 50 (its default). This benchmark
stands one in: a process at SCHED_FIFO `--priority` (50) that needs `--work` (1 ms) of CPU every
`--period` (2 ms), sleeping to absolute deadlines on the monotonic clock. Beside it runs the demo graph
(`config/demo_robot.yaml` driving the simulated robot `config/robots/hopper.yaml`), once with the
shipped priorities (every graph thread below 50, the model's compute not real-time) and once with the
previous ones (sim 80, arbiter 75, ingest 70, workers 60 with the model on that thread, DDS receive
threads 50), and once without any graph (the machine's own latency).

Measured in the load process: its wake-up latency (monotonic clock read on waking minus the deadline
it slept to; p50 / p99 / max over every period of the window) and its misses (a period whose work
ended after the next deadline). The window starts when the graph is scheduled and lasts `--seconds`.
Each profile runs `--repeat` times; the table gives min / median / max over the runs.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from rt_rl.bench.graph import bench_env

REPO_CONFIG = Path(__file__).resolve().parents[3] / "config"
DDS_REALTIME = Path(__file__).resolve().parents[1] / "dds" / "fast_realtime.xml"
# The priorities before the robot issue: every timekeeper above a controller manager.
PREVIOUS = {"arbiter": 75, "ingest": 70, "worker": 60, "robot": 80, "dds": 50}


def load_summary(wakeups: np.ndarray, finishes: np.ndarray, deadlines: np.ndarray, period: float) -> dict:
    """Per-period times (seconds, one clock) -> latency statistics (microseconds) and misses: a period
    whose work ended after the next deadline. Pure: tested without a graph."""
    latency = (wakeups - deadlines) * 1e6
    missed = int(np.sum(finishes > deadlines + period))
    return {
        "periods": len(deadlines),
        "missed": missed,
        "latency_us": {
            "p50": round(float(np.percentile(latency, 50)), 1),
            "p99": round(float(np.percentile(latency, 99)), 1),
            "max": round(float(latency.max()), 1),
        },
    }


def run_load(period: float, work: float, seconds: float, priority: int) -> dict:
    """The controller stand-in: `work` s of CPU every `period` s at SCHED_FIFO `priority`."""
    if priority > 0:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    gc.disable()  # a collection would be our own latency, not the machine's
    n = int(seconds / period)
    deadlines, wakeups, finishes = np.empty(n), np.empty(n), np.empty(n)
    start = time.monotonic() + period
    for i in range(n):
        due = start + i * period
        remaining = due - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        woke = time.monotonic()
        until = woke + work
        while time.monotonic() < until:  # the controller's update: CPU, not sleep
            pass
        deadlines[i], wakeups[i], finishes[i] = due, woke, time.monotonic()
    return load_summary(wakeups, finishes, deadlines, period)


def _profile_files(
    profile: str, out: Path, robot_priority: int | None = None
) -> tuple[Path, Path, dict[str, str]]:
    """The demo's params and robot files for a profile, and extra environment (the DDS profile)."""
    params = yaml.safe_load((REPO_CONFIG / "demo_robot.yaml").read_text())
    robot = yaml.safe_load((REPO_CONFIG / "robots" / "hopper.yaml").read_text())
    env: dict[str, str] = {}
    if robot_priority is not None:  # the simulated robot itself at another priority than the stand-in's
        robot["mujoco_sim"]["ros__parameters"]["realtime_priority"] = robot_priority
    if profile == "previous":
        for node, key in (
            ("actuator_arbiter", "arbiter"),
            ("sensor_ingest", "ingest"),
            ("inference_worker", "worker"),
        ):
            params.setdefault(node, {}).setdefault("ros__parameters", {})["realtime_priority"] = PREVIOUS[key]
        robot["mujoco_sim"]["ros__parameters"]["realtime_priority"] = PREVIOUS["robot"]
        params.setdefault("robot", {}).setdefault("ros__parameters", {})["controller_priority"] = PREVIOUS[
            "robot"
        ]
        xml = out / "fast_realtime_previous.xml"
        xml.write_text(
            DDS_REALTIME.read_text().replace(
                "<priority>40</priority>", f"<priority>{PREVIOUS['dds']}</priority>"
            )
        )
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(xml)
    p, r = out / f"params_{profile}.yaml", out / f"robot_{profile}.yaml"
    p.write_text(yaml.safe_dump(params, sort_keys=False))
    r.write_text(yaml.safe_dump(robot, sort_keys=False))
    return p, r, env


def run_profile(profile: str, a: argparse.Namespace, out: Path) -> dict:
    """One run: the graph (unless profile 'none') until scheduled, then the load for `seconds`."""
    load_cmd = [sys.executable, "-m", "rt_rl.bench.controller_load", "--child", "--period", str(a.period),
                "--work", str(a.work), "--seconds", str(a.seconds), "--priority", str(a.priority)]  # fmt: skip
    graph = None
    if profile != "none":
        params, robot, extra = _profile_files(profile, out, a.robot_priority)
        env = {**bench_env(), **extra}
        cmd = [sys.executable, "-m", "rt_rl.cli", "launch", str(params), "--robot", str(robot), "--duration",
               str(a.seconds + 10), "--run-dir", str(out / f"run_{profile}"), "--summary",
               str(out / f"summary_{profile}.json"), "--quiet"]  # fmt: skip
        graph = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 240
        for line in graph.stdout:
            if "measuring" in line:
                break
            if time.monotonic() > deadline:
                graph.kill()
                raise RuntimeError(f"{profile}: the graph was not scheduled in 240 s")
        time.sleep(2.0)  # past the first re-lays
    try:
        done = subprocess.run(load_cmd, capture_output=True, text=True, timeout=a.seconds + 60)
        if done.returncode != 0:
            raise RuntimeError(f"load process failed: {done.stderr.strip().splitlines()[-1:]}")
        result = json.loads(done.stdout)
    finally:
        if graph is not None:
            graph.send_signal(2)
            try:
                graph.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                graph.kill()
    if graph is not None:
        summary = json.loads((out / f"summary_{profile}.json").read_text())
        result["graph_fresh_ratio"] = summary.get("fresh_action_ratio")
        result["graph_period_p99_ms"] = ((summary.get("control") or {}).get("period_ms") or {}).get("p99")
    return result


def _mmm(values: list[float]) -> str:
    return f"{statistics.median(values):g} ({min(values):g}-{max(values):g})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rt-rl bench controller-load", description=__doc__.split("\n\n")[0])
    ap.add_argument("--period", type=float, default=0.002, help="controller period, s")
    ap.add_argument("--work", type=float, default=0.001, help="CPU the controller needs per period, s")
    ap.add_argument(
        "--priority", type=int, default=50, help="its SCHED_FIFO priority (controller manager: 50)"
    )
    ap.add_argument("--seconds", type=float, default=20.0, help="measured window per run, s")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profiles", nargs="+", default=["none", "default", "previous"],
                    choices=["none", "default", "previous"])  # fmt: skip
    ap.add_argument("--out", type=Path, default=None, help="write the table and runs' JSON here (.md/.json)")
    ap.add_argument(
        "--robot-priority",
        type=int,
        default=None,
        help="SCHED_FIFO priority of the simulated robot (default: its file's, 50, the stand-in's own)",
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(run_load(a.period, a.work, a.seconds, a.priority)))
        return 0
    runs: dict[str, list[dict]] = {p: [] for p in a.profiles}
    with tempfile.TemporaryDirectory(prefix="rt_rl_ctrl_load_") as tmp:
        for i in range(a.repeat):
            for profile in a.profiles:
                try:
                    r = run_profile(profile, a, Path(tmp))
                except (RuntimeError, OSError, ValueError) as err:
                    print(f"rt-rl bench controller-load: error: {err}", file=sys.stderr)
                    return 1
                runs[profile].append(r)
                lat = r["latency_us"]
                print(f"run {i + 1}/{a.repeat} {profile:8s}: {r['missed']} missed of {r['periods']}, wake-up "
                      f"p50 {lat['p50']} p99 {lat['p99']} max {lat['max']} us, graph fresh "
                      f"{r.get('graph_fresh_ratio', '-')}", flush=True)  # fmt: skip
    head = (f"controller stand-in: SCHED_FIFO {a.priority}, {a.work * 1e3:g} ms of CPU every {a.period * 1e3:g} ms, "
            f"{a.seconds:g} s per run, {a.repeat} runs; median (min-max) over runs")  # fmt: skip
    rows = ["| graph beside it | missed periods | wake-up p50 (us) | p99 (us) | max (us) | graph fresh ratio |",
            "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    names = {"none": "none", "default": "demo, shipped priorities", "previous": "demo, previous priorities"}
    for profile, rs in runs.items():
        fresh = [r["graph_fresh_ratio"] for r in rs if r.get("graph_fresh_ratio") is not None]
        rows.append(
            f"| {names[profile]} | {_mmm([r['missed'] for r in rs])} | {_mmm([r['latency_us']['p50'] for r in rs])} "
            f"| {_mmm([r['latency_us']['p99'] for r in rs])} | {_mmm([r['latency_us']['max'] for r in rs])} "
            f"| {_mmm(fresh) if fresh else '-'} |"
        )
    text = head + "\n\n" + "\n".join(rows) + "\n"
    print("\n" + text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.with_suffix(".md").write_text(
            f"# Controller load beside the graph\n\n{__doc__.split(chr(10) * 2, 1)[1]}\n{text}"
        )
        a.out.with_suffix(".json").write_text(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
