"""The actuator arbiter's decision, one control tick at a time (no ROS here).

Each tick it actuates the freshest valid action that has not been actuated yet. "Freshest" is the
newest observation stamp (not the newest arrival: with staggered workers a slow worker can deliver an
older observation's action after a faster one). Rejected on arrival: wrong size, NaN/inf, an
observation older than the last actuated one (out of order), the same worker's action for the same
observation again (duplicate), older than `max_action_age`, or computed in an episode that has ended
(never actuated in the next one). Another worker's action computed from
the same observation is a new action (its pipeline state differs); its age shows it is not newer. When no
fresh action is there the fallback applies (hold the last command, zero, or a default command), and
when even the held command's observation is older than `max_action_age` the watchdog switches to the
safe command. Every command leaves clamped to the limits. A valid action replaced by a fresher one
before a tick took it is counted as superseded, not dropped silently.

An action computed on a slot of the schedule carries the time the grid planned its inference to end
(`slot_end`): it is actuated no earlier than the first tick from then on. An early finisher waits for
its own tick, so each tick gets its slot's action even when inference times vary (log-normal times:
actions bunched two or three to a tick and none in the next, fresh ratio 0.53 at 10 workers and a
mean T of 4 periods) and when the spacing is between whole periods (completions drifting across the
ticks). With `actuation_delay` > 0 the arbiter also actuates an action no earlier than that long after
the stamp of its call's input (for a pipeline an older observation is what it depends on): a policy
trained to act D ticks after its observation (the twin's D) then meets that delay live, however fast
its workers are. Actions that are not due yet wait in a queue; each tick actuates the freshest due
one, and a due one that a fresher due one replaces is counted as superseded.
"""

from __future__ import annotations

import bisect
import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


class Fallback(enum.StrEnum):
    HOLD = "hold"
    ZERO = "zero"
    DEFAULT = "default"


class TickKind(enum.StrEnum):
    FRESH = "fresh"  # a new action was actuated
    FALLBACK = "fallback"  # nothing new: hold / zero / default
    WATCHDOG = "watchdog"  # the newest action is too old: safe command


class Rejection(enum.StrEnum):
    SIZE = "size"
    NOT_FINITE = "not_finite"
    OUT_OF_ORDER = "out_of_order"
    DUPLICATE = "duplicate"
    STALE = "stale"
    ENDED_EPISODE = "ended_episode"  # computed in an episode that has ended


def episode_after(reward_episode: int, terminal: bool) -> int:
    """The episode the robot is in after a Reward message of `reward_episode` (the sim resets right
    after a terminal step). sensor_ingest and the arbiter use this one rule."""
    return reward_episode + 1 if terminal else reward_episode


@dataclass(frozen=True)
class TimedAction:
    data: np.ndarray
    observation_stamp: float  # seconds, sensor clock
    observation_seq: int
    worker_id: int
    inference_start: float = math.nan
    inference_end: float = math.nan
    episode: int = -1  # -1: unknown (a robot without episode boundaries)
    input_stamp: float = math.nan  # stamp of the call's own input (a pipeline depends on an older one)
    slot_end: float = math.nan  # when its slot's inference was planned to end (nan: not on a slot)


def _input_stamp(action: TimedAction) -> float:
    return action.observation_stamp if math.isnan(action.input_stamp) else action.input_stamp


@dataclass(frozen=True)
class TickDecision:
    kind: TickKind
    command: np.ndarray
    action: TimedAction | None  # the actuated action when kind is FRESH
    action_age: float  # tick time minus the observation stamp behind the command (nan if none)


@dataclass
class ArbiterConfig:
    action_dim: int
    fallback: Fallback = Fallback.HOLD
    default_command: Sequence[float] = ()
    safe_command: Sequence[float] = ()
    lower: Sequence[float] = ()
    upper: Sequence[float] = ()
    max_action_age: float = 0.25
    actuation_delay: float = 0.0  # seconds from an observation's stamp to the earliest tick using it

    def __post_init__(self) -> None:
        n = self.action_dim
        if n < 1:
            raise ValueError(f"action_dim must be >= 1, got {n}")
        self.fallback = Fallback(self.fallback)
        for name in ("default_command", "safe_command", "lower", "upper"):
            value = list(getattr(self, name))
            if value and len(value) != n:
                raise ValueError(f"{name} must have {n} entries (action_dim) or be empty, got {len(value)}")
            if any(not math.isfinite(v) for v in value) and name in ("default_command", "safe_command"):
                raise ValueError(f"{name} must be finite")
        if self.lower and self.upper and any(lo > hi for lo, hi in zip(self.lower, self.upper, strict=True)):
            raise ValueError("lower limits must be <= upper limits")
        if self.max_action_age <= 0:
            raise ValueError(f"max_action_age must be > 0 s, got {self.max_action_age}")
        if not 0 <= self.actuation_delay < self.max_action_age:
            raise ValueError(
                f"actuation_delay must be in [0, max_action_age = {self.max_action_age}) s, "
                f"got {self.actuation_delay}"
            )


@dataclass
class ArbiterCore:
    config: ArbiterConfig
    rejected: dict[Rejection, int] = field(default_factory=lambda: dict.fromkeys(Rejection, 0))
    superseded: int = 0  # valid actions replaced by a fresher one before any tick actuated them

    def __post_init__(self) -> None:
        n = self.config.action_dim
        self._lower = np.array(self.config.lower or [-np.inf] * n, dtype=np.float64)
        self._upper = np.array(self.config.upper or [np.inf] * n, dtype=np.float64)
        self._zero = np.zeros(n)
        self._default = np.array(self.config.default_command or self._zero, dtype=np.float64)
        self._safe = np.clip(
            np.array(self.config.safe_command or self._zero, dtype=np.float64), self._lower, self._upper
        )
        self._pending: TimedAction | None = None  # freshest valid action not yet actuated
        self._queue: list[TimedAction] = []  # valid actions that wait for a due time, oldest first
        self._last_seq = -1  # observation seq of the last actuated action
        self._last_worker = -1
        self._last_stamp = -math.inf  # observation stamp behind the current command
        self._command = self._safe.copy()
        self.episode = -1  # current episode of the robot, -1 if unknown

    def reset_counts(self) -> None:
        """Start counting rejections and superseded actions afresh (the measurement window opened)."""
        self.rejected = dict.fromkeys(Rejection, 0)
        self.superseded = 0

    def set_episode(self, episode: int) -> None:
        """The robot is in `episode` now: actions of earlier episodes are rejected from here on, and the
        held command restarts at zero (within the limits) until the new episode's first fresh action,
        as in the training environment: a reset robot is not driven by the last command of its fall."""
        if episode > self.episode >= 0:
            self._command = np.clip(self._zero, self._lower, self._upper)
        self.episode = max(self.episode, episode)

    @property
    def last_command(self) -> np.ndarray:
        return self._command

    @property
    def safe_command(self) -> np.ndarray:
        """The watchdog's command, clamped to the limits; also the last command of every stop
        (rt_rl.core.safe_stop)."""
        return self._safe.copy()

    def has_due(self, now: float) -> bool:
        """A new action is there for a tick at `now`."""
        return self._pending is not None or any(self._is_due(a, now) for a in self._queue)

    def _is_due(self, action: TimedAction, now: float) -> bool:
        return now - _input_stamp(action) >= self.config.actuation_delay and not now < action.slot_end

    def offer(self, action: TimedAction, now: float) -> Rejection | None:
        """An action arrived. Returns why it was rejected, or None if it was kept (or superseded).

        A robot has no episode topic: the ingest counts an episode when it sees the robot reset, and
        the first action of the next one (one more than the arbiter's, or the first it hears) starts it
        here too (`set_episode`); a larger jump is not believed."""
        if action.episode >= 0 and (self.episode < 0 or action.episode == self.episode + 1):
            self.set_episode(action.episode)
        reason = self._check(action, now)
        if reason is not None:
            self.rejected[reason] += 1
            return reason
        if self.config.actuation_delay > 0 or not math.isnan(action.slot_end):
            bisect.insort(self._queue, action, key=lambda a: a.observation_stamp)
            return None
        if self._pending is not None and 0 <= self._pending.episode < self.episode:
            self.rejected[Rejection.ENDED_EPISODE] += 1  # its episode ended while it waited
            self._pending = None
        if self._pending is None:
            self._pending = action
        else:  # one of the two is never actuated: count it, do not drop it silently
            self.superseded += 1
            if action.observation_stamp > self._pending.observation_stamp:
                self._pending = action
        return None

    def _check(self, action: TimedAction, now: float) -> Rejection | None:
        data = np.asarray(action.data, dtype=np.float64)
        if data.shape != (self.config.action_dim,):
            return Rejection.SIZE
        if not np.all(np.isfinite(data)):
            return Rejection.NOT_FINITE
        if action.observation_seq < self._last_seq or action.observation_stamp < self._last_stamp:
            return Rejection.OUT_OF_ORDER
        if action.observation_seq == self._last_seq and action.worker_id == self._last_worker:
            return Rejection.DUPLICATE
        if now - action.observation_stamp > self.config.max_action_age:
            return Rejection.STALE
        if 0 <= action.episode < self.episode:
            return Rejection.ENDED_EPISODE
        return None

    def _take_due(self, now: float) -> TimedAction | None:
        """The freshest queued action that is due: its slot's planned end has come and its observation
        is at least `actuation_delay` old. Older due ones are superseded, the others keep waiting."""
        waiting, due = [], []
        for a in self._queue:
            if 0 <= a.episode < self.episode:
                self.rejected[Rejection.ENDED_EPISODE] += 1
            elif self._is_due(a, now):
                due.append(a)
            elif now - a.observation_stamp > self.config.max_action_age:
                self.rejected[Rejection.STALE] += 1  # never due in time (a slot far ahead: clocks apart)
            else:
                waiting.append(a)
        self._queue = waiting
        if not due:
            return None
        self.superseded += len(due) - 1
        return due[-1]

    def tick(self, now: float) -> TickDecision:
        """Decide the command for the tick at time `now` (seconds, same clock as the stamps)."""
        action, self._pending = self._pending, None
        if self._queue:
            queued = self._take_due(now)
            if action is not None and queued is not None:
                self.superseded += 1
                action = max(action, queued, key=lambda a: a.observation_stamp)
            elif queued is not None:
                action = queued
        if action is not None and 0 <= action.episode < self.episode:
            self.rejected[Rejection.ENDED_EPISODE] += 1
            action = None
        if action is not None and now - action.observation_stamp <= self.config.max_action_age:
            self._command = np.clip(np.asarray(action.data, dtype=np.float64), self._lower, self._upper)
            self._last_seq, self._last_stamp = action.observation_seq, action.observation_stamp
            self._last_worker = action.worker_id
            return TickDecision(TickKind.FRESH, self._command, action, now - action.observation_stamp)
        if action is not None:  # went stale while waiting for this tick
            self.rejected[Rejection.STALE] += 1
        age = now - self._last_stamp
        if age > self.config.max_action_age:
            self._command = self._safe.copy()
            return TickDecision(TickKind.WATCHDOG, self._command, None, age)
        if self.config.fallback is Fallback.ZERO:
            self._command = np.clip(self._zero, self._lower, self._upper)
        elif self.config.fallback is Fallback.DEFAULT:
            self._command = np.clip(self._default, self._lower, self._upper)
        return TickDecision(TickKind.FALLBACK, self._command, None, age)
