"""Does the live graph run the timing a policy was trained for? (pure; the worker reports the answer)

A checkpoint records its training timing (`PolicyInfo.timing`, written by the trainer from
`rt_rl.learning.timing_env.Timing` plus the delay choices and the episode length). The live graph's
timing is known to a worker once the arbiter's schedule arrives: the control period, the number of
workers, and the schedule's lead (inference time T plus margin), from which the number of ticks from a
worker's start to the tick that actuates its action follows: ceil(lead / period), the twin's D.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rt_rl.graph import node_settings


def live_delay_ticks(lead: float, control_period: float) -> int:
    """Ticks from a worker's start to the tick that actuates its action (the twin's D)."""
    return max(1, math.ceil(lead / control_period - 1e-9))


def trained_delays(trained: Mapping[str, Any]) -> list[int]:
    """The delays D a policy was trained for: its `delay_choices`, else its one `inference_ticks`."""
    return list(
        trained.get("delay_choices") or ([trained["inference_ticks"]] if "inference_ticks" in trained else [])
    )


def timing_differences(
    trained: Mapping[str, Any], *, control_period: float, num_workers: int, lead: float
) -> list[str]:
    """One line per way the live timing differs from `trained`; empty when it matches (or is unknown)."""
    out = []
    period = trained.get("control_period")
    if period is not None and not math.isclose(period, control_period, rel_tol=1e-6):
        out.append(f"control period {control_period * 1e3:g} ms live, {period * 1e3:g} ms trained")
    workers = trained.get("num_workers")
    if workers is not None and workers != num_workers:
        out.append(
            f"{num_workers} worker(s) live, {workers} trained (a pipelined policy's deep features "
            "assume its trained stride)"
        )
    choices = trained_delays(trained)
    if choices:
        d = live_delay_ticks(lead, control_period)
        if not min(choices) <= d <= max(choices):
            trained_d = f"D = {choices[0]}" if len(set(choices)) == 1 else f"D in {sorted(set(choices))}"
            out.append(
                f"actions actuated {d} tick(s) after their worker starts live, trained for {trained_d}"
            )
    return out


# Node defaults the check falls back on when the params file leaves a value out (kept equal to the
# nodes' declarations; tests/test_timing_check.py compares them).
SIM_DEFAULTS = {"sensor_rate_hz": 100.0, "episode_seconds": 8.0}
ARBITER_DEFAULTS = {"control_rate_hz": 100.0, "actuation_delay_ticks": 0}


def configured_differences(trained: Mapping[str, Any], params: Mapping[str, Any]) -> list[str]:
    """One line per way a params file (ROS 2 layout: node -> ros__parameters, '/**' for all) sets up
    a timing other than `trained`; the launcher prints them at start, before anything runs."""

    robot = "robot" in params  # robot mode: the robot's rates are its own, its episodes have no limit
    sim = SIM_DEFAULTS | node_settings(params, "mujoco_sim")
    arbiter = ARBITER_DEFAULTS | node_settings(params, "actuator_arbiter")
    if robot:
        section = params["robot"].get("ros__parameters") or {}
        sim = {"sensor_rate_hz": section.get("sensor_rate_hz", arbiter.get("sensor_rate_hz") or 0)}
    out = []
    period = trained.get("control_period")
    live_period = 1.0 / float(arbiter["control_rate_hz"])
    if period is not None and not math.isclose(period, live_period, rel_tol=1e-6):
        out.append(f"control period {live_period * 1e3:g} ms configured, {period * 1e3:g} ms trained")
    sensor = trained.get("sensor_period")
    live_sensor = 1.0 / float(sim["sensor_rate_hz"]) if float(sim["sensor_rate_hz"] or 0) > 0 else None
    if sensor is not None and live_sensor and not math.isclose(sensor, live_sensor, rel_tol=1e-6):
        out.append(f"sensor period {live_sensor * 1e3:g} ms configured, {sensor * 1e3:g} ms trained")
    lo, hi = trained.get("actuation_offset") or (0.0, 0.0)
    offset = float(arbiter.get("sensor_offset") or 0.0)
    if float(arbiter.get("sensor_rate_hz") or 0) > 0 and not lo <= offset <= hi and (robot or hi > 0):
        out.append(
            f"ticks {offset * 1e3:g} ms after the samples (sensor_offset): commands act from then on, "
            f"trained for {lo * 1e3:g}-{hi * 1e3:g} ms"
        )
    seconds = trained.get("episode_seconds")
    if (
        not robot
        and seconds is not None
        and not math.isclose(seconds, float(sim["episode_seconds"]), rel_tol=1e-6)
    ):
        out.append(f"episodes of {float(sim['episode_seconds']):g} s configured, {seconds:g} s trained")
    workers = trained.get("num_workers")
    live_workers = arbiter.get("num_workers")
    if workers is not None and isinstance(live_workers, int) and live_workers != workers:
        out.append(f"{live_workers} worker(s) configured, {workers} trained")
    choices = trained_delays(trained)
    delay = int(arbiter["actuation_delay_ticks"])
    if choices and delay == 0:
        out.append(
            f"actuation_delay_ticks 0: actions act as soon as they arrive (the delay then follows the "
            f"inference time), trained for D in {sorted(set(choices))}"
        )
    elif choices and not min(choices) <= delay <= max(choices):
        out.append(f"actuation_delay_ticks {delay} configured, trained for D in {sorted(set(choices))}")
    return out
