"""Following the slot grid: a worker's next slot (`SlotFollower`), the observation it takes for it
(`for_this_slot`), and the alignment of starts to the sensor's samples (`tick_shift`, `sensor_phase`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rt_rl.core.grid import EPS, GridTimeline, Schedule

ALIGN_SLACK = 2e-5  # seconds a tick-locked start is planned after its sensor sample (see tick_shift)

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
