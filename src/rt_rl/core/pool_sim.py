"""Staggered workers in simulated time, driven by the live graph's own schedule code.

The arbiter's `SchedulePlanner`, the workers' `SlotFollower` over a `GridTimeline` and the arbiter's
rule for a fresh tick (an action arrived since the previous tick) run here exactly as in the nodes,
on a simulated clock stepped every `dt`. Inference durations come from a function, so a test or a
benchmark prediction can feed constant, random or changing latencies and watch the grid follow:
recovery from an underestimated T, a worker leaving, a pool growing.

Simplifications (what the live graph adds): messages arrive instantly (no transport, no jitter),
a worker hears a new grid the moment it is laid, an observation is the newest sensor sample
`observation_latency` before the slot start.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from rt_rl.core.grid import GridTimeline, Schedule
from rt_rl.core.planner import SchedulePlanner
from rt_rl.core.slots import SlotFollower

Durations = Callable[[int, float], float]  # (worker, start time) -> inference seconds


@dataclass
class Inference:
    worker: int
    start: float
    end: float
    observation_stamp: float
    revision: int  # 0 = before the first grid


@dataclass
class PoolRun:
    tick_times: np.ndarray
    fresh: np.ndarray  # per tick: an action arrived since the previous tick
    action_age: np.ndarray  # per tick: tick time - observation stamp of the newest action (nan: none yet)
    inferences: list[Inference] = field(default_factory=list)
    grids: list[Schedule] = field(default_factory=list)

    def fresh_ratio(self, start: float, end: float = math.inf) -> float:
        m = (self.tick_times >= start) & (self.tick_times < end)
        return float(self.fresh[m].mean()) if m.any() else math.nan


def simulate_pool(
    planner: SchedulePlanner,
    durations: Durations,
    control_period: float,
    seconds: float,
    alive: Callable[[int, float], bool] = lambda w, t: True,
    sensor_period: float = 0.0,
    observation_latency: float = 0.0,
    dt: float = 1e-4,
    plan_every: float = 0.1,
    heartbeat: float = 0.5,
) -> PoolRun:
    """Run `seconds` of simulated time; ticks at n * control_period (n >= 1)."""
    n_workers = planner.num_workers
    timeline = GridTimeline()
    followers = [SlotFollower(w) for w in range(n_workers)]
    busy_until = [0.0] * n_workers
    next_free_run = [0.0] * n_workers  # before the first grid: one inference per control period
    next_heartbeat = [0.0] * n_workers
    in_flight: list[Inference] = []
    arrived: list[Inference] = []
    run = PoolRun(np.empty(0), np.empty(0), np.empty(0))
    tick_times, fresh, ages = [], [], []
    next_tick, next_plan = control_period, 0.0
    newest: Inference | None = None

    def observation_stamp(t: float) -> float:
        t -= observation_latency
        return math.floor(t / sensor_period) * sensor_period if sensor_period > 0 else t

    def begin(w: int, t: float, revision: int) -> None:
        d = durations(w, t)
        busy_until[w] = t + d
        inf = Inference(w, t, t + d, observation_stamp(t), revision)
        in_flight.append(inf)
        run.inferences.append(inf)

    for step in range(round(seconds / dt) + 1):
        t = step * dt
        for inf in [i for i in in_flight if i.end <= t + 1e-12]:
            in_flight.remove(inf)
            if not alive(inf.worker, t):
                continue
            planner.add_inference(inf.worker, inf.end - inf.start, at=t)
            planner.add_observation_stamp(inf.observation_stamp)
            if inf.revision >= 0:  # heartbeats (revision -1) are never actuated
                arrived.append(inf)
        for w in range(n_workers):
            if not alive(w, t) or busy_until[w] > t + 1e-12:
                continue
            grid = timeline.current
            if grid is None:
                if t >= next_free_run[w]:
                    next_free_run[w] = t + control_period
                    begin(w, t, 0)
                continue
            found = followers[w].next_in(timeline, t)
            if found is None:  # a spare: a heartbeat now and then (inference time, liveness)
                if t >= next_heartbeat[w]:
                    next_heartbeat[w] = t + heartbeat
                    begin(w, t, -1)
                continue
            start, k, g = found
            if start <= t + 1e-12:
                followers[w].started(g, k, start, t)
                begin(w, t, g.revision)
        if t >= next_tick - 1e-12:
            if arrived:
                newest = max(arrived, key=lambda i: i.observation_stamp)
                arrived.clear()
                fresh.append(True)
            else:
                fresh.append(False)
            tick_times.append(next_tick)
            ages.append(next_tick - newest.observation_stamp if newest else math.nan)
            next_tick += control_period
        if t >= next_plan - 1e-12:
            next_plan += plan_every
            tick_phase = math.floor(t / control_period) * control_period
            grid = planner.plan(t, tick_phase, subscribers=n_workers, monotonic_now=t)
            if grid is not None:
                timeline.update(grid)
                run.grids.append(grid)
    run.tick_times, run.fresh, run.action_age = np.array(tick_times), np.array(fresh), np.array(ages)
    return run
