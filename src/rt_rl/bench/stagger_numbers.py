"""`rt-rl bench stagger`'s numbers from a run's probe records: pure, tested without ROS."""

from __future__ import annotations

import math

import numpy as np


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
