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
