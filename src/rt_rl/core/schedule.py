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

    def next_slot_start(self, now: float) -> float:
        """Earliest start time >= now of any worker's slot (sensor_ingest builds an observation for it)."""
        return self.next_slot(now)[0]

    def next_slot(self, now: float) -> tuple[float, int]:
        """Earliest start time >= now of any worker's slot, and the worker that owns it (k mod N)."""
        first = self.epoch - self.lead
        k = max(0, math.ceil((now - first) / self.spacing - 1e-9))
        return first + k * self.spacing, k % self.num_workers


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


class SlotFollower:
    """A worker's side of the grid: which slot to start next, and when (no ROS, no sleeping here).

    Late-start rule: a worker that wakes up to `late_fraction` of a slot spacing after its slot's start
    time still takes that slot, starting at once (one late completion costs less than a missing one);
    later than that it waits for its next slot. A slot is never run twice, even when an inference is
    shorter than the slack.
    """

    def __init__(self, worker_id: int, late_fraction: float = 0.5) -> None:
        if not 0.0 <= late_fraction < 1.0:
            raise ValueError(f"late_fraction must be in [0, 1), got {late_fraction}")
        self.worker_id = worker_id
        self.late_fraction = late_fraction
        self.last: tuple[int, int] = (0, -1)  # (schedule revision, slot index) last started
        self.late_starts = 0
        self.skipped_slots = 0

    def next_slot(self, schedule: Schedule, now: float) -> tuple[float, int]:
        """(start time, slot index) of the next slot to run; a start time < now means: start at once."""
        slack = self.late_fraction * schedule.spacing
        start, k = schedule.next_start(self.worker_id, now - slack)
        if (schedule.revision, k) <= self.last:
            start, k = schedule.next_start(self.worker_id, start + 0.5 * schedule.cycle)
        return start, k

    def started(self, schedule: Schedule, k: int, start: float, now: float) -> None:
        """Record that slot k began at `now` (planned `start`); counts late starts and slots passed over."""
        rev_last, k_last = self.last
        if rev_last == schedule.revision and k_last >= 0:
            self.skipped_slots += max(0, (k - k_last) // schedule.num_workers - 1)
        if now - start > 0.1 * schedule.spacing:
            self.late_starts += 1
        self.last = (schedule.revision, k)


class SchedulePlanner:
    """The arbiter's side: the warm-up gate, the first grid and the retunes (no ROS here).

    Gate: no grid is laid on a guess. Every worker must have been heard `warmup_samples` times (its
    inference time is measured, its actions reach the arbiter) and must be subscribed to the schedule
    (DDS discovery of a late joiner can take a while on a busy machine). The first `discard` samples of
    each worker are not used: the first inferences of a fresh process are slow (cold caches, lazy
    initialisation; seen here: 70 ms against a steady 6 ms), and a high percentile of a few samples
    would lay the first grid for that. Then the first grid is laid
    from a high percentile of the measured inference times, and re-laid when that estimate stays beyond
    the retune tolerance for `retune_hold` seconds. A new grid starts after every inference of the old
    one has finished (`not_before = now + old lead`), so no two workers collide.
    """

    def __init__(
        self,
        num_workers: int,
        control_period: float,
        margin: float,
        warmup_samples: int,
        retuner: Retuner,
        estimator: InferenceTimeEstimator | None = None,
        discard: int = 0,
    ) -> None:
        self.num_workers = num_workers
        self.control_period = control_period
        self.margin = margin
        self.warmup_samples = warmup_samples
        self.retuner = retuner
        self.estimator = estimator or InferenceTimeEstimator()
        self.discard = discard
        self.heard = [0] * num_workers
        self.schedule: Schedule | None = None

    def add_inference(self, worker_id: int, seconds: float) -> None:
        if not 0 <= worker_id < self.num_workers:
            return  # not a worker of this graph (the arbiter counts it elsewhere)
        self.heard[worker_id] += 1
        if self.heard[worker_id] > self.discard:
            self.estimator.add(seconds)

    def ready(self, subscribers: int) -> bool:
        return min(self.heard) >= self.discard + self.warmup_samples and subscribers >= self.num_workers

    def plan(self, now: float, tick_phase: float, subscribers: int, monotonic_now: float) -> Schedule | None:
        """A new grid to publish, or None to keep the current one. `now`/`tick_phase` are on the
        grid's clock; `monotonic_now` times the retune hold."""
        current = self.schedule
        if current is None and not self.ready(subscribers):
            return None
        if not len(self.estimator):
            return None
        estimate = self.estimator.estimate()
        if current is not None and not self.retuner.update(monotonic_now, current, estimate):
            return None
        lead = current.lead if current else estimate
        self.schedule = make_schedule(
            self.num_workers,
            self.control_period,
            estimate,
            tick_phase=tick_phase,
            not_before=now + lead,
            margin=self.margin,
            revision=(current.revision + 1) if current else 1,
        )
        return self.schedule
