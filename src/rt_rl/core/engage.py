"""Engaging and handing back control (the arbiter's lifecycle `activate` / `deactivate`), without ROS.

A controller that takes over a robot must not jump from what the robot is doing to what the policy
wants, and one that hands back must leave the robot on its safe command. `EngageRamp` decides, tick by
tick, what the arbiter publishes:

- `INACTIVE`: nothing (another controller, a teleop or nobody commands the robot).
- `ENGAGING` (after `activate(start)`, `start` the robot's current command): the target blends from
  `start` to the policy's command with a weight that grows linearly to 1 over `ramp_time`, and each
  tick's change of the published command is at most `max_rate * period` per actuator. It ends (`ACTIVE`)
  once the blend is complete and the policy's command is within one such step of the last output.
- `ACTIVE`: the policy's command (the arbiter's own decision: fresh, fallback, watchdog), unchanged.
- `DISENGAGING` (after `deactivate()`): the same blend and bound from the last output to the safe
  command; when it is reached the safe command is published once more and the state is `INACTIVE`.
  Then nothing: a forward_command_controller holds the last command it received, the safe one, and a
  publisher that kept repeating it would fight whoever takes over.

Isaac ROS's SafetyController blends into a policy's command in the same spirit; the per-tick bound is
what a user configures and what the tests check.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np


class Engagement(StrEnum):
    INACTIVE = "inactive"
    ENGAGING = "engaging"
    ACTIVE = "active"
    DISENGAGING = "disengaging"


class EngageRamp:
    """Which command a tick publishes in each engagement state (module docstring). Not thread-safe:
    `activate`/`deactivate` only set a request that the next `step` (the control thread) takes."""

    def __init__(
        self,
        safe_command: np.ndarray,
        ramp_time: float,
        max_rate: float,
        lower: np.ndarray | None = None,
        upper: np.ndarray | None = None,
    ) -> None:
        if not ramp_time >= 0:
            raise ValueError(f"engage_ramp_time must be >= 0 s, got {ramp_time}")
        if not max_rate > 0:
            raise ValueError(f"ramp_max_rate must be > 0 (command units per second), got {max_rate}")
        self.safe_command = np.asarray(safe_command, dtype=np.float64)
        # the command limits: a robot commanded beyond them by someone else is engaged from the limit
        self.lower = np.full_like(self.safe_command, -np.inf) if lower is None else np.asarray(lower, float)
        self.upper = np.full_like(self.safe_command, np.inf) if upper is None else np.asarray(upper, float)
        self.ramp_time = ramp_time
        self.max_rate = max_rate
        self.state = Engagement.INACTIVE
        self.ticks = {s.value: 0 for s in Engagement}  # ticks spent in each state
        self.largest_ramp_step = 0.0  # largest per-tick change published while ramping
        self._request: tuple[Engagement, np.ndarray | None] | None = None
        self._start = self.safe_command.copy()  # the ramp's starting command
        self._elapsed = 0.0  # seconds into the ramp
        self._last: np.ndarray | None = None  # last published command

    @property
    def publishing(self) -> bool:
        """True while the arbiter owns the command topic (its stop must then end on the safe command)."""
        return self.state is not Engagement.INACTIVE

    def activate(self, start: np.ndarray | None) -> None:
        """Engage from `start`, the robot's current command (None: unknown, the safe command)."""
        begin = self.safe_command if start is None else np.asarray(start, dtype=np.float64)
        if begin.shape != self.safe_command.shape or not np.all(np.isfinite(begin)):
            begin = self.safe_command  # a command we cannot trust is no place to start from
        self._request = (Engagement.ENGAGING, np.clip(begin, self.lower, self.upper))

    def deactivate(self) -> None:
        self._request = (Engagement.DISENGAGING, None)

    def step(self, policy_command: np.ndarray, period: float) -> np.ndarray | None:
        """The command to publish at this tick (None: publish nothing). `period`: seconds since the
        last tick (the control period)."""
        self._take_request()
        state = self.state
        self.ticks[state.value] += 1
        if state is Engagement.INACTIVE:
            return None
        if state is Engagement.ACTIVE:
            out = np.asarray(policy_command, dtype=np.float64)
        else:
            goal = policy_command if state is Engagement.ENGAGING else self.safe_command
            out = self._ramp(np.asarray(goal, dtype=np.float64), period)
        self._last = out
        return out

    def _take_request(self) -> None:
        if self._request is None:
            return
        wanted, start = self._request
        self._request = None
        if wanted is Engagement.ENGAGING and self.state in (Engagement.INACTIVE, Engagement.DISENGAGING):
            # from a hand-back under way, start where the output is, not where the robot was
            self._start = self._last if self.state is Engagement.DISENGAGING else start
            self._begin(wanted)
        elif wanted is Engagement.DISENGAGING and self.state in (Engagement.ENGAGING, Engagement.ACTIVE):
            self._start = self._last if self._last is not None else self.safe_command
            self._begin(wanted)

    def _begin(self, state: Engagement) -> None:
        self.state = state
        self._elapsed = 0.0
        if self._last is None:
            self._last = self._start

    def _ramp(self, goal: np.ndarray, period: float) -> np.ndarray:
        self._elapsed += period
        weight = 1.0 if self.ramp_time <= 0 else min(1.0, self._elapsed / self.ramp_time)
        target = (1.0 - weight) * self._start + weight * goal
        step = self.max_rate * period
        last = self._last
        out = last + np.clip(target - last, -step, step)
        self.largest_ramp_step = max(self.largest_ramp_step, float(np.max(np.abs(out - last))))
        if weight >= 1.0 and np.all(np.abs(goal - last) <= step):
            out = goal.copy()  # caught up: within one step of the goal
            self.state = Engagement.ACTIVE if self.state is Engagement.ENGAGING else Engagement.INACTIVE
        return out

    def counts(self) -> dict:
        return {
            "state": self.state.value,
            "ticks": dict(self.ticks),
            "largest_ramp_step": self.largest_ramp_step,
        }
