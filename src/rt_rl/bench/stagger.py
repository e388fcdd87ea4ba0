"""`rt-rl bench stagger`: staggered inference on the live graph against Paper A's theory.

Runs the real graph (separate processes over DDS, a random policy, the synthetic latency of a
larger model) over a grid of latencies (1-8 control periods) x worker counts (N = 1-8), and the
cases the grid cannot show:

- lognormal: inference times drawn log-normal (sigma 0.5, mean 40 ms), the auto pool (max 10);
- auto: `--workers auto` (max 10, 2 warm spares) at T = 40 ms;
- doubling: the auto pool, and the latency set from 40 to 80 ms mid-run (the parameter service),
  with 4 warm spares (the jump from 6 to 10 active workers needs no new process) and without
  (warm_spares 0: new workers are processes to start).

Every run has an outside recorder (`rt_rl.bench.tick_probe`, a plain rclpy process) on the per-tick
actuation topic and the action topic. The prediction is min(1, N * P / T) with T = the configured
latency plus the compute time measured by the workers (p50), independent of the grid the arbiter
lays. Writes a table (Markdown, also printed), the raw runs (JSON), a heat map of measured minus
predicted fresh ratio and a timeline of worker inference spans and arbiter ticks for one run.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from rt_rl.bench.graph import bench_env
from rt_rl.bench.stagger_numbers import (
    ages_from_start,
    first_above,
    needed_workers,
    predicted_ratio,
    recovery_time,
    tick_accounting,
    window_ratios,
)
from rt_rl.bench.stagger_report import heat_map, report, timeline_plot

# --- running the graph -----------------------------------------------------------------------------


LAUNCH_SLACK = 180.0  # seconds a launch may take beyond its measured duration (startup, shutdown)


def run_once(
    params: dict,
    workers: int | str,
    duration: float,
    run_dir: Path,
    change: tuple[float, float] | None = None,
    robot: dict | None = None,
    robot_topics: tuple[str, str] | None = None,
) -> dict:
    """One `rt-rl launch` of `params` beside the tick probe; the summary plus `probe`. `robot`: the
    params of a simulated robot started with it (`--robot`); `robot_topics` (command, joint states):
    the probe also records the commands' arrival and the joint states' stamps."""
    run_dir.mkdir(parents=True, exist_ok=True)
    params_path = run_dir / "params.in.yaml"
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    env = bench_env()
    summary, probe_out = run_dir / "summary.json", run_dir / "probe.json"
    probe_cmd = [sys.executable, "-m", "rt_rl.bench.tick_probe", str(probe_out)]
    if change is not None:
        probe_cmd += ["--set-latency-after", str(change[0]), "--latency", str(change[1])]
        probe_cmd += ["--params-file", str(run_dir / "params.yaml")]  # written by the launcher
    if robot_topics is not None:
        probe_cmd += ["--command-topic", robot_topics[0], "--joint-states-topic", robot_topics[1]]
    probe = subprocess.Popen(probe_cmd, env=env)
    cmd = [
        sys.executable, "-m", "rt_rl.cli", "launch", str(params_path), "--workers", str(workers),
        "--duration", str(duration), "--summary", str(summary), "--run-dir", str(run_dir), "--quiet",
    ]  # fmt: skip
    if robot is not None:
        robot_path = run_dir / "robot.in.yaml"
        robot_path.write_text(yaml.safe_dump(robot, sort_keys=False))
        cmd += ["--robot", str(robot_path)]
    try:
        # a launch that outlives its run by minutes hangs (seen once in 200 runs: every thread of the
        # launcher waiting on a lock after its nodes had exited); the sweep goes on without it
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=duration + LAUNCH_SLACK)
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(f"launch hung: no exit {duration + LAUNCH_SLACK:g} s after it started") from err
    finally:
        probe.send_signal(signal.SIGINT)
        probe.wait(timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"launch failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    s = json.loads(summary.read_text())
    s["probe"] = json.loads(probe_out.read_text())
    return s


def measure(s: dict, period: float, latency: float) -> dict:
    """The numbers of one run: from the probe's ticks inside the arbiter's window."""
    ticks = [(t[0], t[1] == "fresh") for t in s["probe"]["ticks"] if t[2]]
    computes = [w["compute_ms_p50"] for w in s["workers"] if w.get("compute_ms_p50") is not None]
    t_model = latency + (statistics.median(computes) / 1e3 if computes else 0.0)
    pool = s.get("pool") or {}
    n_active = len(pool.get("active") or []) or s["num_workers"]
    ages = [t[3] for t in s["probe"]["ticks"] if t[2] and t[1] == "fresh" and t[3] == t[3]]
    from_start = ages_from_start(s["probe"]["ticks"], s["probe"]["actions"])
    turn = [a[8] for a in s["probe"]["actions"] if len(a) > 8 and a[3] > 0]
    t_busy = t_model + (float(np.median(turn)) if turn else 0.0)  # + publish and next-slot lookup
    # each scheduled action's measured inference time (latency, compute, overshoot): a back-to-back
    # worker delivers 1 / E[T] actions a second (a renewal process), so its mean is the rate's T
    inferences = [a[7] for a in s["probe"]["actions"] if len(a) > 7 and a[3] > 0]
    t_mean = float(np.mean(inferences)) if inferences else None
    spacing = (s.get("schedule") or {}).get("spacing_ms")
    accounting = tick_accounting(s["probe"]["ticks"], s["probe"]["actions"], period) or {}
    waits = [
        w["observation_wait_ms"]["mean"]
        for w in s["workers"]
        if (w.get("observation_wait_ms") or {}).get("mean") is not None
    ]
    return {
        "latency_ms": round(latency * 1e3, 3),
        "T_ms": round(t_model * 1e3, 3),
        "num_workers": n_active,
        "processes": s["num_workers"],
        "fresh_ratio": round(sum(f for _, f in ticks) / len(ticks), 4) if ticks else None,
        "fresh_ratio_arbiter": s.get("fresh_action_ratio"),
        "predicted": round(predicted_ratio(n_active, period, t_model), 4),
        "predicted_busy": round(predicted_ratio(n_active, period, t_busy), 4),
        "T_mean_ms": round(t_mean * 1e3, 3) if t_mean else None,
        "predicted_mean": round(predicted_ratio(n_active, period, t_mean), 4) if t_mean else None,
        "age_p50_ms": round(float(np.percentile(ages, 50)) * 1e3, 2) if ages else None,
        "age_minus_T_over_P": round((float(np.percentile(ages, 50)) - t_model) / period, 3) if ages else None,
        "age_from_start_p50_ms": round(float(np.percentile(from_start, 50)) * 1e3, 2) if from_start else None,
        "age_from_start_minus_T_over_P": round((float(np.percentile(from_start, 50)) - t_model) / period, 3)
        if from_start
        else None,
        "period_p99_ms": (s.get("control") or {}).get("period_ms", {}).get("p99"),
        "cpu_percent_total": s.get("cpu_percent_total"),
        "grid_T_ms": (s.get("schedule") or {}).get("inference_time_ms"),
        "grid_spacing_ms": (s.get("schedule") or {}).get("spacing_ms"),
        "turnaround_ms_p50": round(float(np.median(turn)) * 1e3, 3) if turn else None,
        "observation_wait_ms_mean": round(statistics.median(waits), 3) if waits else None,
        "grid_ratio": round(min(1.0, period * 1e3 / spacing), 4) if spacing else None,
        "ticks_planned": round(accounting["planned"], 4) if accounting else None,
        "ticks_late": round(accounting["late"], 4) if accounting else None,
        "revisions": (s.get("schedule") or {}).get("revision"),
        "ticks": len(ticks),
    }


def base_params(path: str) -> dict:
    return yaml.safe_load(Path(path).read_text())


def with_workers(params: dict, **worker: float) -> dict:
    p = json.loads(json.dumps(params))
    p.setdefault("inference_worker", {"ros__parameters": {}})["ros__parameters"].update(worker)
    return p


def with_auto(params: dict, max_workers: int, spares: int) -> dict:
    p = json.loads(json.dumps(params))
    g = p.setdefault("/**", {"ros__parameters": {}})["ros__parameters"]
    g.update({"num_workers": "auto", "max_workers": max_workers, "warm_spares": spares})
    return p


# --- output ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rt-rl bench stagger", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--params",
        default="config/bench_100hz.yaml",
        help="graph parameters file (the random policy's graph)",
    )
    ap.add_argument(
        "--latency-periods",
        type=float,
        nargs="+",
        default=[1, 2, 3, 4, 5, 6, 7, 8],
        help="synthetic inference latencies of the grid, in control periods",
    )
    ap.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2, 3, 4, 5, 6, 7, 8],
        help="worker counts N of the grid",
    )
    ap.add_argument("--duration", type=float, default=8.0, help="seconds measured per run")
    ap.add_argument("--repeat", type=int, default=1, help="runs per grid cell (min/median/max)")
    ap.add_argument("--cases", nargs="*", default=["grid", "lognormal", "auto", "doubling"],
                    choices=["grid", "lognormal", "auto", "doubling"],
                    help="what to run: the latency x N grid, log-normal inference times, the auto "
                         "pool at T = 40 ms, the latency doubling mid-run")  # fmt: skip
    ap.add_argument("--case-repeat", type=int, default=3, help="runs of each extra case")
    ap.add_argument(
        "--out", default="docs/results/bench_stagger", help="output prefix (.md, .json, _heatmap.png, _timeline.png)"
    )
    a = ap.parse_args(argv)
    if not Path(a.params).is_file():
        print(f"rt-rl bench stagger: error: params file '{a.params}' not found", file=sys.stderr)
        return 2
    params = base_params(a.params)
    period = 1.0 / params["actuator_arbiter"]["ros__parameters"]["control_rate_hz"]
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cells: dict = {}
    cases: dict[str, list] = {}
    timeline_run = None
    todo = []
    if "grid" in a.cases:
        todo += [("grid", lp, n, i) for lp in a.latency_periods for n in a.workers for i in range(a.repeat)]
    for case in ("lognormal", "auto", "doubling", "doubling-cold"):
        if case.split("-")[0] in a.cases:
            todo += [(case, 4.0, None, i) for i in range(a.case_repeat)]
    with tempfile.TemporaryDirectory(prefix="rt_rl_bench_stagger_") as tmp:
        for case, lp, n, i in tqdm(todo, desc="bench stagger", unit="run"):
            latency = lp * period
            run_dir = Path(tmp) / f"{case}_{lp:g}_{n}_{i}"
            change = None
            if case == "grid":
                p, workers = with_workers(params, synthetic_latency=latency), n
            elif case == "lognormal":  # the auto pool sizes itself for the high quantile
                p = with_workers(params, synthetic_latency=latency, synthetic_latency_sigma=0.5)
                p, workers = with_auto(p, 10, 2), "auto"
            else:
                # 4: the doubling takes the pool from 6 to 10 active workers, all of them already warm
                spares = 0 if case == "doubling-cold" else 4
                p, workers = with_auto(with_workers(params, synthetic_latency=latency), 10, spares), "auto"
                if case.startswith("doubling"):
                    change = (3.0, 2 * latency)
            try:
                s = run_once(p, workers, change[0] + 8.0 if change else a.duration, run_dir, change)
            except RuntimeError as err:
                tqdm.write(f"{case} L={lp:g}P N={n}: {err}")
                continue
            m = measure(s, period, latency)
            if change is not None:
                ch = s["probe"]["changed"]
                ticks = [(t[0], t[1] == "fresh") for t in s["probe"]["ticks"] if t[2]]
                if ch:
                    end = ticks[-1][0]
                    m["recovery_s"] = recovery_time(ticks, ch["wall"], end)
                    m["first_above_s"] = first_above(ticks, ch["wall"], end)
                    after = window_ratios(ticks, ch["wall"], end, 1.0)
                    m["fresh_ratio_by_second_after"] = [round(r, 3) for _, r in after]
                    m["active_after"] = len((s.get("pool") or {}).get("active") or [])
                    m["latency_set_on"] = ch.get("accepted")
            m["pool_events"] = (s.get("pool") or {}).get("events")
            if case == "grid":
                cells.setdefault((lp, n), []).append(m)
                if timeline_run is None and n == needed_workers(period, latency) and lp == 4.0:
                    timeline_run = (s, f"N = {n}, latency {latency * 1e3:g} ms, P = {period * 1e3:g} ms")
            else:
                cases.setdefault(case, []).append(m)
    text = report(cells, cases, a, period, argv)
    out.with_suffix(".md").write_text(text)
    raw = {"grid": {f"{lp:g}P_N{n}": v for (lp, n), v in cells.items()}, "cases": cases}
    out.with_suffix(".json").write_text(json.dumps(raw, indent=1))
    if cells:
        heat_map(cells, a.latency_periods, a.workers, Path(f"{out}_heatmap.png"))
    if timeline_run is not None:
        timeline_plot(timeline_run[0], Path(f"{out}_timeline.png"), timeline_run[1])
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
