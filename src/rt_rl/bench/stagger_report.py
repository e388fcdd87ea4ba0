"""`rt-rl bench stagger`'s output: the Markdown tables and report, the heat map, the timeline plot."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from rt_rl.bench.graph import spread
from rt_rl.bench.stagger_numbers import needed_workers


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
