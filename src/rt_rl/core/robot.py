"""What a ros2_control robot looks like to the graph, as plain Python (no ROS).

Three small pieces, shared by the simulator's robot-like behaviour and the graph's robot mode:

- `UpdateGrid`: a robot's own clock. Physics (or the hardware) advances one step of `h` seconds at a
  time; the controller manager takes the newest command every `controller_steps` steps (a command acts
  from the first update after it arrives) and joint_state_broadcaster publishes every `sensor_steps`
  steps at its own phase. A state is published when the moment it shows has come, stamped with it.
- `JointLayout`: the robot's joint order plus joints the policy does not use, as JointState shows them.
- `ResetDetector`: a robot has no episodes; when it is reset (by a person or a script) its joint state
  jumps. Consecutive samples are checked against their own velocities: a position that moved further
  than the velocities explain (trapezoid rule over the stamps' interval) by more than `jump` is a reset.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def steps_per(period: float, h: float, what: str) -> int:
    """Whole physics steps of `h` seconds in `period` seconds; one-line ValueError if not whole."""
    ratio = period / h
    n = round(ratio)
    if n < 1 or not math.isclose(ratio, n, rel_tol=1e-6):
        raise ValueError(f"{what} {period * 1e3:g} ms is not a whole number of {h * 1e3:g} ms physics steps")
    return n


@dataclass(frozen=True)
class UpdateGrid:
    """Which physics steps publish a joint state and which take the newest command."""

    sensor_steps: int  # physics steps per joint-state sample
    sensor_phase: int  # the step index of the first sample (0 <= phase < sensor_steps)
    controller_steps: int = 1  # physics steps per controller update (the newest command is taken)

    def __post_init__(self) -> None:
        if self.sensor_steps < 1 or self.controller_steps < 1:
            raise ValueError("sensor_steps and controller_steps must be >= 1")
        if not 0 <= self.sensor_phase < self.sensor_steps:
            raise ValueError(
                f"sensor_phase must be in [0, {self.sensor_steps}) steps, got {self.sensor_phase}"
            )

    @classmethod
    def from_rates(
        cls, h: float, sensor_rate_hz: float, sensor_phase: float, controller_rate_hz: float
    ) -> UpdateGrid:
        """From rates in Hz and a phase in seconds (each a whole number of physics steps)."""
        sensor = steps_per(1.0 / sensor_rate_hz, h, "joint-state period")
        controller = steps_per(1.0 / controller_rate_hz, h, "controller period")
        phase = round(sensor_phase / h)
        if not math.isclose(phase * h, sensor_phase, abs_tol=1e-9):
            raise ValueError(f"sensor_phase {sensor_phase:g} s is not a whole number of physics steps")
        return cls(sensor, phase % sensor, controller)

    def publishes(self, step: int) -> bool:
        """A joint state showing the moment physics step `step` starts is published then."""
        return step % self.sensor_steps == self.sensor_phase

    def takes_command(self, step: int) -> bool:
        return step % self.controller_steps == 0


class JointLayout:
    """Joint states in the robot's order (`order`, a permutation of the policy's joints) with `extra`
    joints appended (reported at 0: the policy must ignore them)."""

    def __init__(self, joints: Sequence[str], order: Sequence[str] = (), extra: Sequence[str] = ()) -> None:
        joints = list(joints)
        order = [n for n in order if n] or joints
        extra = [n for n in extra if n]
        if sorted(order) != sorted(joints):
            raise ValueError(f"joint_order must name each of {joints} once, got {order}")
        clash = sorted(set(extra) & set(joints))
        if clash or len(set(extra)) != len(extra):
            raise ValueError(f"extra_joints must be new, distinct names, got {extra}")
        self.names = order + extra
        self._index = np.array([joints.index(n) for n in order], dtype=np.intp)
        self._extra = len(extra)

    def arrange(self, values: np.ndarray) -> np.ndarray:
        """Values in the policy's joint order -> the robot's JointState order (extras 0)."""
        out = np.asarray(values, dtype=np.float64)[self._index]
        return np.concatenate((out, np.zeros(self._extra))) if self._extra else out


class ResetDetector:
    """Tells a robot reset from motion in a stream of (stamp, positions, velocities) samples."""

    def __init__(self, jump: float) -> None:
        if not jump > 0:
            raise ValueError(f"reset jump must be > 0, got {jump}")
        self.jump = jump
        self._last: tuple[float, np.ndarray, np.ndarray] | None = None
        self.residual = 0.0  # of the last sample checked

    def clear(self) -> None:
        self._last = None

    def update(self, stamp: float, positions: Sequence[float], velocities: Sequence[float]) -> bool:
        """True when this sample is not reachable from the previous one by its velocities."""
        q, v = np.asarray(positions, dtype=np.float64), np.asarray(velocities, dtype=np.float64)
        last, self._last = self._last, (stamp, q.copy(), v.copy())
        if last is None:
            return False
        t0, q0, v0 = last
        dt = stamp - t0
        if dt <= 0:  # the same sample again (or a clock step): nothing to compare
            return False
        self.residual = float(np.max(np.abs(q - q0 - 0.5 * dt * (v0 + v))))
        return self.residual > self.jump


class RobotTrace:
    """What a simulated robot did, physics step by physics step, from its first reset: each command
    it applied (recorded when it changes) and the joint state at the start of every step. Enough to
    replay the robot's actuation in simulated time and compare (tests/test_robot_actuation.py)."""

    def __init__(
        self, task: str, seed: int, frame_skip: int, episode_seconds: float, physics_dt: float
    ) -> None:
        self.meta = {
            "task": task,
            "seed": seed,
            "frame_skip": frame_skip,
            "episode_seconds": episode_seconds,
            "physics_dt": physics_dt,
        }
        self.commands: list[list[float]] = []  # [step, *command] where the applied command changes
        self.states: list[list[float]] = []  # [step, *positions, *velocities] at each step's start
        self._last: tuple[float, ...] | None = None

    def step(self, n: int, command: np.ndarray, positions: np.ndarray, velocities: np.ndarray) -> None:
        c = tuple(float(x) for x in command)
        if c != self._last:
            self.commands.append([n, *c])
            self._last = c
        self.states.append([n, *map(float, positions), *map(float, velocities)])

    def write(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump({**self.meta, "commands": self.commands, "states": self.states}, f)


def command_at(commands: Sequence[Sequence[float]], step: int) -> list[float]:
    """The command a trace's robot applied at physics step `step` (its last change at or before it)."""
    current = None
    for c in commands:
        if c[0] > step:
            break
        current = c[1:]
    if current is None:
        raise ValueError(f"no command applied by step {step}")
    return list(current)


class SensorSilence:
    """Whether the newest joint state is recent enough to build an observation from (no ROS).

    A sensor that stops (a cable, a crashed driver) leaves its last sample behind; built into new
    observations it would drive the robot open loop until the arbiter's watchdog. Samples older than
    `max_age` seconds (the sensor stamp against the ingest's wall clock) are not built: no new action
    follows, the arbiter holds, then goes to its safe command after `max_action_age`. `update` says when
    silence begins and ends (one log line each)."""

    def __init__(self, max_age: float) -> None:
        if not max_age > 0:
            raise ValueError(f"max_sample_age must be > 0 s, got {max_age}")
        self.max_age = max_age
        self.silent_since: float | None = None
        self.silences = 0
        self.skipped = 0  # observations not built

    def update(self, now: float, stamp: float) -> tuple[bool, str | None]:
        """(build an observation from the sample stamped `stamp`, "silent" / "back" / None)."""
        if now - stamp > self.max_age:
            self.skipped += 1
            if self.silent_since is None:
                self.silent_since = stamp
                self.silences += 1
                return False, "silent"
            return False, None
        if self.silent_since is not None:
            self.silent_since = None
            return True, "back"
        return True, None
