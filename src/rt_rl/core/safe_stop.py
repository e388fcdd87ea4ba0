"""The safe stop: the last command the graph gives a robot, on every stop path (no ROS here).

A ros2_control `forward_command_controller` has no timeout: it applies the last command it received
until another one comes. So however the graph stops, its last word on the command topic must be the
safe command, and nothing may follow it:

- Ctrl-C or SIGTERM to `rt-rl launch`, the end of `--duration`, a required node dying: the launcher
  stops the arbiter first; SIGINT/SIGTERM to the arbiter itself, or its control thread dying: the
  arbiter's stop runs `run_safe_stop` before it leaves the graph. Its control loop publishes through
  a `CommandGate`, closed first, so no policy command can follow the safe one.
- The arbiter killed (SIGKILL, a crash, a hang the launcher ended): the launcher publishes the same
  safe command on the same topic before it stops anything else (`rt_rl.launcher`).

What the safe command is, is the user's choice, one value per actuator (`safe_command`, clamped to the
command limits like every command): zero effort lets a robot go limp (a hopper falls), zero velocity
brakes it where it is, a fixed posture holds a position controller there. The arbiter cannot know
which controller it feeds; the default is zero. The same command is the watchdog's
(`rt_rl.core.arbiter`), so a robot whose policy stalls and one whose graph stops end the same way.

The sequence (`run_safe_stop`): publish the safe command `repeats` times `spacing` apart (one is
enough for a reliable subscriber; the repeats are for a best-effort one), then wait until every
matched subscriber has acknowledged it (reliable QoS), at most `ack_timeout`; then it ends and the
publisher is never used again. A subscriber that vanished without leaving the graph (killed, its DDS
lease not expired yet) never acknowledges: the wait then ends at the timeout and says so. A reliable
reader acknowledges on the writer's heartbeat: the graph's Fast DDS profiles (rt_rl/dds) set it to
100 ms (measured 12-116 ms to the acknowledgement); Fast DDS's default of 3 s made it 0.9-2.5 s. The
launcher's guard starts with a fresh publisher, so it first waits (at most `match_timeout`) until the
publisher has matched every subscriber of the topic the graph already knows.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rt_rl.tasks import get_task

# The arbiter's parameters of the safe stop, and their defaults (its node declares them with these).
DEFAULT_TASK = "Hopper-v5"
DEFAULT_SAFE_COMMAND = (0.0,)  # one value: for every actuator
TASK_LIMITS = (math.nan,)  # command_lower / command_upper: the task's action limits
DEFAULT_REPEATS = 3
DEFAULT_ACK_TIMEOUT = 0.5  # s
MAX_ACK_TIMEOUT = 2.0  # s: the launcher waits 5 s for the arbiter to stop
SPACING = 0.005  # s between the repeats
MATCH_POLL = 0.005  # s


def per_actuator(value: Sequence[float], n: int, default: Sequence[float], name: str) -> list[float]:
    """One value per actuator: a single value is broadcast, a single NaN means `default`.

    (A ROS 2 array parameter cannot be declared empty, hence the NaN sentinel.)"""
    value = [float(v) for v in value]
    if len(value) == 1:
        return list(default) if math.isnan(value[0]) else value * n
    if len(value) != n:
        raise ValueError(f"parameter '{name}' needs {n} values (one per actuator) or 1, got {len(value)}")
    return value


def safe_command(n: int, safe: Sequence[float], lower: Sequence[float], upper: Sequence[float]) -> np.ndarray:
    """The safe command as it leaves the arbiter: `safe` clamped to the limits (per actuator lists)."""
    cmd = np.asarray(safe, dtype=np.float64)
    if cmd.shape != (n,) or not np.all(np.isfinite(cmd)):
        raise ValueError(f"safe_command must be {n} finite values, got {list(safe)}")
    return np.clip(cmd, np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64))


@dataclass(frozen=True)
class SafeStopPlan:
    command: tuple[float, ...]
    repeats: int = DEFAULT_REPEATS
    spacing: float = SPACING
    ack_timeout: float = DEFAULT_ACK_TIMEOUT
    match_timeout: float = 0.0  # > 0: first wait for a fresh publisher to match the known subscribers

    def __post_init__(self) -> None:
        if not self.command or not all(math.isfinite(v) for v in self.command):
            raise ValueError(f"safe command must be finite values, got {self.command}")
        if self.repeats < 1:
            raise ValueError(f"safe_stop_repeats must be >= 1, got {self.repeats}")
        if self.spacing < 0 or not 0 <= self.ack_timeout <= MAX_ACK_TIMEOUT or self.match_timeout < 0:
            raise ValueError(
                f"safe stop times must be >= 0 (ack timeout <= {MAX_ACK_TIMEOUT} s): spacing "
                f"{self.spacing}, ack_timeout {self.ack_timeout}, match_timeout {self.match_timeout}"
            )

    @property
    def seconds_at_most(self) -> float:
        """The longest the sequence can take (publish calls themselves aside)."""
        return self.match_timeout + (self.repeats - 1) * self.spacing + self.ack_timeout


def safe_stop_plan(settings: Mapping[str, Any], match_timeout: float = 0.0) -> SafeStopPlan:
    """The safe stop of an arbiter given `settings`, its parameters by name (declared values, or a
    params file's `node_settings`; an absent one takes the node's default): the task (action size and
    limits), `safe_command`, `command_lower`, `command_upper`, `safe_stop_repeats`,
    `safe_stop_timeout`. The arbiter and the launcher's guard both ask here: one safe command."""
    task = get_task(str(settings.get("task", DEFAULT_TASK)))
    n = task.action_dim
    lower = per_actuator(
        settings.get("command_lower", TASK_LIMITS), n, [task.action_low] * n, "command_lower"
    )
    upper = per_actuator(
        settings.get("command_upper", TASK_LIMITS), n, [task.action_high] * n, "command_upper"
    )
    safe = per_actuator(settings.get("safe_command", DEFAULT_SAFE_COMMAND), n, [0.0] * n, "safe_command")
    return SafeStopPlan(
        tuple(float(v) for v in safe_command(n, safe, lower, upper)),
        repeats=int(settings.get("safe_stop_repeats", DEFAULT_REPEATS)),
        ack_timeout=float(settings.get("safe_stop_timeout", DEFAULT_ACK_TIMEOUT)),
        match_timeout=match_timeout,
    )


@dataclass(frozen=True)
class SafeStopReport:
    published: int  # safe commands published
    acked: bool  # every matched subscriber acknowledged them in time
    subscribers: int  # matched by the publisher when the sequence ended (-1: not known)
    expected: int  # subscribers of the topic the graph knew of (-1: not asked)
    seconds: float  # the sequence, start to end

    def describe(self) -> str:
        who = f"{self.subscribers} subscriber(s)" if self.subscribers >= 0 else "its subscribers"
        if self.expected > self.subscribers >= 0:
            who += f" of {self.expected} known"
        state = "acknowledged by" if self.acked else "NOT acknowledged in time by"
        return f"{self.published}x, {state} {who}, {self.seconds * 1e3:.1f} ms"


def run_safe_stop(
    plan: SafeStopPlan,
    publish: Callable[[tuple[float, ...]], None],
    wait_acked: Callable[[float], bool],
    subscribers: Callable[[], tuple[int, int]] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> SafeStopReport:
    """Publish the safe command and wait for it to be acknowledged; when this returns the sequence is
    over and the caller publishes nothing more on the topic (it closed its `CommandGate` before).

    `publish(command)` sends one command, `wait_acked(timeout)` blocks until every matched reliable
    subscriber acknowledged everything published (True) or `timeout` s pass (False), `subscribers()`
    is (matched by the publisher, known on the topic)."""
    start = clock()
    matched, expected = subscribers() if subscribers else (-1, -1)
    if plan.match_timeout > 0 and subscribers is not None:
        deadline = start + plan.match_timeout
        while matched < expected and clock() < deadline:
            sleep(MATCH_POLL)
            matched, expected = subscribers()
    for i in range(plan.repeats):
        if i and plan.spacing > 0:
            sleep(plan.spacing)
        publish(plan.command)
    acked = bool(wait_acked(plan.ack_timeout))
    if subscribers is not None:
        matched, expected = subscribers()
    return SafeStopReport(plan.repeats, acked, matched, expected, clock() - start)


class CommandGate:
    """The one door of the policy's commands to the command publisher: open until `close`, after which
    nothing passes. `close` waits for a publish in progress, so once it returns no policy command can
    follow what is published next (the safe command)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False

    def pass_through(self, publish: Callable[[Any], None], msg: Any) -> bool:
        """`publish(msg)` if the gate is open; False (nothing published) once it is closed."""
        with self._lock:
            if self._closed:
                return False
            publish(msg)
            return True

    def close(self) -> None:
        with self._lock:
            self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed
