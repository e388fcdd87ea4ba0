"""The arbiter's measurement window and its statistics, with bounded memory (no ROS here).

A run of hours must not grow: every sample series is a fixed-capacity ring (`Ring`), counters are
plain integers. Counts (ticks, fresh, fallback, watchdog, superseded, rejected, actions per worker)
are exact over the whole window; percentiles are exact over the newest `capacity` samples of each
series (65 536 by default: 11 minutes of 100 Hz ticks). `summarize` is a pure function of a
`Snapshot`, so the numbers a user reads are tested against a reference computation.

The window opens at the first fresh action once every worker follows the first schedule (the
free-running warm-up before it is not what the schedule delivers); `WindowGate` decides that.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

DEFAULT_CAPACITY = 65_536


class Ring:
    """Fixed-capacity float64 ring buffer; `values()` returns the newest samples, oldest first."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._buf = np.empty(capacity, dtype=np.float64)
        self.total = 0  # samples ever appended

    @property
    def capacity(self) -> int:
        return self._buf.size

    def append(self, value: float) -> None:
        self._buf[self.total % self._buf.size] = value
        self.total += 1

    def __len__(self) -> int:
        return min(self.total, self._buf.size)

    def values(self, last: int | None = None) -> np.ndarray:
        """A copy of the newest `last` (default: all kept) samples, oldest first."""
        n = len(self) if last is None else min(last, len(self))
        end = self.total % self._buf.size
        idx = (np.arange(end - n, end)) % self._buf.size
        return self._buf[idx].copy()


def standard_error(values: Sequence[float]) -> float:
    """Standard error of the mean of `values` (sample std / sqrt n); NaN below two values."""
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan


def percentiles_ms(samples_s: Iterable[float], which: Sequence[str] = ("p50", "p99", "max")) -> dict:
    """Percentiles (numpy's default linear interpolation) of second-valued samples, in ms rounded to
    1 µs; non-finite samples are ignored; no samples -> None values."""
    arr = np.asarray(list(samples_s) if not isinstance(samples_s, np.ndarray) else samples_s, dtype=float)
    arr = arr[np.isfinite(arr)]
    out: dict[str, float | None] = {}
    for key in which:
        if arr.size == 0:
            out[key] = None
        elif key == "max":
            out[key] = round(float(arr.max()) * 1e3, 3)
        elif key == "mean":
            out[key] = round(float(arr.mean()) * 1e3, 3)
        else:
            out[key] = round(float(np.percentile(arr, float(key[1:]))) * 1e3, 3)
    return out


@dataclass
class WindowGate:
    """Opens once: at the first fresh tick at or after `opens_after` (set when the first schedule has
    gone round once: its epoch plus one cycle)."""

    opens_after: float = math.inf
    opened_at: float | None = None

    def update(self, now: float, fresh: bool) -> bool:
        if self.opened_at is None and fresh and now >= self.opens_after:
            self.opened_at = now
        return self.opened_at is not None


@dataclass
class Snapshot:
    """Everything `summarize` needs: copies taken under the arbiter's lock in microseconds."""

    period: float
    num_workers: int
    tick_times: np.ndarray  # monotonic publish times, newest `capacity`
    ticks: int  # exact count in the window
    kinds: dict[str, int]
    ages: np.ndarray  # s, fresh ticks
    recent_periods: np.ndarray  # s, the last `recent_window` s of periods
    worker_actions: dict[int, int]
    worker_inference: dict[int, np.ndarray]  # s
    superseded: int
    rejected: dict[str, int]
    inference_model: float | None = None  # s, T the predicted ratio uses (None: mean measured)
    scope: str = "window"  # "window": percentiles over the whole window; "recent": its last seconds
    recent_window: float = 60.0  # s


class Measurement:
    """Accumulates ticks and actions inside the window. Not thread-safe: the caller holds a lock."""

    def __init__(
        self, period: float, num_workers: int, capacity: int = DEFAULT_CAPACITY, recent_window: float = 60.0
    ) -> None:
        self.period = period
        self.num_workers = num_workers
        self.capacity = capacity
        self.recent_ticks = max(2, round(recent_window / period))
        self.tick_times = Ring(capacity)
        self.ages = Ring(capacity)
        self.kinds: dict[str, int] = {"fresh": 0, "fallback": 0, "watchdog": 0}
        self.worker_actions: dict[int, int] = {}
        self.worker_inference: dict[int, Ring] = {}
        self.superseded = 0
        self.rejected: dict[str, int] = {}

    def add_tick(self, kind: str, publish_time: float, age: float) -> None:
        self.tick_times.append(publish_time)
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if kind == "fresh":
            self.ages.append(age)

    def add_action(self, worker_id: int, inference_time: float) -> None:
        self.worker_actions[worker_id] = self.worker_actions.get(worker_id, 0) + 1
        ring = self.worker_inference.get(worker_id)
        if ring is None:
            ring = self.worker_inference[worker_id] = Ring(min(self.capacity, 8192))
        ring.append(inference_time)

    def add_superseded(self, count: int = 1) -> None:
        self.superseded += count

    def add_rejected(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def snapshot(self, inference_model: float | None = None, recent_only: bool = False) -> Snapshot:
        """Copies of what was measured. `recent_only`: the sample series cut to the last
        `recent_window` seconds (counts stay whole): what a running node reports every second, so
        that neither the copy (under the caller's lock) nor the percentiles (holding the GIL) grow
        with the length of the run and delay the control thread; the whole window is summarised once,
        at the end."""
        recent = self.tick_times.values(self.recent_ticks + 1)
        last = self.recent_ticks if recent_only else None
        return Snapshot(
            period=self.period,
            num_workers=self.num_workers,
            tick_times=recent if recent_only else self.tick_times.values(),
            ticks=self.tick_times.total,
            kinds=dict(self.kinds),
            ages=self.ages.values(last),
            recent_periods=np.diff(recent),
            worker_actions=dict(self.worker_actions),
            worker_inference={w: r.values(last) for w, r in self.worker_inference.items()},
            superseded=self.superseded,
            rejected=dict(self.rejected),
            inference_model=inference_model,
            scope="recent" if recent_only else "window",
            recent_window=self.recent_ticks * self.period,
        )


def summarize(s: Snapshot) -> dict:
    """The arbiter's statistics, a pure function of what was measured."""
    periods = np.diff(s.tick_times)
    span = float(s.tick_times[-1] - s.tick_times[0]) if s.tick_times.size > 1 else 0.0
    inference = [v for v in s.worker_inference.values() if v.size]
    all_inference = np.concatenate(inference) if inference else np.empty(0)
    mean_t = float(all_inference.mean()) if all_inference.size else None
    model_t = s.inference_model if s.inference_model is not None else mean_t
    fresh = s.kinds.get("fresh", 0)
    return {
        "percentiles_over": (
            "whole window" if s.scope == "window" else f"last {s.recent_window:g} s (counts: whole window)"
        ),
        "control": {
            "rate_hz_target": round(1.0 / s.period, 3),
            "rate_hz_achieved": round((s.tick_times.size - 1) / span, 3) if span > 0 else None,
            "period_ms": percentiles_ms(periods, ("p50", "p99", "max")),
            "recent_period_ms": percentiles_ms(s.recent_periods, ("p50", "p99", "max")),
            "ticks": s.ticks,
        },
        "fresh_action_ratio": round(fresh / s.ticks, 4) if s.ticks else None,
        "predicted_fresh_action_ratio": (
            round(min(1.0, s.num_workers * s.period / model_t), 4) if model_t else None
        ),
        "inference_ms_mean": round(mean_t * 1e3, 3) if mean_t is not None else None,
        "fresh_ticks": fresh,
        "fallback_ticks": s.kinds.get("fallback", 0) + s.kinds.get("watchdog", 0),
        "watchdog_ticks": s.kinds.get("watchdog", 0),
        "superseded_actions": s.superseded,
        "rejected_actions": sum(s.rejected.values()),
        "rejected_by_reason": dict(sorted(s.rejected.items())),
        "action_age_ms": percentiles_ms(s.ages, ("p50", "p99", "max")),
        "workers": [
            {
                "id": w,
                "actions": s.worker_actions.get(w, 0),
                "inference_ms": percentiles_ms(s.worker_inference.get(w, np.empty(0)), ("p50", "p99")),
            }
            for w in sorted(set(s.worker_actions) | set(range(s.num_workers)))
        ],
    }


@dataclass
class CpuWindow:
    """Per-process CPU over a measurement window, in % of one core (pure: fed with CPU seconds)."""

    start_wall: float | None = None
    start_cpu: dict[str, float] = field(default_factory=dict)

    def open(self, now: float, cpu_seconds: dict[str, float | None]) -> None:
        self.start_wall = now
        self.start_cpu = {k: v for k, v in cpu_seconds.items() if v is not None}

    def percent(self, now: float, cpu_seconds: dict[str, float | None]) -> dict[str, float | None]:
        if self.start_wall is None or now <= self.start_wall:
            return {k: None for k in cpu_seconds}
        span = now - self.start_wall
        return {
            k: (
                round(100.0 * (v - self.start_cpu[k]) / span, 1)
                if v is not None and k in self.start_cpu
                else None
            )
            for k, v in cpu_seconds.items()
        }
