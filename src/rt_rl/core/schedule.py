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
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

# Time tolerance: 1 us, above the float resolution of wall-clock seconds (0.24 us in 2026) and far below
# any slot spacing. A smaller step added to a wall time does not move it (an endless loop). Searches
# accept a start up to EPS before `now` (float noise); moving past a slot therefore steps 2 * EPS.
EPS = 1e-6
# A back-to-back grid is laid this much above the typical slot length and re-laid once the typical
# length passes it by as much again: no re-lay for each new maximum of a noisy percentile.
CYCLE_HEADROOM = 0.005
# ... and re-laid below a back-to-back cycle once the typical slot (with its headroom) is this much
# shorter: a cycle laid during a slow start (first inferences, a busy moment) would otherwise stay,
# every bit of it above the slot length a lost fresh tick (measured: 11.32 ms laid, 11.06 ms taken).
CYCLE_SHRINK = 0.01
# A shrinking T re-lays the grid beyond the relative tolerance or this many control periods, whichever
# is smaller: a lead left long by a passing tail (measured: 3 ms at T = 41 ms, under 10 %; a first grid
# laid on the warm-up's slow inferences, 1.2-2.5 ms) costs every action that much age, against an age
# budget of T + 0.3 P. The p95 of 50 samples moves by less between windows in steady state (0.2-0.5 ms).
SHRINK_PERIODS = 0.1
ALIGN_SLACK = 2e-5  # seconds a tick-locked start is planned after its sensor sample (see tick_shift)


@dataclass(frozen=True)
class Schedule:
    """One grid. Slot k completes at `epoch + k * spacing` and belongs to `workers[k % len(workers)]`
    (worker ids need not be 0..N-1: an auto-sized pool activates some of its processes)."""

    revision: int
    num_workers: int
    control_period: float
    inference_time: float
    spacing: float
    lead: float
    epoch: float
    workers: tuple[int, ...] = ()  # slot order; () = 0..num_workers-1
    sensor_period: float = 0.0  # > 0: starts are moved to just after a sensor sample (see `start`)
    sensor_phase: float = 0.0  # a time at which a fresh sample can be built into an observation

    def __post_init__(self) -> None:
        if not self.workers:
            object.__setattr__(self, "workers", tuple(range(self.num_workers)))
        if len(self.workers) != self.num_workers:
            raise ValueError(f"schedule lists {len(self.workers)} workers, num_workers is {self.num_workers}")

    @property
    def cycle(self) -> float:
        """Time between two starts of the same worker."""
        return self.num_workers * self.spacing

    def predicted_fresh_ratio(self) -> float:
        return min(1.0, self.control_period / self.spacing)

    def completion(self, k: int) -> float:
        """Slot k's due time: its inference ends `margin` (lead - T) before it."""
        return self.epoch + k * self.spacing

    def start(self, k: int) -> float:
        """Slot k's start: `lead` before its completion, then moved back to just after the newest
        sensor sample. The move costs no freshness (the sample it reads is the one it would have read
        at the later start) and gives the inference up to one sensor period of extra slack."""
        t = self.completion(k) - self.lead
        if self.sensor_period > 0:
            t = (
                self.sensor_phase
                + math.floor((t - self.sensor_phase + EPS) / self.sensor_period) * self.sensor_period
            )
        return t

    def completes_for(self, tick: float) -> bool:
        """Some slot of this grid is planned to finish in the control period that ends at `tick`
        (so its action is the one that tick should actuate)."""
        margin = self.lead - self.inference_time
        k = math.floor((tick + margin + EPS - self.epoch) / self.spacing)
        return k >= 0 and self.completion(k) - margin > tick - self.control_period + EPS

    def owner(self, k: int) -> int:
        return self.workers[k % self.num_workers]

    def next_start(self, worker_id: int, now: float) -> tuple[float, int]:
        """Earliest start time >= now of a slot owned by `worker_id`, and that slot's index k."""
        if worker_id not in self.workers:
            raise ValueError(f"worker {worker_id} is not in this schedule ({list(self.workers)})")
        i = self.workers.index(worker_id)
        first = self.epoch + i * self.spacing - self.lead
        j = max(0, math.ceil((now - first) / self.cycle - 1e-9))
        while (
            j > 0 and self.start(i + (j - 1) * self.num_workers) >= now - EPS
        ):  # the estimate overshot (rounding)
            j -= 1
        while self.start(i + j * self.num_workers) < now - EPS:  # an aligned start is a bit earlier
            j += 1
        k = i + j * self.num_workers
        return self.start(k), k

    def next_slot_start(self, now: float) -> float:
        """Earliest start time >= now of any worker's slot (sensor_ingest builds an observation for it)."""
        return self.next_slot(now)[0]

    def next_slot(self, now: float) -> tuple[float, int]:
        """Earliest start time >= now of any worker's slot, and the worker that owns it."""
        start, k = self.next_slot_index(now)
        return start, self.owner(k)

    def next_slot_index(self, now: float) -> tuple[float, int]:
        first = self.epoch - self.lead
        k = max(0, math.ceil((now - first) / self.spacing - 1e-9))
        while k > 0 and self.start(k - 1) >= now - EPS:
            k -= 1
        while self.start(k) < now - EPS:
            k += 1
        return self.start(k), k


def make_schedule(
    num_workers: int,
    control_period: float,
    inference_time: float,
    tick_phase: float,
    not_before: float,
    margin: float = 0.001,
    revision: int = 1,
    workers: tuple[int, ...] = (),
    sensor_period: float = 0.0,
    sensor_phase: float = 0.0,
    cycle_time: float | None = None,
    min_lead: float = 0.0,
) -> Schedule:
    """Lay a grid whose first slot is an arbiter tick, late enough that no start is before `not_before`.

    `tick_phase` is any arbiter tick time (ticks are tick_phase + n*control_period). The lead is
    `inference_time` (a high percentile: the action must make its tick) plus the margin; the spacing
    of workers that run back to back (fewer than T/P) is `cycle_time` / N, a typical slot length (by
    default `inference_time`): a worker that starts a slot late just starts the next one late too,
    so the spacing only has to exceed the mean, and every bit of it above costs fresh ticks.
    `min_lead` > 0 starts slots at least that long before their tick (a fixed actuation delay: the
    observation is then that old at the tick, whatever T).
    """
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    if control_period <= 0 or inference_time <= 0:
        raise ValueError("control_period and inference_time must be > 0")
    spacing = max(control_period, (cycle_time or inference_time) / num_workers)
    lead = max(inference_time + margin, min_lead)
    n = math.ceil((not_before + lead + sensor_period - tick_phase) / control_period - 1e-9)
    epoch = tick_phase + n * control_period
    return Schedule(
        revision,
        num_workers,
        control_period,
        inference_time,
        spacing,
        lead,
        epoch,
        tuple(workers),
        sensor_period,
        sensor_phase,
    )


class GridTimeline:
    """The grids in force, oldest first: what a worker or the ingest follows across a re-lay.

    A new grid does not cut the old one off at the moment it arrives. The old grid keeps serving
    every slot that completes before the new epoch, as long as the worker that owns it can finish it
    (at the new grid's T) before that worker's first start on the new grid; the new grid serves from
    its epoch on. So a grid change drops no tick the old grid would have served, and no worker has
    two inferences at once. The arbiter lays the new grid so that this holds (`next_grid`).
    """

    def __init__(self, keep: int = 3) -> None:
        self.grids: list[Schedule] = []
        self.keep = keep

    @property
    def current(self) -> Schedule | None:
        return self.grids[-1] if self.grids else None

    def update(self, schedule: Schedule) -> bool:
        """Add a newer grid (True) or ignore a repeat or an older one (False)."""
        if self.grids and schedule.revision <= self.grids[-1].revision:
            return False
        self.grids.append(schedule)
        del self.grids[: -self.keep]
        return True

    def _valid(self, i: int, k: int) -> bool:
        """Slot k of grid i is served: it completes before the next grid's epoch and its owner can
        finish it before its own first start on the next grid."""
        if i == len(self.grids) - 1:
            return True
        g, nxt = self.grids[i], self.grids[i + 1]
        if g.completion(k) >= nxt.epoch - EPS:
            return False
        w = g.owner(k)
        if w not in nxt.workers:
            return True  # leaving the pool: it serves its old slots, then has none
        return g.start(k) + nxt.inference_time <= nxt.start(nxt.workers.index(w)) + EPS

    def _first_served(self, now: float, search) -> tuple[float, int, Schedule] | None:
        """The earliest served slot at or after `now` that `search(grid, t)` -> (start, k) finds, or
        None; `search` returns None for a grid it has nothing in."""
        for i, g in enumerate(self.grids):
            found = search(g, now)
            while found is not None:
                start, k = found
                if self._valid(i, k):
                    return start, k, g
                if i == len(self.grids) - 1 or g.completion(k) >= self.grids[i + 1].epoch:
                    break  # later slots of this grid are past its end
                found = search(g, start + 2 * EPS)
        return None

    def next_start(self, worker_id: int, now: float) -> tuple[float, int, Schedule] | None:
        """Earliest served slot of `worker_id` starting at or after `now`: (start, k, its grid)."""
        return self._first_served(
            now, lambda g, t: g.next_start(worker_id, t) if worker_id in g.workers else None
        )

    def next_slot(self, now: float) -> tuple[float, int] | None:
        """Earliest served slot of any worker starting at or after `now`: (start, owner)."""
        found = self._first_served(now, lambda g, t: g.next_slot_index(t))
        return None if found is None else (found[0], found[2].owner(found[1]))


def next_grid(
    old: Schedule | None,
    workers: tuple[int, ...],
    control_period: float,
    inference_time: float,
    tick_phase: float,
    now: float,
    margin: float,
    notice: float,
    sensor_period: float = 0.0,
    sensor_phase: float = 0.0,
    cycle_time: float | None = None,
    min_lead: float = 0.0,
) -> Schedule:
    """The grid that follows `old` without losing a tick the old one would serve.

    Its epoch is the first tick a `notice` after `now` (time for every worker to hear of it) plus its
    lead. The workers take the new slots in the order in which they finish their last old slot, so
    the first new slot goes to the worker free first: with the new T within the old cycle, every old
    slot before the new epoch is still served (`GridTimeline`). A worker new to the pool is free at
    once and goes first.
    """
    if not workers:
        raise ValueError("a grid needs at least one worker")
    revision = old.revision + 1 if old else 1
    base = make_schedule(
        len(workers),
        control_period,
        inference_time,
        tick_phase,
        now + notice,
        margin,
        revision,
        tuple(workers),
        sensor_period,
        sensor_phase,
        cycle_time,
        min_lead,
    )
    if old is None:
        return base

    def free_at(w: int) -> float:
        if w not in old.workers:
            return -math.inf
        # the last old slot of w that completes before the new epoch, finished at the new T
        k = old.workers.index(w) + old.num_workers * math.floor(
            (base.epoch - EPS - old.completion(old.workers.index(w))) / old.cycle
        )
        return old.start(k) + inference_time if k >= 0 else -math.inf

    order = tuple(sorted(workers, key=lambda w: (free_at(w), w)))
    return replace(base, workers=order)


def needs_retune(current: Schedule, estimate: float, tolerance: float, typical: float | None = None) -> bool:
    """True when the measured T moved enough that the grid no longer fits.

    An overrun needs one as soon as it costs ticks: the high percentile `estimate` beyond the margin
    (actions miss their tick), or the `typical` slot length (default: `estimate`) beyond a worker's
    cycle (workers back to back start each slot a little later than the last until one is skipped),
    and at most beyond the tolerance. A shrink of T needs one only beyond the tolerance, to avoid
    flapping on noise; so the lead ratchets up to what the workers really take. A back-to-back cycle
    (spacing above the control period) shrinks once the typical slot is `CYCLE_SHRINK` below it.
    """
    typical = estimate if typical is None else typical
    if typical > current.cycle * (1.0 + CYCLE_HEADROOM) + EPS:
        return True
    back_to_back = current.spacing > current.control_period + EPS
    if back_to_back and typical < current.cycle * (1.0 - CYCLE_SHRINK) - EPS:
        return True
    if estimate > current.inference_time:
        return estimate > min(current.inference_time * (1.0 + tolerance), current.lead)
    shrink = min(tolerance * current.inference_time, SHRINK_PERIODS * current.control_period)
    return current.inference_time - estimate > shrink


class Retuner:
    """Decides when to re-lay the grid: only when T has been off by more than `tolerance` for a while.
    A one-off burst of slow inferences (a page-cache flush, another process) then costs a few late
    actions instead of a grid change. An overrun (T above the grid's) waits `overrun_hold`, shorter:
    a grid laid for too small a T misses ticks until it is re-laid; a shrink waits `hold_time`.
    """

    def __init__(self, tolerance: float, hold_time: float, overrun_hold: float | None = None) -> None:
        self.tolerance = tolerance
        self.hold_time = hold_time
        self.overrun_hold = hold_time if overrun_hold is None else min(overrun_hold, hold_time)
        self._off_since: float | None = None

    def update(self, now: float, current: Schedule, estimate: float, typical: float | None = None) -> bool:
        if not needs_retune(current, estimate, self.tolerance, typical):
            self._off_since = None
            return False
        if self._off_since is None:
            self._off_since = now
        overrun = estimate > current.inference_time or (typical or 0.0) > current.cycle
        hold = self.overrun_hold if overrun else self.hold_time
        if now - self._off_since >= hold:
            self._off_since = None
            return True
        return False


class PoolSizer:
    """How many workers an auto-sized pool keeps active: the fewest that give a fresh action every
    tick, ceil(T / P) + `extra` (one more than the bare N*P >= T, for jitter), within [min, max].
    It grows at once (a missing worker costs ticks) and shrinks only after the smaller size has held
    for `shrink_hold` seconds (a retired worker is a process to restart)."""

    def __init__(self, min_workers: int, max_workers: int, extra: int = 1, shrink_hold: float = 5.0) -> None:
        if not 1 <= min_workers <= max_workers:
            raise ValueError(f"need 1 <= min_workers <= max_workers, got {min_workers}, {max_workers}")
        self.min_workers, self.max_workers, self.extra, self.shrink_hold = (
            min_workers,
            max_workers,
            extra,
            shrink_hold,
        )
        self.size: int | None = None
        self._smaller_since: float | None = None

    def wanted(self, inference_time: float, control_period: float) -> int:
        n = math.ceil(inference_time / control_period - 1e-9) + self.extra
        return max(self.min_workers, min(self.max_workers, n))

    def update(self, inference_time: float, control_period: float, now: float) -> int:
        want = self.wanted(inference_time, control_period)
        if self.size is None or want > self.size:
            self.size, self._smaller_since = want, None
        elif want < self.size:
            if self._smaller_since is None:
                self._smaller_since = now
            if now - self._smaller_since >= self.shrink_hold:
                self.size, self._smaller_since = want, None
        else:
            self._smaller_since = None
        return self.size


def pool_processes(
    alive: list[int], active: list[int], wanted: int, spares: int, max_workers: int
) -> tuple[list[int], list[int]]:
    """The launcher's side of an auto pool: worker ids to start and to retire so that `wanted` active
    workers have `spares` warm ones beside them (processes up, torch imported, policy warm). Starts
    take the lowest free ids; retirements the highest idle ones (never an active worker)."""
    target = min(max_workers, wanted + spares)
    start = [w for w in range(max_workers) if w not in alive][: max(0, target - len(alive))]
    idle = sorted((w for w in alive if w not in active), reverse=True)
    retire = idle[: max(0, len(alive) - target)]
    return start, retire


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
        return self.quantile(self.percentile)

    def mean(self) -> float:
        if not self._samples:
            raise ValueError("no inference time measured yet")
        return sum(self._samples) / len(self._samples)

    def typical(self) -> float:
        """The mean, but no less than the median of the newest quarter of the window: a step up in T
        shows there after a few samples (the mean of the whole window follows it slowly)."""
        newest = sorted(self._samples[-max(1, len(self._samples) // 4) :])
        return max(self.mean(), newest[len(newest) // 2])

    def quantile(self, percentile: float) -> float:
        if not self._samples:
            raise ValueError("no inference time measured yet")
        ordered = sorted(self._samples)
        idx = min(len(ordered) - 1, math.ceil(percentile / 100.0 * len(ordered)) - 1)
        return ordered[max(idx, 0)]


# The ingest and a worker compute a slot's start from the same grid: equal up to float rounding.
SLOT_MATCH = 1e-4


def for_this_slot(slot_starts: Sequence[float], start: float) -> tuple[int | None, int]:
    """Which observation a worker uses at its slot starting at `start`, of those it holds (oldest
    first, each tagged with the start of the slot the ingest built it for; 0: before the schedule,
    for any slot): the index of the newest one built for this slot or a later one (None: none yet),
    and how many are leftovers, built for an earlier slot. A leftover is an observation that arrived
    after its worker gave up on that slot; taken at the next slot it would be a whole cycle old (seen
    live: 80 ms old inputs at N = 8, T = 40 ms, their actions rejected as out of order)."""
    usable = [i for i, s in enumerate(slot_starts) if s <= 0 or s >= start - SLOT_MATCH]
    return (usable[-1] if usable else None), len(slot_starts) - len(usable)


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
        timeline = GridTimeline()
        timeline.update(schedule)
        found = self.next_in(timeline, now)
        if found is None:
            raise ValueError(f"worker {self.worker_id} is not in this schedule ({list(schedule.workers)})")
        return found[0], found[1]

    def next_in(self, timeline: GridTimeline, now: float) -> tuple[float, int, Schedule] | None:
        """The next slot to run across the grids in force: (start, k, its grid), or None (a spare)."""
        grid = timeline.current
        if grid is None:
            return None
        found = timeline.next_start(self.worker_id, now - self.late_fraction * grid.spacing)
        while found is not None and (found[2].revision, found[1]) <= self.last:
            found = timeline.next_start(self.worker_id, found[0] + 2 * EPS)
        return found

    def started(self, schedule: Schedule, k: int, start: float, now: float) -> None:
        """Record that slot k began at `now` (planned `start`); counts late starts and slots passed over."""
        rev_last, k_last = self.last
        if rev_last == schedule.revision and k_last >= 0:
            self.skipped_slots += max(0, (k - k_last) // schedule.num_workers - 1)
        if now - start > 0.1 * schedule.spacing:
            self.late_starts += 1
        self.last = (schedule.revision, k)


def tick_shift(tick_phase: float, lead: float, sensor_period: float, start_phase: float) -> float:
    """How much later (in [0, sensor_period)) to move the control ticks so that a slot planned `lead`
    before its tick starts exactly at `start_phase` (+ whole sensor periods): the worker then reads a
    sample taken just before it starts and its action lands `margin` before its tick, with no sensor
    period of waiting in between. Exact for every tick when the control period is a whole number of
    sensor periods; otherwise for every other tick or so (e.g. 250 Hz against 100 Hz: 0 and 2 ms)."""
    if sensor_period <= 0:
        return 0.0
    # aimed ALIGN_SLACK after the sample time, so that rounding at wall-clock magnitudes (float
    # resolution ~0.2 us) cannot move a start back by a whole sensor period
    return (start_phase + ALIGN_SLACK + lead - tick_phase) % sensor_period


def sensor_phase(stamps: Sequence[float], period: float) -> float:
    """The phase (in [0, period)) of sensor samples taken every `period`, from some of their stamps:
    a circular mean, robust to stamps on both sides of the wrap."""
    if period <= 0 or not stamps:
        raise ValueError("need a period > 0 and at least one stamp")
    angles = [2 * math.pi * ((t % period) / period) for t in stamps]
    mean = math.atan2(sum(map(math.sin, angles)), sum(map(math.cos, angles)))
    return (mean / (2 * math.pi) % 1.0) * period


class SchedulePlanner:
    """The arbiter's side: the warm-up gate, the first grid, the retunes and, for an auto-sized pool,
    which workers are active (no ROS here).

    Gate: no grid is laid on a guess. Every worker must have been heard `warmup_samples` times (its
    inference time is measured, its actions reach the arbiter) and must be subscribed to the schedule
    (DDS discovery of a late joiner can take a while on a busy machine). The first `discard` samples of
    each worker are not used: the first inferences of a fresh process are slow (cold caches, lazy
    initialisation; seen here: 70 ms against a steady 6 ms), and a high percentile of a few samples
    would lay the first grid for that.

    Then a grid is re-laid (`next_grid`, no tick lost) when the high-percentile estimate of T stays
    beyond the retune tolerance (`Retuner`), when a worker joins (heard again, or a new process) or
    leaves (not heard for `lost_after` seconds, or three of its cycles), and, with a `PoolSizer`, when
    the number of workers T needs changes: the active ones are the lowest ids heard; the others are
    warm spares that send a heartbeat and wait.
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
        pool: PoolSizer | None = None,
        notice: float = 0.06,
        lost_after: float = 1.5,
        sensor_period: float = 0.0,
        sensor_offset: float = 0.0,
        lock_ticks: bool = False,
        min_lead: float = 0.0,
    ) -> None:
        self.num_workers = num_workers  # worker ids are 0..num_workers-1 (max_workers for a pool)
        self.control_period = control_period
        self.margin = margin
        self.warmup_samples = warmup_samples
        self.retuner = retuner
        self.estimator = estimator or InferenceTimeEstimator()
        self.discard = discard
        self.pool = pool
        self.notice = notice
        self.lost_after = lost_after
        self.sensor_period = sensor_period
        self.sensor_offset = sensor_offset  # sample stamp -> observation ready at the worker
        self._stamps: deque[float] = deque(maxlen=64)  # recent observation stamps (sensor phase)
        # how long a slot occupies a worker (inference + turnaround): the spacing of back-to-back ones
        # follows the mean (a worker keeps up on average; a late start only delays the next, and each
        # bit of spacing above it costs fresh ticks: the 75th percentile cost 1-2 %)
        self.slots = InferenceTimeEstimator(self.estimator.window)
        self.lock_ticks = lock_ticks  # each new grid moves the ticks onto the sensor (`tick_shift`)
        self.min_lead = min_lead  # > 0: a fixed actuation delay (the arbiter holds actions till then)
        self.tick_shift = 0.0  # seconds the last grid moved the ticks (the caller moves its clock)
        self.heard = [0] * num_workers
        self.last_heard: list[float | None] = [None] * num_workers
        self.schedule: Schedule | None = None
        self.wanted: int | None = None

    def add_inference(
        self, worker_id: int, seconds: float, at: float | None = None, turnaround: float = 0.0
    ) -> None:
        """A worker's measured inference time (`at`: monotonic time it was heard; None: not tracked)
        and the turnaround it needs after one (a slot occupies it for both)."""
        if not 0 <= worker_id < self.num_workers:
            return  # not a worker of this graph (the arbiter counts it elsewhere)
        self.heard[worker_id] += 1
        if at is not None:
            self.last_heard[worker_id] = at
        if self.heard[worker_id] > self.discard:
            self.estimator.add(seconds)
            self.slots.add(seconds + max(turnaround, 0.0))

    def add_observation_stamp(self, stamp: float) -> None:
        """Sensor stamp of an observation an action was computed from (for the sensor phase)."""
        if stamp > 0:
            self._stamps.append(stamp)

    def ready(self, subscribers: int) -> bool:
        return min(self.heard) >= self.discard + self.warmup_samples and subscribers >= self.num_workers

    def alive(self, monotonic_now: float) -> list[int]:
        s = self.schedule
        limit = max(self.lost_after, 3 * s.cycle) if s else self.lost_after
        return [
            w
            for w in range(self.num_workers)
            if self.heard[w] > self.discard
            and (self.last_heard[w] is None or monotonic_now - self.last_heard[w] <= limit)
        ]

    def aligned_sensor(self, spacing: float, slack: float = 0.0) -> tuple[float, float]:
        """(sensor period, phase) to align starts to, or (0, 0) not to. Only where it is free: with a
        spacing of whole control periods and a sensor period of at most half of one, the move (less
        than a sensor period) keeps every completion in front of its own tick. With a spacing between
        whole periods (fewer workers than T/P) completions drift across the ticks, and moving each
        start by a different amount would put two in one tick and none in the next (measured: fresh
        ratio 0.7 instead of 0.99 at N = 8, T = 80.5 ms). A lead `slack` of a sensor period beyond
        T + margin (a fixed actuation delay) also keeps the completions in front of their ticks."""
        ticks = spacing / self.control_period
        if (
            self.sensor_period <= 0
            or not self._stamps
            or abs(ticks - round(ticks)) > 1e-6
            or (self.sensor_period > 0.5 * self.control_period and slack < self.sensor_period)
        ):
            return 0.0, 0.0
        return self.sensor_period, sensor_phase(self._stamps, self.sensor_period) + self.sensor_offset

    def change_period(self, period: float, switch_at: float, min_lead: float = 0.0) -> Schedule | None:
        """A new control period from the tick at `switch_at` on (a live rate change): the grid for it,
        whose epoch is that tick, or None before the first grid. The old grid serves every tick before
        it (`GridTimeline`), so the caller picks a `switch_at` a notice plus the new lead ahead and moves
        its clock there. The tick lock does not move this grid (a later re-lay may)."""
        self.control_period = period
        self.min_lead = min_lead
        current = self.schedule
        if current is None or not len(self.estimator):
            return None
        estimate = self.estimator.estimate()
        lead = max(estimate + self.margin, min_lead)
        typical = self.slots.typical() * (1.0 + CYCLE_HEADROOM)
        workers = current.workers
        sensor, phase = self.aligned_sensor(max(period, typical / len(workers)), math.inf)
        self.tick_shift = 0.0
        # the grid's first tick is `switch_at`: starts no sooner than that tick minus its lead
        self.schedule = next_grid(
            current,
            workers,
            period,
            estimate,
            switch_at,
            switch_at - lead - sensor,
            0.0,
            0.0,
            sensor,
            phase,
            typical,
            min_lead,
        )
        return self.schedule

    def switch_lead(self) -> float:
        """How far ahead a rate change must be set: the grid's notice, the longest lead and a sensor
        period (the worst case of `change_period`)."""
        estimate = self.estimator.estimate() if len(self.estimator) else 0.0
        return self.notice + max(estimate + self.margin, self.min_lead) + self.sensor_period

    def plan(self, now: float, tick_phase: float, subscribers: int, monotonic_now: float) -> Schedule | None:
        """A new grid to publish, or None to keep the current one. `now`/`tick_phase` are on the
        grid's clock; `monotonic_now` times the holds and who is alive."""
        current = self.schedule
        if current is None and not self.ready(subscribers):
            return None
        if not len(self.estimator):
            return None
        estimate = self.estimator.estimate()
        typical = self.slots.typical() * (1.0 + CYCLE_HEADROOM)
        alive = self.alive(monotonic_now)
        if not alive:
            return None
        if self.pool is not None:
            self.wanted = self.pool.update(estimate + self.margin, self.control_period, monotonic_now)
            workers = tuple(alive[: self.wanted])
        else:
            self.wanted = self.num_workers
            workers = tuple(alive)
        if current is not None:
            same_pool = set(workers) == set(current.workers)
            if same_pool and not self.retuner.update(monotonic_now, current, estimate, typical):
                return None
        lead = max(estimate + self.margin, self.min_lead)
        # ticks that move with the starts (lock_ticks) keep every completion's lead: no slack needed
        period, phase = self.aligned_sensor(
            max(self.control_period, typical / len(workers)),
            math.inf if self.lock_ticks else lead - estimate - self.margin,
        )
        self.tick_shift = 0.0
        if self.lock_ticks and period > 0:
            self.tick_shift = tick_shift(tick_phase, lead, period, phase)
            tick_phase += self.tick_shift
        self.schedule = next_grid(
            current,
            workers,
            self.control_period,
            estimate,
            tick_phase,
            now,
            self.margin,
            self.notice,
            period,
            phase,
            typical,
            self.min_lead,
        )
        return self.schedule
