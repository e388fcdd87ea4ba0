"""The report's figures (matplotlib, without pyplot), each returned as a Figure."""

from __future__ import annotations

import base64
import io

import numpy as np

from rt_rl.report.stats import (
    EpisodeEnd,
    action_ages_ms,
    inter_arrival_ms,
    percentiles,
    worker_spans,
)

ENDED_COLORS = {"terminated": "#d62728", "truncated": "#2ca02c", "ended": "0.5"}
WORKER_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _figure(width: float = 10.9, height: float = 3.2, **kw):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained", **kw)
    return fig


def png_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def fig_period(command_ns: np.ndarray, origin_ns: int, nominal_ms: float | None, window_ns: int | None):
    periods = inter_arrival_ms(command_ns)
    t = (command_ns[1:] - origin_ns) / 1e9
    fig = _figure()
    ax, hist = fig.subplots(1, 2, sharey=True, width_ratios=(5, 1))
    ax.plot(t, periods, lw=0.6, color="#1f77b4")
    if nominal_ms:
        ax.axhline(nominal_ms, color="0.3", ls="--", lw=0.8, label=f"nominal {nominal_ms:g} ms")
    if window_ns is not None:
        ax.axvline((window_ns - origin_ns) / 1e9, color="#2ca02c", lw=0.8, label="measurement window opens")
    ax.set_xlabel("time since the first command (s)")
    ax.set_ylabel("command inter-arrival\nat the recorder (ms)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=8)
    hist.hist(periods, bins=60, orientation="horizontal", color="#1f77b4", log=True)
    hist.set_xlabel("commands (log)")
    hist.grid(alpha=0.3)
    return fig


def fig_ratio(intervals, xlabel: str, predicted: float | None, overall: float | None):
    fig = _figure(height=2.7)
    ax = fig.subplots()
    t0, t1, r = (np.asarray(column, dtype=float) for column in zip(*intervals, strict=True))
    ax.hlines(r, t0, t1, color="#1f77b4", lw=2.0, label="per interval")
    ax.plot((t0 + t1) / 2, r, "o", ms=2.5, color="#1f77b4")
    if predicted is not None:
        ax.axhline(
            predicted, color="0.3", ls="--", lw=0.8, label=f"predicted min(1, N·P/T) = {predicted:.3g}"
        )
    if overall is not None:
        ax.axhline(overall, color="#ff7f0e", lw=0.8, label=f"whole window = {overall:.4g}")
    low = min([*r.tolist(), overall if overall is not None else 1.0, 1.0])
    ax.set_ylim(max(0.0, np.floor((low - 0.02) * 20) / 20), 1.01)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fresh-action ratio")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def fig_ages(actions, arbiter_age: dict | None):
    ages = action_ages_ms(actions)
    scheduled = np.asarray([a.schedule_revision > 0 for a in actions], dtype=bool)
    p = percentiles(ages[scheduled] if scheduled.any() else ages)
    # The bulk, not the few warm-up stragglers: they are counted in the legend instead.
    lo = max(0.0, float(np.percentile(ages, 0.5)) - 2.0)
    hi = float(np.percentile(ages, 99.5)) + 2.0
    if arbiter_age and arbiter_age.get("p99") is not None:
        hi = max(hi, float(arbiter_age["p99"]) + 1.0)
    beyond = ages[(ages < lo) | (ages > hi)]
    bins = np.linspace(lo, hi, 121)
    fig = _figure(height=2.9)
    ax = fig.subplots()
    groups = [
        (ages[scheduled], "#1f77b4", f"following the schedule ({scheduled.sum()})"),
        (ages[~scheduled], "#bbbbbb", f"warm-up, before the first schedule ({(~scheduled).sum()})"),
    ]
    groups = [g for g in groups if g[0].size]
    ax.hist(
        [np.clip(g[0], lo, hi) for g in groups],
        bins=bins,
        stacked=True,
        log=True,
        color=[g[1] for g in groups],
        label=[g[2] for g in groups],
    )
    for name, value in p.items():
        ax.axvline(
            value,
            color="#d62728",
            lw=0.9,
            ls="--" if name == "p99" else "-",
            label=f"{name} at the recorder {value:.1f} ms",
        )
    if arbiter_age and arbiter_age.get("p50") is not None:
        ax.axvline(
            arbiter_age["p50"],
            color="#2ca02c",
            lw=1.2,
            label=f"p50 at actuation (arbiter) {arbiter_age['p50']:.1f} ms",
        )
    if beyond.size:
        ax.plot(
            [],
            [],
            " ",
            label=f"{beyond.size} outside {lo:.0f}-{hi:.0f} ms (max {ages.max():.1f}), in the edge bins",
        )
    ax.set_xlim(lo, hi)
    ax.set_xlabel("action age at the recorder: receive time − observation stamp (ms)")
    ax.set_ylabel("actions (log)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def fig_stagger(actions, command_ns: np.ndarray, t0: int, t1: int, origin_ns: int):
    spans = worker_spans(actions, t0, t1)
    workers = sorted({a.worker_id for a in actions} | set(spans))
    fig = _figure(height=1.1 + 0.4 * max(1, len(workers)))
    ax = fig.subplots()

    def ms(ns):
        return (np.asarray(ns, dtype=np.int64) - t0) / 1e6

    commands = command_ns[(command_ns >= t0) & (command_ns <= t1)]
    ax.vlines(ms(commands), -0.6, len(workers) - 0.4, color="0.45", lw=0.7, label="command (recorder time)")
    for row, w in enumerate(workers):
        color = WORKER_COLORS[w % len(WORKER_COLORS)]
        bars = [((s - t0) / 1e6, (e - s) / 1e6) for s, e in spans.get(w, [])]
        ax.broken_barh(bars, (row - 0.3, 0.6), facecolors=color, edgecolor="none")
        arrivals = [a.log_ns for a in actions if a.worker_id == w and t0 <= a.log_ns <= t1]
        ax.plot(ms(arrivals), [row + 0.38] * len(arrivals), "v", ms=4, color=color)
    ax.plot([], [], "v", color="0.3", ms=4, label="action received by the recorder")
    ax.set_yticks(range(len(workers)), [f"worker {w}" for w in workers])
    ax.set_ylim(-0.6, len(workers) - 0.4)
    ax.invert_yaxis()
    ax.set_xlim(0, (t1 - t0) / 1e6)
    ax.set_xlabel(f"ms (wall clock) from {(t0 - origin_ns) / 1e9:.2f} s after the first command")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, fontsize=8, frameon=False)
    return fig


def fig_returns(episodes: list[EpisodeEnd]):
    from matplotlib.patches import Patch

    fig = _figure(width=8.2, height=2.8)
    ax = fig.subplots()
    x = [e.episode for e in episodes]
    colors = [ENDED_COLORS[ended(e)] for e in episodes]
    bars = ax.bar(x, [e.episode_return for e in episodes], color=colors)
    ax.bar_label(bars, labels=[f"{e.steps} steps" for e in episodes], fontsize=8, padding=2)
    ax.set_xticks(x)
    ax.set_xlabel("episode")
    ax.set_ylabel("episode return")
    ax.margins(y=0.15)
    ax.grid(alpha=0.3, axis="y")
    shown = dict.fromkeys(ended(e) for e in episodes)
    ax.legend(handles=[Patch(color=ENDED_COLORS[k], label=k) for k in shown], loc="upper left", fontsize=8)
    return fig


def ended(e: EpisodeEnd) -> str:
    return "terminated" if e.terminated else "truncated" if e.truncated else "ended"
