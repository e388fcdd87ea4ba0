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
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from rt_rl.bench.graph import bench_env, spread

# --- the numbers (pure, tested without ROS) -------------------------------------------------------


def ages_from_start(ticks: list[list], actions: list[list]) -> list[float]:
    """Per fresh tick in the window: tick time minus the start of the inference that produced the
    actuated action (its worker took its observation then), matched on (worker, observation seq)."""
    start = {(a[0], a[5]): a[1] for a in actions if len(a) > 5 and a[3] > 0}
    out = []
    for t in ticks:
        if len(t) > 5 and t[2] and t[1] == "fresh" and (t[4], t[5]) in start:
            out.append(t[0] - start[(t[4], t[5])])
    return out


def tick_accounting(ticks: list[list], actions: list[list], period: float) -> dict | None:
    """Where the ticks in the window went: the share planned (some delivered slot of the grid was
    planned to end in the period before the tick, so the arbiter actuates it there), the share planned
    but not fresh (that action came too late) and the share fresh without a plan (a late action of
    the period before). Separates what the grid's spacing gives from what lateness takes. None when
    the actions carry no slot end (records of an older probe). Counted from the first slot's end (before
    the first grid the workers run unscheduled)."""
    ends = sorted(a[9] for a in actions if len(a) > 9 and a[3] > 0 and a[9] > 0)
    if not ends:
        return None
    window = [(t[0], t[1] == "fresh") for t in ticks if t[2] and t[0] >= ends[0]]
    if not window:
        return None
    planned = late = unplanned = 0
    previous = window[0][0] - period
    for t, fresh in window:
        i = int(np.searchsorted(ends, previous, side="right"))
        due = i < len(ends) and ends[i] <= t
        planned += due
        late += due and not fresh
        unplanned += fresh and not due
        previous = t
    n = len(window)
    return {"planned": planned / n, "late": late / n, "fresh_unplanned": unplanned / n}


def predicted_ratio(num_workers: int, period: float, inference_time: float) -> float:
    """Paper A: N staggered workers give a fresh action every T/N; at most one per tick."""
    return min(1.0, num_workers * period / inference_time)


def needed_workers(period: float, inference_time: float) -> int:
    """The pool that gives a fresh action every tick with one worker to spare for jitter."""
    return math.ceil(inference_time / period - 1e-9) + 1


def window_ratios(
    ticks: list[tuple[float, bool]], start: float, end: float, width: float
) -> list[tuple[float, float]]:
    """(window start, fresh ratio) of consecutive windows of `width` s from `start` to `end`."""
    out, t = [], start
    while t + width <= end + 1e-9:
        sel = [fresh for s, fresh in ticks if t <= s < t + width]
        if sel:
            out.append((t, sum(sel) / len(sel)))
        t += width
    return out


def recovery_time(
    ticks: list[tuple[float, bool]], change: float, end: float, threshold: float = 0.95, width: float = 0.25
) -> float | None:
    """Seconds from `change` until the fresh ratio is back above `threshold` for good: the start of
    the first `width` window after which every window up to `end` is >= threshold (0.0: never
    below). None if it does not recover before `end`."""
    windows = window_ratios(ticks, change, end, width)
    if not windows:
        return None
    last_bad = max((i for i, (_, r) in enumerate(windows) if r < threshold), default=-1)
    if last_bad == len(windows) - 1:
        return None
    return windows[last_bad + 1][0] - change if last_bad >= 0 else 0.0


def first_above(
    ticks: list[tuple[float, bool]], change: float, end: float, threshold: float = 0.95, width: float = 0.25
) -> float | None:
    """Seconds from `change` to the end of the first `width` window whose fresh ratio is >= threshold."""
    for start, ratio in window_ratios(ticks, change, end, width):
        if ratio >= threshold:
            return start + width - change
    return None


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


def grid_table(cells: dict, latencies: list[float], workers: list[int]) -> str:
    head = "| latency (P) | " + " | ".join(f"N={n}" for n in workers) + " |\n"
    head += "|---|" + "---|" * len(workers) + "\n"
    rows = []
    for lp in latencies:
        row = [f"{lp:g}"]
        for n in workers:
            runs = cells.get((lp, n), [])
            if not runs:
                row.append("-")
                continue
            m = spread([r["fresh_ratio"] for r in runs])
            row.append(f"{m} / {statistics.median(r['predicted'] for r in runs):.3f}")
        rows.append("| " + " | ".join(row) + " |")
    return head + "\n".join(rows) + "\n"


def heat_map(cells: dict, latencies: list[float], workers: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = np.full((len(latencies), len(workers)), np.nan)
    for i, lp in enumerate(latencies):
        for j, n in enumerate(workers):
            runs = cells.get((lp, n), [])
            if runs:
                d[i, j] = statistics.median(r["fresh_ratio"] - r["predicted"] for r in runs)
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    im = ax.imshow(d, cmap="RdBu", vmin=-0.1, vmax=0.1, origin="lower", aspect="auto")
    for i in range(len(latencies)):
        for j in range(len(workers)):
            if not np.isnan(d[i, j]):
                ax.text(j, i, f"{d[i, j]:+.3f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(workers)), [str(n) for n in workers])
    ax.set_yticks(range(len(latencies)), [f"{lp:g}" for lp in latencies])
    ax.set_xlabel("workers N")
    ax.set_ylabel("synthetic latency (control periods)")
    ax.set_title("fresh ratio: measured - min(1, N*P/T), live graph")
    fig.colorbar(im, ax=ax, label="measured - predicted")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def timeline_plot(s: dict, path: Path, title: str, span: float = 0.25) -> None:
    """Worker inference spans and arbiter ticks over `span` s in the middle of one run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ticks = [t for t in s["probe"]["ticks"] if t[2]]
    if not ticks:
        return
    t0 = ticks[len(ticks) // 2][0]
    fig, ax = plt.subplots(figsize=(10, 4))
    workers = sorted({a[0] for a in s["probe"]["actions"] if a[3] > 0})
    for w, start, end, rev, *_ in s["probe"]["actions"]:
        if rev > 0 and end > t0 and start < t0 + span:
            ax.barh(
                workers.index(w),
                (end - start) * 1e3,
                left=(start - t0) * 1e3,
                height=0.6,
                color="tab:blue",
                alpha=0.7,
            )
            ax.plot([(end - t0) * 1e3], [workers.index(w)], "k|", markersize=12)
    for stamp, kind, *_ in ticks:
        if t0 <= stamp <= t0 + span:
            ax.axvline(
                (stamp - t0) * 1e3, color="tab:green" if kind == "fresh" else "tab:red", lw=0.8, alpha=0.6
            )
    ax.set_yticks(range(len(workers)), [f"worker {w}" for w in workers])
    ax.set_xlabel("ms (arbiter wall clock); vertical lines: control ticks (green fresh, red fallback)")
    ax.set_title(title)
    ax.set_xlim(0, span * 1e3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
        "--out", default="docs/bench_stagger", help="output prefix (.md, .json, _heatmap.png, _timeline.png)"
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


def alternative_agreement(cells: dict, key: str, what: str) -> str:
    """One sentence: how many runs are within 0.03 of the prediction `key` (another choice of T), and
    which are not; empty when no run has it."""
    diffs = [
        (lp, n, r["fresh_ratio"] - r[key])
        for (lp, n), runs in sorted(cells.items())
        for r in runs
        if r.get(key) is not None
    ]
    if not diffs:
        return ""
    outside = ", ".join(f"{lp:g}P N={n} {d:+.3f}" for lp, n, d in diffs if abs(d) > 0.03) or "none"
    within = sum(abs(d) <= 0.03 for *_, d in diffs)
    return f"With {what}: {within} of {len(diffs)} runs within 0.03; outside: {outside}.\n\n"


def misses_table(cells: dict) -> str:
    """For each cell whose median misses theory by more than 0.03: what the grid allowed (P / its
    spacing, the spacing laid from the slot length the workers measured) and what lateness took, cell
    medians; empty when no cell misses or the runs predate these fields."""

    def med(runs: list[dict], key: str):
        vals = [r[key] for r in runs if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    def show(v, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    rows = ""
    for (lp, n), runs in sorted(cells.items()):
        fresh, predicted = med(runs, "fresh_ratio"), med(runs, "predicted")
        if abs(fresh - predicted) <= 0.03 or med(runs, "ticks_planned") is None:
            continue
        net = [r["fresh_ratio"] - r["ticks_planned"] for r in runs if r.get("ticks_planned") is not None]
        rows += (
            f"| {lp:g} | {n} | {fresh:.3f} | {predicted:.3f} | {show(med(runs, 'grid_ratio'), '.3f')} | "
            f"{show(med(runs, 'grid_spacing_ms'), '.2f')} | {show(med(runs, 'ticks_planned'), '.3f')} | "
            f"{show(med(runs, 'ticks_late'), '.3f')} | {show(statistics.median(net) if net else None, '+.3f')} | "
            f"{show(med(runs, 'turnaround_ms_p50'), '.2f')} | {show(med(runs, 'observation_wait_ms_mean'), '.2f')} |\n"
        )
    if not rows:
        return ""
    return (
        "Cells more than 0.03 from theory, where the ticks went (cell medians): the grid's own ratio P / spacing "
        "(back-to-back workers are spaced by the mean slot length they measured: inference and "
        "turnaround, 0.5 % above), the ticks a delivered slot was planned for, those whose action came too late "
        "for its tick, and what lateness cost in all (fresh minus planned: a late action that fills the next,"
        " unplanned tick counts back):"
        "\n\n| latency (P) | N | fresh | theory | grid P/spacing | spacing (ms) | planned | late | late, net | "
        "turnaround (ms) | observation wait (ms, mean) |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
        + rows
        + "\n"
    )


def report(cells: dict, cases: dict, a, period: float, argv) -> str:
    command = "rt-rl bench stagger " + " ".join(argv if argv is not None else sys.argv[1:])
    text = (
        f"# Staggered inference, live\n\n`{command.strip()}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} cores, {a.duration:g} s measured per run, P = {period * 1e3:g} ms.\n\n"
    )
    if cells:
        text += (
            "Fresh ratio, measured (median (min-max) over runs) / predicted min(1, N P / T), T = latency + "
            "measured compute:\n\n" + grid_table(cells, a.latency_periods, a.workers) + "\n"
        )
        diffs = [r["fresh_ratio"] - r["predicted"] for runs in cells.values() for r in runs]
        within = sum(abs(d) <= 0.03 for d in diffs)
        medians = [
            statistics.median(r["fresh_ratio"] for r in runs)
            - statistics.median(r["predicted"] for r in runs)
            for runs in cells.values()
        ]
        text += (
            f"Within 0.03 of theory: {within} of {len(diffs)} runs, {sum(abs(d) <= 0.03 for d in medians)} of "
            f"{len(medians)} cell medians; largest |difference| {max(map(abs, diffs)):.3f}.\n\n"
        )
        text += alternative_agreement(
            cells,
            "predicted_busy",
            "T = latency + compute + the worker's turnaround (publishing its action, finding its next slot, "
            "taking its observation; p50, measured by the worker; a back-to-back worker cannot start sooner)",
        )
        text += alternative_agreement(
            cells,
            "predicted_mean",
            "T = the mean inference time the workers measured (latency, compute and the sleep's overshoot; "
            "a back-to-back worker's rate is 1 / E[T])",
        )
        text += misses_table(cells)
        rows = [
            (lp, n, r)
            for (lp, n), runs in sorted(cells.items())
            for r in runs
            if n >= needed_workers(period, r["T_ms"] / 1e3)
        ]
        if rows:
            text += (
                "N >= ceil(T/P) + 1 (every tick should be fresh); age from the sensor stamp and from the "
                "inference start, p50:\n\n| latency (P) | N | fresh | T (ms) | age (ms) | (age - T)/P | "
                "age from start (ms) | (that - T)/P | CPU % |\n|---|---|---|---|---|---|---|---|---|\n"
            )
            for lp, n, r in rows:
                text += (
                    f"| {lp:g} | {n} | {r['fresh_ratio']:.4f} | {r['T_ms']} | {r['age_p50_ms']} | "
                    f"{r['age_minus_T_over_P']} | {r.get('age_from_start_p50_ms')} | "
                    f"{r.get('age_from_start_minus_T_over_P')} | {r['cpu_percent_total']} |\n"
                )
            text += "\n"
    for case, runs in cases.items():
        text += f"## {case}\n\n"
        keys = [
            "num_workers",
            "processes",
            "T_ms",
            "grid_T_ms",
            "fresh_ratio",
            "predicted",
            "age_p50_ms",
            "cpu_percent_total",
        ]
        if case.startswith("doubling"):
            keys += ["first_above_s", "recovery_s", "fresh_ratio_by_second_after", "active_after"]
        for k in keys:
            vals = [r.get(k) for r in runs]
            shown = (
                spread(vals)
                if all(isinstance(v, (int, float)) or v is None for v in vals)
                else json.dumps(vals)
            )
            text += f"- {k}: {shown}\n"
        text += "\n"
    text += (
        "How it is measured: an outside rclpy process records every tick of /rt_rl/actuation (kind, action age) "
        "and every /rt_rl/action; fresh ratio = fresh ticks / ticks inside the arbiter's measurement window; "
        "action age = tick wall time minus the sensor stamp of the actuated action's observation, p50 over the "
        "fresh ticks; T = synthetic latency + the workers' measured compute p50 (not the grid's T); recovery = "
        "seconds from the latency change until every later 0.25 s window has a fresh ratio >= 0.95; first above = to the end of the first 0.25 s window >= 0.95.\n"
    )
    return text


if __name__ == "__main__":
    raise SystemExit(main())
