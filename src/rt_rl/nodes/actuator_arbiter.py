"""actuator_arbiter: owns the control clock and the staggering schedule.

Every control period (drift-free: tick n is due at start + n*period on the monotonic clock) it asks the
pure `ArbiterCore` what to actuate (freshest valid action, fallback, watchdog, clamping) and publishes
it as std_msgs/Float64MultiArray, the input of ros2_control's forward command controllers. It measures
every worker's inference time from the action messages, lays the shared slot grid once a warm-up has
measured T (never a guess), re-lays it when T moves, and reports on /diagnostics.

Clocks: ticks are paced on the monotonic clock; ages compare the tick's wall time with the sensor stamp,
which is only meaningful when the sensor's host clock is synchronised with this one (same host, or PTP).
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import defaultdict

import numpy as np
from rt_rl_interfaces.msg import Action
from rt_rl_interfaces.msg import Schedule as ScheduleMsg
from std_msgs.msg import Float64MultiArray

from rt_rl.core.arbiter import ArbiterConfig, ArbiterCore, TickKind, TimedAction
from rt_rl.core.schedule import InferenceTimeEstimator, Retuner, Schedule, make_schedule
from rt_rl.core.stats import percentiles_ms
from rt_rl.nodes.common import (
    FRESHEST_QOS,
    LATCHED_QOS,
    REALTIME_PRIORITY,
    ConfigError,
    Param,
    RtNode,
    declare,
    from_time_msg,
    run,
    schedule_to_msg,
    set_realtime_priority,
    statistics_rate,
)
from rt_rl.tasks import TASKS, get_task

PARAMS = (
    Param("task", "Hopper-v5", "task: default action size and limits", choices=tuple(TASKS)),
    Param("control_rate_hz", 100.0, "fixed control rate", 0.1, 10000.0),
    Param("num_workers", 1, "number of staggered inference workers", 1, 1024),
    Param(
        "fallback",
        "hold",
        "command when no fresh action: hold last, zero, or default_command",
        choices=("hold", "zero", "default"),
    ),
    Param("default_command", [0.0], "command for fallback 'default' (one per actuator, or one for all)"),
    Param("safe_command", [0.0], "command when the newest action is older than max_action_age"),
    Param(
        "command_lower", [math.nan], "lower command limits (one per actuator, or one); [.nan] = the task's"
    ),
    Param(
        "command_upper", [math.nan], "upper command limits (one per actuator, or one); [.nan] = the task's"
    ),
    Param(
        "max_action_age", 0.25, "seconds; older actions are rejected and the watchdog goes safe", 0.001, 60.0
    ),
    Param("schedule_margin", 0.002, "seconds a completion is planned before its tick (transport)", 0.0, 1.0),
    Param(
        "warmup_samples", 10, "inference times measured from each worker before the first schedule", 1, 10000
    ),
    Param("retune_tolerance", 0.1, "relative change of T that re-lays the grid", 0.01, 10.0),
    Param(
        "retune_hold", 2.0, "seconds T must stay beyond the tolerance before the grid is re-laid", 0.0, 60.0
    ),
    Param("action_topic", "/rt_rl/action", "rt_rl_interfaces/Action input"),
    Param("command_topic", "/rt_rl/command", "std_msgs/Float64MultiArray output"),
    Param("schedule_topic", "/rt_rl/schedule", "rt_rl_interfaces/Schedule output (latched)"),
    REALTIME_PRIORITY,
    statistics_rate(2.0),
)


def _vector(value: list[float], n: int, default: list[float], name: str) -> list[float]:
    """One value per actuator; a single value is broadcast, a single NaN means `default`.

    (A ROS 2 array parameter cannot be declared empty, hence the NaN sentinel.)
    """
    if len(value) == 1:
        return default if math.isnan(value[0]) else value * n
    if len(value) != n:
        raise ConfigError(f"parameter '{name}' needs {n} values (one per actuator) or 1, got {len(value)}")
    return value


class ActuatorArbiter(RtNode):
    def __init__(self) -> None:
        super().__init__("actuator_arbiter")
        p = declare(self, PARAMS)
        try:
            task = get_task(p["task"])
        except ValueError as err:
            raise ConfigError(str(err)) from None
        n = task.action_dim
        lower = _vector(p["command_lower"], n, [task.action_low] * n, "command_lower")
        upper = _vector(p["command_upper"], n, [task.action_high] * n, "command_upper")
        try:
            config = ArbiterConfig(
                action_dim=n,
                fallback=p["fallback"],
                default_command=_vector(p["default_command"], n, [0.0] * n, "default_command"),
                safe_command=_vector(p["safe_command"], n, [0.0] * n, "safe_command"),
                lower=lower,
                upper=upper,
                max_action_age=p["max_action_age"],
            )
        except ValueError as err:
            raise ConfigError(str(err)) from None
        self.core = ArbiterCore(config)
        self.period = 1.0 / p["control_rate_hz"]
        set_realtime_priority(self, p["realtime_priority"])
        self.num_workers = p["num_workers"]
        self.margin = p["schedule_margin"]
        self.warmup_samples = p["warmup_samples"]
        self.retuner = Retuner(p["retune_tolerance"], p["retune_hold"])
        self.estimator = InferenceTimeEstimator()
        self.schedule: Schedule | None = None
        self._lock = threading.Lock()

        # Statistics, counted from the first fresh tick after the first schedule has gone round once.
        self.stats_start: float | None = None
        self.tick_times: list[float] = []  # monotonic publish times
        self.kinds: dict[TickKind, int] = dict.fromkeys(TickKind, 0)
        self.ages: list[float] = []
        self.worker_actions: dict[int, int] = defaultdict(int)
        self.worker_inference: dict[int, list[float]] = defaultdict(list)
        self._rejected_before: dict = {}
        self.worker_revision: dict[int, int] = {}  # schedule revision each worker last followed
        self.worker_samples: dict[int, int] = defaultdict(int)  # actions heard from each worker
        self._last_wall_tick = 0.0

        self.cmd_pub = self.create_publisher(Float64MultiArray, p["command_topic"], FRESHEST_QOS)
        self.sched_pub = self.create_publisher(ScheduleMsg, p["schedule_topic"], LATCHED_QOS)
        self.create_subscription(Action, p["action_topic"], self._on_action, 10 * self.num_workers)
        self.start_reporting(p["statistics_rate_hz"])
        self.create_timer(0.5, self._maybe_schedule)
        sys.setswitchinterval(0.0005)  # the tick thread must not wait 5 ms for the GIL
        self._thread = threading.Thread(target=self._control_loop, name="control", daemon=True)
        self._thread.start()

    # --- inputs -------------------------------------------------------------------------------------
    def _on_action(self, msg: Action) -> None:
        now = time.time()
        duration = from_time_msg(msg.inference_end) - from_time_msg(msg.inference_start)  # worker clock only
        action = TimedAction(
            np.asarray(msg.data, dtype=np.float64),
            from_time_msg(msg.observation_stamp),
            msg.observation_seq,
            msg.worker_id,
        )
        with self._lock:
            self.worker_revision[msg.worker_id] = msg.schedule_revision
            self.worker_samples[msg.worker_id] += 1
            self.estimator.add(duration)
            if self.stats_start is not None:
                self.worker_actions[msg.worker_id] += 1
                self.worker_inference[msg.worker_id].append(duration)
            self.core.offer(action, now)

    # --- control clock ------------------------------------------------------------------------------
    def _control_loop(self) -> None:
        start = time.monotonic()
        n = 0
        while not self.stop_event.is_set():
            n += 1
            due = start + n * self.period
            remaining = due - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)
            elif remaining < -self.period:
                # More than a period late (machine stalled): skip the missed ticks rather than burst.
                n += int(-remaining // self.period)
            wall = time.time()
            with self._lock:
                decision = self.core.tick(wall)
            self.cmd_pub.publish(Float64MultiArray(data=decision.command.tolist()))
            mono = time.monotonic()
            with self._lock:
                self._record(decision.kind, decision.action_age, mono, wall)

    def _record(self, kind: TickKind, age: float, mono: float, wall: float) -> None:
        self._last_wall_tick = wall
        if self.stats_start is None:
            # The window opens at the first fresh action once the first schedule has gone round:
            # the free-running warm-up before it is not what the schedule delivers.
            if (
                self.schedule is None
                or wall < self.schedule.epoch + self.schedule.cycle
                or kind != TickKind.FRESH
            ):
                return
            self.stats_start = wall
            self._rejected_before = dict(self.core.rejected)  # count rejections inside the window only
        self.tick_times.append(mono)
        self.kinds[kind] += 1
        if kind is TickKind.FRESH:
            self.ages.append(age)

    def _maybe_schedule(self) -> None:
        """Timer (executor thread, off the control path): lay or re-lay the grid from measured T."""
        with self._lock:
            # Every worker must be heard from (its actions reach us) and must hear the schedule
            # (DDS discovery of a late-joining endpoint can take seconds on a busy machine).
            heard_all = all(self.worker_samples[w] >= self.warmup_samples for w in range(self.num_workers))
            if not heard_all or not self._last_wall_tick:
                return
        if self.schedule is None and self.sched_pub.get_subscription_count() < self.num_workers:
            return
        with self._lock:
            estimate = self.estimator.estimate()
            current = self.schedule
            wall_tick = self._last_wall_tick
        if current is not None and not self.retuner.update(time.monotonic(), current, estimate):
            self._publish_schedule(current)  # again: a lost latched sample is otherwise repaired in seconds
            return
        # The new grid starts after every inference of the old one has finished.
        lead = current.lead if current else estimate
        schedule = make_schedule(
            self.num_workers,
            self.period,
            estimate,
            tick_phase=wall_tick,
            not_before=time.time() + lead,
            margin=self.margin,
            revision=(current.revision + 1) if current else 1,
        )
        with self._lock:
            self.schedule = schedule
        self._publish_schedule(schedule)
        self.get_logger().info(
            f"schedule r{schedule.revision}: N={schedule.num_workers} T={estimate * 1e3:.2f} ms "
            f"spacing={schedule.spacing * 1e3:.2f} ms predicted fresh ratio {schedule.predicted_fresh_ratio():.3f}"
        )

    def _publish_schedule(self, schedule: Schedule) -> None:
        self.sched_pub.publish(schedule_to_msg(schedule))

    # --- reporting ----------------------------------------------------------------------------------
    def statistics(self) -> dict:
        # Copy under the lock (microseconds), compute outside it: the control thread must never wait
        # for a percentile.
        with self._lock:
            tick_times = np.array(self.tick_times)
            kinds = dict(self.kinds)
            ages = list(self.ages)
            actions = dict(self.worker_actions)
            inference = {w: list(v) for w, v in self.worker_inference.items()}
            rejected = {k.value: v - self._rejected_before.get(k, 0) for k, v in self.core.rejected.items()}
            sched = self.schedule
        ticks = len(tick_times)
        periods = np.diff(tick_times)
        inference_all = (
            np.concatenate([np.asarray(v) for v in inference.values()]) if inference else np.array([])
        )
        mean_t = float(inference_all.mean()) if inference_all.size else math.nan
        span = tick_times[-1] - tick_times[0] if ticks > 1 else math.nan
        return {
            "control": {
                "rate_hz_target": round(1.0 / self.period, 3),
                "rate_hz_achieved": round((ticks - 1) / span, 3) if ticks > 1 else None,
                "period_ms": percentiles_ms(periods, ("p50", "p99", "max")),
                "ticks": ticks,
            },
            "fresh_action_ratio": round(kinds[TickKind.FRESH] / ticks, 4) if ticks else None,
            "predicted_fresh_action_ratio": (
                round(min(1.0, self.num_workers * self.period / mean_t), 4) if inference_all.size else None
            ),
            "inference_ms_mean": round(mean_t * 1e3, 3) if inference_all.size else None,
            "fallback_ticks": kinds[TickKind.FALLBACK] + kinds[TickKind.WATCHDOG],
            "watchdog_ticks": kinds[TickKind.WATCHDOG],
            "rejected_actions": sum(rejected.values()),
            "rejected_by_reason": rejected,
            "action_age_ms": percentiles_ms(ages, ("p50", "p99", "max")),
            "workers": [
                {
                    "id": w,
                    "actions": actions.get(w, 0),
                    "inference_ms": percentiles_ms(inference.get(w, []), ("p50", "p99")),
                }
                for w in sorted(set(actions) | set(range(self.num_workers)))
            ],
            "schedule": None
            if sched is None
            else {
                "revision": sched.revision,
                "num_workers": sched.num_workers,
                "inference_time_ms": round(sched.inference_time * 1e3, 3),
                "spacing_ms": round(sched.spacing * 1e3, 3),
                "lead_ms": round(sched.lead * 1e3, 3),
            },
        }

    def status(self) -> tuple[str, dict]:
        return ("scheduled" if self.schedule is not None else "warming up"), self.statistics()

    def on_shutdown(self) -> None:
        self._thread.join(timeout=1.0)
        self.report()  # final statistics: the launcher's summary covers the whole window


def main(argv: list[str] | None = None) -> int:
    return run("actuator_arbiter", ActuatorArbiter, argv)


if __name__ == "__main__":
    raise SystemExit(main())
