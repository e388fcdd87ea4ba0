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

Authenticity (anyone on the domain can publish an Action): an action whose tag does not verify under
the run's graph key (rt_rl.core.auth: a process without the key, or a real message modified) is
refused before anything else (`FORGED`). Plausibility (a replay of a real message verifies; a process
with the key is still held to it): before an action can move anything or
change the episode it must come from a worker the current schedule names (before the schedule: an id
of the pool, 0..pool_size-1), carry a sequence that is non-negative, below `MAX_SEQ` and no more than
`max_seq_jump` ahead of the last actuated one, stamps that are finite and not later than
`future_tolerance` after the arbiter's now, an episode at most one ahead of the arbiter's, and finite,
non-negative inference times. Each refusal is counted by its reason; the node feeds neither the
schedule planner nor the statistics with an implausible action's timings (`IMPLAUSIBLE`). Order
(out of order, duplicate, sequence jump) is judged against the held command only while it is still
current (within `max_action_age`): a bad reference can at worst hold the watchdog for that long, not
for the rest of the run. The watchdog compares the tick time with the held observation stamp, which
the future check keeps within `future_tolerance` of the arbiter's clock at receipt: no stamp can
switch it off.
"""

from __future__ import annotations

import bisect
import enum
import math
from collections.abc import Iterable, Sequence
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
    UNKNOWN_WORKER = "unknown_worker"  # a worker id the current schedule (or the pool) does not name
    SEQ_JUMP = "seq_jump"  # observation seq negative, huge, or far ahead of the last actuated one
    FUTURE_STAMP = "future_stamp"  # a stamp not finite or later than now + future_tolerance
    EPISODE_JUMP = "episode_jump"  # more than one episode ahead of the arbiter's
    BAD_TIMING = "bad_timing"  # inference time or turnaround not finite or negative
    FORGED = "forged"  # its tag does not verify under the run's graph key (rt_rl.core.auth)


# Refusals that say the message is not a plausible output of this graph's workers: its timings are not
# fed to the schedule planner or the statistics either.
IMPLAUSIBLE = frozenset(
    {
        Rejection.FORGED,
        Rejection.UNKNOWN_WORKER,
        Rejection.SEQ_JUMP,
        Rejection.FUTURE_STAMP,
        Rejection.EPISODE_JUMP,
        Rejection.BAD_TIMING,
    }
)
MAX_SEQ = 2**53  # an observation seq at or above this is refused (a counter of a real run stays far below)


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
    inference_time: float = 0.0  # seconds, as the worker reports it
    turnaround: float = 0.0  # seconds, as the worker reports it


def _plausible_time(seconds: float) -> bool:
    return math.isfinite(seconds) and seconds >= 0


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
    pool_size: int = 0  # worker ids are 0..pool_size-1 (before a schedule names them); 0: not checked
    max_seq_jump: int = 10_000  # observation seqs an action may be ahead of the last actuated one
    future_tolerance: float = 0.05  # seconds a stamp may be later than the arbiter's now (clock skew)

    def __post_init__(self) -> None:
        n = self.action_dim
        if n < 1:
            raise ValueError(f"action_dim must be >= 1, got {n}")
        self.fallback = Fallback(self.fallback)
        for name in ("default_command", "safe_command", "lower", "upper"):
            value = list(getattr(self, name))
            if value and len(value) != n:
                raise ValueError(f"{name} must have {n} entries (action_dim) or be empty, got {len(value)}")
            # a NaN limit would publish NaN, an infinite one would remove the clamping
            if any(not math.isfinite(v) for v in value):
                raise ValueError(f"{name} must be finite, got {value}")
        if self.lower and self.upper and any(lo > hi for lo, hi in zip(self.lower, self.upper, strict=True)):
            raise ValueError("lower limits must be <= upper limits")
        if self.max_action_age <= 0:
            raise ValueError(f"max_action_age must be > 0 s, got {self.max_action_age}")
        if not 0 <= self.actuation_delay < self.max_action_age:
            raise ValueError(
                f"actuation_delay must be in [0, max_action_age = {self.max_action_age}) s, "
                f"got {self.actuation_delay}"
            )
        if self.pool_size < 0 or self.max_seq_jump < 1:
            raise ValueError("pool_size must be >= 0 and max_seq_jump >= 1")
        if not 0 <= self.future_tolerance < math.inf:
            raise ValueError(f"future_tolerance must be finite and >= 0 s, got {self.future_tolerance}")


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
        self._workers: frozenset[int] | None = None  # ids the current schedule names (None: no schedule)

    def set_workers(self, workers: Iterable[int] | None) -> None:
        """The current schedule names `workers` (None: no schedule yet, any id of the pool): actions of
        any other worker id are refused from here on."""
        self._workers = None if workers is None else frozenset(workers)

    def check_heartbeat(
        self, worker_id: int, inference_time: float, turnaround: float, authentic: bool = True
    ) -> Rejection | None:
        """A spare's heartbeat (never actuated, its timings go to the planner): authentic, from an id of
        the pool, with plausible timings. A refusal is counted."""
        reason = None
        if not authentic:
            reason = Rejection.FORGED
        elif self.config.pool_size and not 0 <= worker_id < self.config.pool_size:
            reason = Rejection.UNKNOWN_WORKER
        elif not _plausible_time(inference_time) or not _plausible_time(turnaround):
            reason = Rejection.BAD_TIMING
        if reason is not None:
            self.rejected[reason] += 1
        return reason

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

    def offer(self, action: TimedAction, now: float, authentic: bool = True) -> Rejection | None:
        """An action arrived. Returns why it was rejected, or None if it was kept (or superseded).

        `authentic`: the message's tag verified under the run's graph key (rt_rl.core.auth; the node
        verifies the message's exact fields, which the seconds of a TimedAction do not keep). A forged
        one is refused first, before it can change anything (`FORGED`).

        A robot has no episode topic: the ingest counts an episode when it sees the robot reset, and
        the first action of the next one (one more than the arbiter's, or the first it hears) starts it
        here too (`set_episode`); a larger jump is refused (`EPISODE_JUMP`). An implausible action
        (module docstring) is refused before it can change anything."""
        if not authentic:
            self.rejected[Rejection.FORGED] += 1
            return Rejection.FORGED
        reason = self._implausible(action, now)
        if reason is not None:
            self.rejected[reason] += 1
            return reason
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

    def _implausible(self, action: TimedAction, now: float) -> Rejection | None:
        """Why `action` cannot be an output of this graph's workers (None: it can)."""
        w = action.worker_id
        if self._workers is not None:
            if w not in self._workers:
                return Rejection.UNKNOWN_WORKER
        elif self.config.pool_size and not 0 <= w < self.config.pool_size:
            return Rejection.UNKNOWN_WORKER
        seq = action.observation_seq
        if not 0 <= seq < MAX_SEQ or (
            self._held_is_current(now) and seq - self._last_seq > self.config.max_seq_jump
        ):
            return Rejection.SEQ_JUMP
        latest = now + self.config.future_tolerance
        for stamp in (action.observation_stamp, _input_stamp(action)):
            if not math.isfinite(stamp) or stamp > latest:
                return Rejection.FUTURE_STAMP
        if self.episode >= 0 and action.episode > self.episode + 1:
            return Rejection.EPISODE_JUMP
        if not _plausible_time(action.inference_time) or not _plausible_time(action.turnaround):
            return Rejection.BAD_TIMING
        return None

    def _held_is_current(self, now: float) -> bool:
        """An action has been actuated and its observation is within `max_action_age`: order is judged
        against it (a stale reference, even a bad one, is not kept as one)."""
        return self._last_seq >= 0 and now - self._last_stamp <= self.config.max_action_age

    def _check(self, action: TimedAction, now: float) -> Rejection | None:
        data = np.asarray(action.data, dtype=np.float64)
        if data.shape != (self.config.action_dim,):
            return Rejection.SIZE
        if not np.all(np.isfinite(data)):
            return Rejection.NOT_FINITE
        if self._held_is_current(now):
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


@dataclass
class WatchdogSpells:
    """When the watchdog's safe command begins and ends (one log line each, not one per tick).
    Before the first fresh action the graph is warming up: not a spell."""

    active: bool = False
    spells: int = 0
    ticks: int = 0  # ticks of the current spell
    _ever_fresh: bool = False

    def update(self, kind: TickKind) -> str | None:
        """ "enter", "leave" or None for a tick of this kind."""
        if kind is TickKind.FRESH:
            self._ever_fresh = True
            if self.active:
                self.active = False
                return "leave"
            return None
        if kind is TickKind.WATCHDOG and self._ever_fresh:
            if not self.active:
                self.active, self.ticks = True, 0
                self.spells += 1
                self.ticks += 1
                return "enter"
            self.ticks += 1
        return None
