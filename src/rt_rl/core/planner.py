"""The arbiter's schedule planner: the warm-up gate, the first grid, the retunes and the auto pool."""

from __future__ import annotations

import math
from collections import deque

from rt_rl.core.grid import CYCLE_HEADROOM, Retuner, Schedule, next_grid
from rt_rl.core.pool import InferenceTimeEstimator, PoolSizer
from rt_rl.core.slots import sensor_phase, tick_shift


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
            tick_phase=switch_at,
            now=switch_at - lead - sensor,
            margin=self.margin,  # the same margin as every grid: completions land before their tick
            notice=0.0,  # the caller's switch_at already leaves the notice
            sensor_period=sensor,
            sensor_phase=phase,
            cycle_time=typical,
            min_lead=min_lead,
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
