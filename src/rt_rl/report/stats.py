"""The report's pure extraction from a run's records: tested without a bag."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ActionTiming:
    """When one action was computed and received; all times wall clock, ns."""

    log_ns: int  # the recorder's receive time
    worker_id: int
    observation_ns: int
    start_ns: int
    end_ns: int
    schedule_revision: int = 1


@dataclass(frozen=True)
class EpisodeEnd:
    episode: int
    steps: int
    episode_return: float
    terminated: bool
    truncated: bool
    log_ns: int = 0  # when the bag received it


def inter_arrival_ms(times_ns) -> np.ndarray:
    """Differences of consecutive times (ns), in ms."""
    t = np.asarray(times_ns, dtype=np.int64)
    return np.diff(t) / 1e6


def interval_ratios(samples, min_interval: float) -> list[tuple[float, float, float]]:
    """From cumulative (t, ticks, fresh_ticks) samples: (t0, t1, delta fresh / delta ticks) over
    consecutive intervals [t0, t1] of at least `min_interval` (t's unit) and at least one tick. A drop
    in ticks (a new measurement window) starts over from that sample."""
    out: list[tuple[float, float, float]] = []
    anchor = None
    for t, ticks, fresh in samples:
        if ticks is None or fresh is None:
            continue
        if anchor is None or ticks < anchor[1]:
            anchor = (t, ticks, fresh)
            continue
        dt, dticks = t - anchor[0], ticks - anchor[1]
        if dt >= min_interval and dticks > 0:
            out.append((anchor[0], t, (fresh - anchor[2]) / dticks))
            anchor = (t, ticks, fresh)
    return out


def ratio_over_time(diag_records, min_interval_s: float = 0.9) -> list[tuple[int, int, float]]:
    """Fresh-action ratio per interval (>= `min_interval_s`) from the arbiter's diagnostics,
    [(log time ns, statistics dict)] with cumulative control.ticks and fresh_ticks."""
    samples = [(t, (s.get("control") or {}).get("ticks"), s.get("fresh_ticks")) for t, s in diag_records]
    return interval_ratios(samples, min_interval_s * 1e9)


def ratio_from_timeline(records) -> list[tuple[float, float, float]]:
    """Fresh-action ratio per interval from timeline.jsonl records (t in s, cumulative ratio, ticks)."""
    samples = []
    for r in records:
        ratio, ticks = r.get("fresh_action_ratio"), r.get("ticks")
        if ratio is not None and ticks is not None and r.get("t") is not None:
            samples.append((float(r["t"]), ticks, ratio * ticks))
    return interval_ratios(samples, 0.0)


def action_ages_ms(actions) -> np.ndarray:
    """Age of each action when the recorder received it: log time - observation stamp, ms."""
    return np.asarray([(a.log_ns - a.observation_ns) / 1e6 for a in actions], dtype=float)


def middle_window(times_ns, width_s: float) -> tuple[int, int]:
    """[t0, t1) of `width_s` seconds centred between the first and the last time."""
    t = np.asarray(times_ns, dtype=np.int64)
    mid = int(t[0]) + (int(t[-1]) - int(t[0])) // 2
    half = int(width_s * 1e9) // 2
    return mid - half, mid + half


def worker_spans(actions, t0_ns: int, t1_ns: int) -> dict[int, list[tuple[int, int]]]:
    """Per worker, the (inference_start, inference_end) spans (ns) that overlap [t0, t1], in order."""
    spans: dict[int, list[tuple[int, int]]] = {}
    for a in actions:
        if a.end_ns >= t0_ns and a.start_ns <= t1_ns:
            spans.setdefault(a.worker_id, []).append((a.start_ns, a.end_ns))
    return {w: sorted(s) for w, s in sorted(spans.items())}


def episode_returns(ends, until_ns: int | None = None) -> list[EpisodeEnd]:
    """One entry per episode (the last message wins: a latched topic can repeat itself), in order.
    With `until_ns` (the last command's time) episodes that ended later are left out: on stop the
    arbiter goes first and the sim falls on the held command, episodes that are not the policy's."""
    by_episode = {e.episode: e for e in ends if until_ns is None or e.log_ns <= until_ns}
    return [by_episode[k] for k in sorted(by_episode)]


def percentiles(values, qs=(50, 99)) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    return {f"p{q:g}": float(np.percentile(v, q)) for q in qs} if v.size else {}


# ---------------------------------------------------------------------------------------------------
# Figures
