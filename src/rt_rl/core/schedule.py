"""Staggering schedule: N inference workers on one shared slot clock.

Paper A staggers N workers so that completions are spread evenly, one every T/N seconds. Instead of
the released per-process sleeps (which drift and do not recover from an underestimated T), every
worker derives its start times from one grid published by the arbiter:

    slot k                   c_k   = epoch + k * spacing
    worker owning slot k     w     = k mod N
    worker start for slot k  s_k   = c_k - lead,   lead = T + margin

    spacing = max(control_period, T / N)

A worker started at s_k finishes `margin` before c_k (the margin covers transport). With
N >= T / period the spacing is one control period and the epoch is an arbiter tick, so every tick
finds an action that completed just before it: fresh-action ratio 1 and the smallest possible action
age (about T + margin). With fewer workers the spacing is T/N, one action
every T/N seconds, and the fresh ratio is min(1, N * period / T), the theoretical value.

The arbiter recomputes the grid whenever its estimate of T moves by more than `retune_tolerance`; the
new grid starts after the old one's last issued slot so no two workers collide. All times are seconds
on the arbiter's clock; workers on other hosts need a synchronised clock (PTP/NTP) to follow it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    revision: int
    num_workers: int
    control_period: float
    inference_time: float
    spacing: float
    lead: float
    epoch: float

    @property
    def cycle(self) -> float:
        """Time between two starts of the same worker."""
        return self.num_workers * self.spacing

    def predicted_fresh_ratio(self) -> float:
        return min(1.0, self.num_workers * self.control_period / max(self.inference_time, 1e-9))

    def next_start(self, worker_id: int, now: float) -> tuple[float, int]:
        """Earliest start time >= now of a slot owned by `worker_id`, and that slot's index k."""
        if not 0 <= worker_id < self.num_workers:
            raise ValueError(f"worker_id {worker_id} outside 0..{self.num_workers - 1}")
        # Slots owned by the worker: k = worker_id + j*N; start = epoch + k*spacing - lead.
        first = self.epoch + worker_id * self.spacing - self.lead
        j = max(0, math.ceil((now - first) / self.cycle - 1e-9))
        return first + j * self.cycle, worker_id + j * self.num_workers


def make_schedule(
    num_workers: int,
    control_period: float,
    inference_time: float,
    tick_phase: float,
    not_before: float,
    margin: float = 0.001,
    revision: int = 1,
) -> Schedule:
    """Lay a grid whose first slot is an arbiter tick, late enough that no start is before `not_before`.

    `tick_phase` is any arbiter tick time (ticks are tick_phase + n*control_period).
    """
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    if control_period <= 0 or inference_time <= 0:
        raise ValueError("control_period and inference_time must be > 0")
    spacing = max(control_period, inference_time / num_workers)
    lead = inference_time + margin
    n = math.ceil((not_before + lead - tick_phase) / control_period)
    epoch = tick_phase + n * control_period
    return Schedule(revision, num_workers, control_period, inference_time, spacing, lead, epoch)


def needs_retune(current: Schedule, estimate: float, tolerance: float) -> bool:
    """True when the measured T moved enough that the grid no longer fits.

    An overrun (estimate above the grid's T) retunes at once beyond the tolerance; a shrink only when
    it is larger than the tolerance too, to avoid flapping on noise.
    """
    return abs(estimate - current.inference_time) > tolerance * current.inference_time


class Retuner:
    """Decides when to re-lay the grid: only when T has been off by more than `tolerance` for
    `hold_time` seconds in a row. A one-off burst of slow inferences (a page-cache flush, another
    process) then costs a few late actions instead of a grid change, whose transition costs more.
    """

    def __init__(self, tolerance: float, hold_time: float) -> None:
        self.tolerance = tolerance
        self.hold_time = hold_time
        self._off_since: float | None = None

    def update(self, now: float, current: Schedule, estimate: float) -> bool:
        if not needs_retune(current, estimate, self.tolerance):
            self._off_since = None
            return False
        if self._off_since is None:
            self._off_since = now
        if now - self._off_since >= self.hold_time:
            self._off_since = None
            return True
        return False


class InferenceTimeEstimator:
    """Running estimate of T: a high percentile of the last `window` measured inference durations.

    A high percentile (not the mean) because a start slot sized for the mean lets every slower-than-mean
    inference miss its tick.
    """

    def __init__(self, window: int = 50, percentile: float = 95.0) -> None:
        self.window = window
        self.percentile = percentile
        self._samples: list[float] = []

    def add(self, seconds: float) -> None:
        if math.isfinite(seconds) and seconds >= 0:
            self._samples.append(seconds)
            del self._samples[: -self.window]

    def __len__(self) -> int:
        return len(self._samples)

    def estimate(self) -> float:
        if not self._samples:
            raise ValueError("no inference time measured yet")
        ordered = sorted(self._samples)
        idx = min(len(ordered) - 1, math.ceil(self.percentile / 100.0 * len(ordered)) - 1)
        return ordered[max(idx, 0)]
