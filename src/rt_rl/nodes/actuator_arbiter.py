"""actuator_arbiter: owns the control clock and the staggering schedule.

Every control period (drift-free `Pacer`: tick n is due at start + n*period) its control thread takes
the actions that arrived since the last tick (a DDS reader taken at the tick, no callback per action),
asks the pure `ArbiterCore` what to actuate (freshest valid action whose slot has come, fallback,
watchdog, clamping, episode boundary) and publishes it as std_msgs/Float64MultiArray, the input of ros2_control's forward
command controllers. The `SchedulePlanner` (on the executor thread, off the control path) lays the
shared slot grid once a warm-up has measured every worker's inference time (never a guess) and re-lays
it when T moves. Statistics are kept in a bounded `Measurement` and reported on /diagnostics.

Stop: however the node is stopped (SIGINT/SIGTERM from the launcher or anyone, its control thread
dying), its last command is the safe command (`rt_rl.core.safe_stop`): the control loop publishes
through a `CommandGate` that the stop closes first, then the safe command goes out and the stop waits
for every subscriber to acknowledge it; only then the node leaves the graph.

Lifecycle: a managed node (`ros2 lifecycle set /actuator_arbiter configure|activate|deactivate|
cleanup|shutdown`). `configure` reads and checks every parameter and starts the clock and the schedule
(the workers warm up and run, nothing is published); `activate` engages with a ramp from the robot's
current command (the newest on the command topic, else the safe command) to the policy's;
`deactivate` ramps to the safe command, publishes it and then publishes nothing (`rt_rl.core.engage`).
With `autostart` (the default, as `rt-rl launch` and the launch file use it) the node configures and
activates itself.

Live rate: `control_rate_hz` may be set while the node runs. The change takes effect at a tick of the
old clock far enough ahead that every worker has heard the grid laid for the new period
(`SchedulePlanner.change_period`): the old grid serves every tick before it, the new one every tick
from it.

Clocks: the ticks and the schedule grid are on one clock, the wall clock (CLOCK_REALTIME: the clock
hosts can share through PTP/NTP, so workers on another machine can follow the grid). Durations
(control period, inference time) are measured on the monotonic clock. Action ages compare a tick's wall
time with the sensor stamp: meaningful on one host or with synchronised clocks, not otherwise.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import asdict, replace

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNodeMixin, LifecycleState, TransitionCallbackReturn
from rt_rl_interfaces.msg import Actuation
from std_msgs.msg import Float64MultiArray

from rt_rl.core.arbiter import (
    IMPLAUSIBLE,
    ArbiterConfig,
    ArbiterCore,
    TickDecision,
    TickKind,
    TimedAction,
    WatchdogSpells,
    episode_after,
)
from rt_rl.core.auth import action_fields, reward_fields
from rt_rl.core.engage import Engagement, EngageRamp
from rt_rl.core.grid import Retuner
from rt_rl.core.measurement import Measurement, WindowGate, summarize
from rt_rl.core.pacer import OverloadWatch, Pacer
from rt_rl.core.planner import SchedulePlanner
from rt_rl.core.pool import PoolSizer
from rt_rl.core.safe_stop import (
    DEFAULT_ACK_TIMEOUT,
    DEFAULT_REPEATS,
    DEFAULT_SAFE_COMMAND,
    MAX_ACK_TIMEOUT,
    TASK_LIMITS,
    CommandGate,
    SafeStopReport,
    per_actuator,
    run_safe_stop,
    safe_stop_plan,
)
from rt_rl.graph import QosSpec
from rt_rl.nodes.common import (
    REALTIME_PRIORITY,
    ConfigError,
    Param,
    RtNode,
    declare,
    float64_array,
    from_time_msg,
    run,
    schedule_to_msg,
    set_stamp,
    set_thread_realtime,
    statistics_rate,
    topic_param,
)
from rt_rl.tasks import TASKS, get_task

PARAMS = (
    Param("task", "Hopper-v5", "task: default action size and limits", choices=tuple(TASKS)),
    Param(
        "control_rate_hz",
        100.0,
        "control rate; settable while running: the clock and the schedule change at a tick",
        0.1,
        10000.0,
        live=True,
    ),
    Param(
        "autostart",
        True,
        "configure and activate at start; false: wait for `ros2 lifecycle set` (configure, activate)",
    ),
    Param(
        "engage_ramp_time",
        0.5,
        "seconds over which activate blends from the robot's current command to the policy's, and "
        "deactivate to the safe command",
        0.0,
        60.0,
    ),
    Param(
        "ramp_max_rate",
        20.0,
        "command units per second: the largest change per actuator while engaging or disengaging "
        "(per tick: this times the control period)",
        1e-6,
        1e9,
    ),
    Param("num_workers", 1, "staggered inference workers (ids 0..N-1); with auto_workers, the most", 1, 1024),
    Param(
        "auto_workers",
        False,
        "size the active pool from T: ceil(T/P) + 1 of the workers alive; the others are warm spares",
    ),
    Param("min_workers", 1, "auto_workers: fewest active workers", 1, 1024),
    Param(
        "pool_shrink_hold",
        5.0,
        "auto_workers: seconds a smaller pool must suffice before it shrinks",
        0.0,
        600.0,
    ),
    Param(
        "worker_lost_after",
        1.5,
        "seconds without a word from a worker (or 3 of its cycles) before the grid is re-laid without it",
        0.1,
        60.0,
    ),
    Param(
        "sensor_rate_hz",
        0.0,
        "joint state rate; > 0: worker starts move to just after a sensor sample (0: do not align)",
        0.0,
        100000.0,
    ),
    Param(
        "sensor_offset",
        0.001,
        "seconds from a sample's stamp until its observation can be at a worker (transport + build)",
        0.0,
        1.0,
    ),
    Param(
        "tick_phase_lock",
        True,
        "with sensor_rate_hz: each new grid moves the control ticks later (by less than one sensor "
        "period) so that a worker starts just after a sample and its action lands just before its tick",
    ),
    Param(
        "fallback",
        "hold",
        "command when no fresh action: hold last, zero, or default_command",
        choices=("hold", "zero", "default"),
    ),
    Param("default_command", [0.0], "command for fallback 'default' (one per actuator, or one for all)"),
    Param(
        "safe_command",
        list(DEFAULT_SAFE_COMMAND),
        "command when the newest action is older than max_action_age, and the last command of every "
        "stop (one per actuator, or one for all): zero effort, zero velocity or a safe posture, the "
        "user's choice for the controller fed",
    ),
    Param("safe_stop_repeats", DEFAULT_REPEATS, "times the safe command is published on stop", 1, 100),
    Param(
        "safe_stop_timeout",
        DEFAULT_ACK_TIMEOUT,
        "seconds the stop waits for every command subscriber to acknowledge the safe command",
        0.0,
        MAX_ACK_TIMEOUT,
    ),
    Param(
        "command_lower",
        list(TASK_LIMITS),
        "lower command limits (one per actuator, or one); [.nan] = the task's",
    ),
    Param(
        "command_upper",
        list(TASK_LIMITS),
        "upper command limits (one per actuator, or one); [.nan] = the task's",
    ),
    Param(
        "max_action_age", 0.25, "seconds; older actions are rejected and the watchdog goes safe", 0.001, 60.0
    ),
    Param("schedule_margin", 0.002, "seconds a completion is planned before its tick (transport)", 0.0, 1.0),
    Param(
        "actuation_delay_ticks",
        0,
        "actuate each action this many control ticks after its observation's tick, not sooner (the "
        "delay D its policy was trained for: the checkpoint's timing); 0: as soon as it arrives",
        0,
        100,
    ),
    Param(
        "tick_grace",
        0.0,
        "seconds a tick may wait for the action the grid has due for it when that action is still in "
        "transit (0: never wait; the command of such a tick goes out up to this much later)",
        0.0,
        0.5,
    ),
    Param(
        "warmup_samples", 5, "inference times measured from each worker before the first schedule", 1, 10000
    ),
    Param(
        "warmup_discard",
        3,
        "first inference times of each worker not used (a fresh process is slow)",
        0,
        1000,
    ),
    Param("retune_tolerance", 0.1, "relative change of T that re-lays the grid", 0.01, 10.0),
    Param("retune_hold", 2.0, "seconds a smaller T must hold before the grid is re-laid for it", 0.0, 60.0),
    Param(
        "retune_overrun_hold",
        0.2,
        "seconds a larger T (the grid misses ticks) must hold before the grid is re-laid",
        0.0,
        60.0,
    ),
    topic_param("action", "input"),
    topic_param("command", "output"),
    topic_param("actuation", "output"),
    topic_param("episode_end", "input, optional on a robot"),
    topic_param("schedule", "output"),
    REALTIME_PRIORITY,
    statistics_rate(1.0),
)


def _vector(value: list[float], n: int, default: list[float], name: str) -> list[float]:
    """One value per actuator (rt_rl.core.safe_stop.per_actuator), a ConfigError if not."""
    try:
        return per_actuator(value, n, default, name)
    except ValueError as err:
        raise ConfigError(str(err)) from None


class ActuatorArbiter(RtNode, LifecycleNodeMixin):
    def __init__(self) -> None:
        RtNode.__init__(self, "actuator_arbiter")
        LifecycleNodeMixin.__init__(self)
        p = declare(self, PARAMS)
        # The executor (this, the main thread) just below the timing thread: a Python thread at normal
        # priority that holds the GIL when busy processes preempt it makes the real-time thread wait for
        # the GIL (seen: 51 ms between two ticks with two busy loops beside the graph).
        set_thread_realtime(self, max(0, p["realtime_priority"] - 1))
        self._configured = False
        self.pacer: Pacer | None = None
        self.planner: SchedulePlanner | None = None
        self._last_tick_due = 0.0
        self._lock = threading.Lock()  # planner, measurement, gate: control thread vs executor thread
        self._cleanup = threading.Event()  # stops the control thread on `cleanup`
        self._rate_change: tuple[float, float] | None = None  # (new period, tick it starts at)
        self._engaged_changed = threading.Event()  # the control thread finished a hand-back
        self.rates: dict[str, dict[str, int]] = {}  # per control rate: ticks and fresh ones
        self._cmd_msg = Float64MultiArray()
        self.cmd_pub = self.publisher("command", p)
        self._act_msg = Actuation()  # one per tick, refilled: what was actuated and why
        self.act_pub = self.publisher("actuation", p)
        self.sched_pub = self.publisher("schedule", p)
        self._topics = p
        self.robot_command = None  # newest command on the command topic while inactive (see _listen)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.overload = OverloadWatch()
        sys.setswitchinterval(0.0005)  # the tick thread must not wait 5 ms for the GIL
        if p["autostart"]:
            self._configure(p)  # first: a bad parameter stops the node with one line, before it reports
        self.start_reporting(p["statistics_rate_hz"])
        self.create_timer(0.1, self._plan)
        self.create_timer(1.0, self._republish_schedule)
        self.create_timer(1.0, self._watch_overload)
        if p["autostart"]:
            self.trigger_configure()  # the state machine follows (configure is then a no-op)
            self.trigger_activate()
        else:
            self._listen(True)
            self.get_logger().info("unconfigured: waiting for `ros2 lifecycle set` configure, activate")

    # --- lifecycle ----------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._configured:
            return TransitionCallbackReturn.SUCCESS
        params = {q.name: self.get_parameter(q.name).value for q in PARAMS}
        params = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in params.items()}
        try:
            self._configure(params)
        except ConfigError as err:
            self.get_logger().error(f"configure refused: {err}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        start = self.robot_command
        self._listen(False)
        self.ramp.activate(start)
        where = "the safe command" if start is None else f"the robot's command {np.round(start, 3).tolist()}"
        self.get_logger().info(f"activate: engaging from {where} over {self.ramp.ramp_time:g} s")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._engaged_changed.clear()
        self.ramp.deactivate()
        if not self._engaged_changed.wait(self.ramp.ramp_time + 2.0):
            self.get_logger().error("deactivate: the ramp to the safe command did not finish")
            return TransitionCallbackReturn.FAILURE
        self._listen(True)
        self.get_logger().info(
            f"deactivate: safe command {list(self.safe_stop.command)} published, handed back"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._cleanup.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._threads.clear()
        self._configured = False
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_event.set()  # the node's run loop ends: before_exit makes the stop safe
        return TransitionCallbackReturn.SUCCESS

    def _listen(self, on: bool) -> None:
        """While inactive, follow the command topic (someone else may be commanding the robot): the
        newest command is where `activate` starts its ramp from."""
        if on and getattr(self, "_command_sub", None) is None:

            def heard(msg: Float64MultiArray) -> None:
                self.robot_command = np.asarray(msg.data, dtype=np.float64)

            self._command_sub = self.create_subscription(
                Float64MultiArray, self.cmd_pub.topic_name, heard, 10
            )
        elif not on and getattr(self, "_command_sub", None) is not None:
            self.destroy_subscription(self._command_sub)
            self._command_sub = None

    # --- configuration ------------------------------------------------------------------------------
    def _configure(self, p: dict) -> None:
        """Check every parameter and build the control clock's parts; start the control thread."""
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
                actuation_delay=p["actuation_delay_ticks"] / p["control_rate_hz"],
                pool_size=p["num_workers"],
            )
        except ValueError as err:
            raise ConfigError(str(err)) from None
        self.core = ArbiterCore(config)
        self._core_grid = None  # the schedule whose workers the core accepts actions from
        try:
            self.safe_stop = safe_stop_plan(p)  # the launcher's guard reads the same parameters
        except ValueError as err:
            raise ConfigError(str(err)) from None
        assert np.array_equal(self.safe_stop.command, self.core.safe_command)  # one safe command
        self.safe_stop_report: SafeStopReport | None = None
        self.command_gate = CommandGate()  # every policy command passes here; the stop closes it
        self.tick_grace = p["tick_grace"]
        self.grace_waits = 0  # ticks that waited for their due action
        self.grace_fresh = 0  # ... and got it
        self.period = 1.0 / p["control_rate_hz"]
        self._rate_key = f"{p['control_rate_hz']:g}"  # the summary's ticks per rate
        self.priority = p["realtime_priority"]
        self.num_workers = p["num_workers"]
        if p["min_workers"] > self.num_workers:
            raise ConfigError(
                f"parameter 'min_workers' {p['min_workers']} must be <= num_workers {self.num_workers}"
            )
        self.auto = p["auto_workers"]
        self.planner = SchedulePlanner(
            self.num_workers,
            self.period,
            p["schedule_margin"],
            p["warmup_samples"],
            Retuner(p["retune_tolerance"], p["retune_hold"], p["retune_overrun_hold"]),
            discard=p["warmup_discard"],
            pool=PoolSizer(p["min_workers"], self.num_workers, shrink_hold=p["pool_shrink_hold"])
            if self.auto
            else None,
            lost_after=p["worker_lost_after"],
            sensor_period=1.0 / p["sensor_rate_hz"] if p["sensor_rate_hz"] > 0 else 0.0,
            sensor_offset=p["sensor_offset"],
            lock_ticks=p["tick_phase_lock"],
            min_lead=config.actuation_delay,
        )
        self.heartbeats = 0
        self.measurement = Measurement(self.period, self.num_workers)
        self.gate = WindowGate()
        self.pacer: Pacer | None = None
        self._last_tick_due = 0.0
        self.delay_ticks = p["actuation_delay_ticks"]
        self.watchdog = WatchdogSpells()
        try:
            self.ramp = EngageRamp(
                self.core.safe_command,
                p["engage_ramp_time"],
                p["ramp_max_rate"],
                np.array(lower),
                np.array(upper),
            )
        except ValueError as err:
            raise ConfigError(str(err)) from None
        # Every action is kept until the next tick takes it (depth: a few per worker per tick).
        if getattr(self, "actions", None) is None:
            self.actions = self.reader("action", p, QosSpec(10 * self.num_workers))  # volatile: no history
            # a few boundaries deep: a forged one right after a real one does not push it out
            self.episode_ends = self.reader("episode_end", p, QosSpec(16, latched=True))
        self._cleanup.clear()
        self._configured = True
        self.start_thread(self._control_loop, "control")

    # --- control clock ------------------------------------------------------------------------------
    def _control_loop(self) -> None:
        set_thread_realtime(self, self.priority)
        # Ticks on the wall clock, the schedule grid's clock (module docstring).
        self.pacer = Pacer(self.period, time.time())
        msg = self._cmd_msg
        while not self.stop_event.is_set() and not self._cleanup.is_set():
            tick, due = self.pacer.wait(clock=time.time)
            self._maybe_switch_rate(tick, due)
            now = time.time()
            inference_times = self._take_inputs(now)
            grid = self.planner.schedule  # read without the lock: replaced whole, never unset
            if (
                self.tick_grace > 0
                and not self.core.has_due(now)
                and grid is not None
                and grid.completes_for(due)
            ):
                self.grace_waits += 1
                if self.actions.wait_for(self.tick_grace):
                    now = time.time()
                    inference_times += self._take_inputs(now)
                    self.grace_fresh += self.core.has_due(now)
            decision = self.core.tick(now)
            # spells inside the measuring window: the warm-up's old actions are not one
            spell = self.watchdog.update(decision.kind) if self.gate.opened_at is not None else None
            if spell is not None:
                self._say_watchdog(spell, decision.action_age)
            was = self.ramp.state
            command = self.ramp.step(decision.command, self.period)
            if command is not None:
                msg.data = float64_array(command)
                if not self.command_gate.pass_through(self.cmd_pub.publish, msg):
                    return  # the stop has begun: its safe command is the last one
            if was is Engagement.DISENGAGING and self.ramp.state is Engagement.INACTIVE:
                self._engaged_changed.set()  # the safe command went out: handed back
            published = time.monotonic()
            rate = self.rates.get(self._rate_key)
            if rate is None:
                rate = self.rates[self._rate_key] = {"ticks": 0, "fresh": 0}
            rate["ticks"] += 1
            rate["fresh"] += decision.kind is TickKind.FRESH
            with self._lock:  # once per tick: the planner and the measurement are read off this thread
                # the grid is laid on the ideal tick times, not on this tick's (jittered) wake-up
                self._last_tick_due = due
                was_open = self.gate.opened_at is not None
                heard = time.monotonic()
                for worker_id, seconds, turnaround, stamp in inference_times:
                    self.planner.add_inference(worker_id, seconds, at=heard, turnaround=turnaround)
                    if stamp is None:
                        continue  # a spare's heartbeat
                    self.planner.add_observation_stamp(stamp)
                    if was_open:
                        self.measurement.add_action(worker_id, seconds)
                if self.gate.update(now, decision.kind is TickKind.FRESH):
                    if not was_open:
                        self.core.reset_counts()  # rejections and superseded count inside the window
                    self.measurement.add_tick(decision.kind.value, published, decision.action_age)
            self._publish_actuation(tick, now, decision)

    def _say_watchdog(self, spell: str, age: float) -> None:
        """Once on entry, once on recovery (a rare tick: the log call is off the usual path)."""
        if spell == "enter":
            self.diag_level = DiagnosticStatus.ERROR
            self.get_logger().error(
                f"watchdog: no action newer than max_action_age ({self.core.config.max_action_age:g} s; "
                f"newest {age * 1e3:.0f} ms old): publishing the safe command {self.core.safe_command.tolist()}"
            )
        else:
            self.diag_level = DiagnosticStatus.OK
            self.get_logger().warning(
                f"watchdog: fresh actions again after {self.watchdog.ticks} tick(s) of safe command"
            )

    def _maybe_switch_rate(self, tick: int, due: float) -> None:
        """At the tick the new grid starts on (`_on_set_parameters`), move the clock to the new period."""
        change = self._rate_change
        if change is None or due < change[1] - 1e-6:
            return
        period, at = change
        self._rate_change = None
        self.pacer.rebase(tick, due, period)
        self.period = period
        self._rate_key = f"{1.0 / period:g}"
        self.core.config = replace(self.core.config, actuation_delay=self.delay_ticks * period)
        with self._lock:
            self.measurement.period = period
        self.get_logger().info(
            f"control rate {1.0 / period:g} Hz from tick {tick} ({(due - at) * 1e3:+.2f} ms)"
        )

    def _on_set_parameters(self, params) -> SetParametersResult:
        """`ros2 param set /actuator_arbiter control_rate_hz X`: lay the grid for the new period and set
        the tick it starts at; refused (with the reason) before the clock runs or while one is pending."""
        for param in params:
            if param.name != "control_rate_hz":
                continue
            rate = float(param.value)
            if self.pacer is None or not self._configured:
                return SetParametersResult(successful=False, reason="configure the arbiter first")
            if self._rate_change is not None:
                return SetParametersResult(successful=False, reason="a rate change is still pending")
            period = 1.0 / rate
            with self._lock:
                old = self.pacer.period
                now = time.time()
                # the first tick of the old clock that leaves every worker time to hear the new grid
                ahead = self.planner.switch_lead() + 2 * old
                last = self._last_tick_due or now
                at = last + math.ceil((now + ahead - last) / old) * old
                schedule = self.planner.change_period(period, at, self.delay_ticks * period)
                self._rate_change = (period, at)
            if schedule is not None:
                self.sched_pub.publish(schedule_to_msg(schedule, self.auth))
            laid = (
                ""
                if schedule is None
                else f", schedule r{schedule.revision} spacing {schedule.spacing * 1e3:.2f} ms"
            )
            self.get_logger().info(f"control rate {rate:g} Hz requested: from {at - now:.3f} s on{laid}")
        return SetParametersResult(successful=True)

    def _publish_actuation(self, tick: int, now: float, decision: TickDecision) -> None:
        """The tick's record for recorders and datasets, after the command (off its latency)."""
        a, action = self._act_msg, decision.action
        set_stamp(a.header.stamp, now)
        a.tick = tick
        a.kind = decision.kind.value
        a.in_window = self.gate.opened_at is not None  # written by this thread only
        a.command = self._cmd_msg.data
        a.action_age = decision.action_age
        a.worker_id = -1 if action is None else action.worker_id
        a.observation_seq = -1 if action is None else action.observation_seq
        set_stamp(a.observation_stamp, 0.0 if action is None else action.observation_stamp)
        a.episode = -1 if action is None else action.episode
        self.act_pub.publish(a)

    def _take_inputs(self, now: float) -> list[tuple[int, float, float, float | None]]:
        """Offer the actions that arrived since the last tick; their (worker, inference time, turnaround,
        observation stamp), the stamp None for a spare's heartbeat (revision 0 once a grid exists:
        never actuated)."""
        for reward in self.episode_ends.take_all():  # a forged boundary is counted and dropped
            if self.auth.check("episode_end", reward.auth_tag, reward_fields(reward)):
                self.core.set_episode(episode_after(reward.episode, reward.terminated or reward.truncated))
        inference_times = []
        grid = self.planner.schedule  # read without the lock: replaced whole, never unset
        if grid is not self._core_grid:
            # across a re-lay the old grid's slots run until the new epoch: both grids' workers
            old = self._core_grid.workers if self._core_grid is not None else ()
            self.core.set_workers((*grid.workers, *old))
            self._core_grid = grid
        scheduled = grid is not None
        for msg in self.actions.take_all():
            # the tag first (rt_rl.core.auth): a forged or modified action changes nothing, is counted
            authentic = self.auth.check("action", msg.auth_tag, action_fields(msg))
            if scheduled and msg.schedule_revision == 0:
                heartbeat = self.core.check_heartbeat(
                    msg.worker_id, msg.inference_time, msg.turnaround, authentic
                )
                if heartbeat is None:
                    self.heartbeats += 1
                    inference_times.append((msg.worker_id, msg.inference_time, msg.turnaround, None))
                continue
            action = TimedAction(
                np.asarray(msg.data, dtype=np.float64),
                from_time_msg(msg.observation_stamp),
                msg.observation_seq,
                msg.worker_id,
                episode=msg.episode,
                input_stamp=from_time_msg(msg.input_stamp),
                slot_end=from_time_msg(msg.slot_end) if msg.schedule_revision else math.nan,
                inference_time=msg.inference_time,
                turnaround=msg.turnaround,
            )
            if (
                self.core.offer(action, now, authentic) not in IMPLAUSIBLE
            ):  # a forged one's timings are not believed
                inference_times.append(
                    (msg.worker_id, msg.inference_time, msg.turnaround, action.observation_stamp)
                )
        return inference_times

    # --- schedule (executor thread, off the control path) ------------------------------------------
    def _plan(self) -> None:
        if not self._last_tick_due or self.planner is None or self._cleanup.is_set():
            return
        with self._lock:
            schedule = self.planner.plan(
                time.time(), self._last_tick_due, self.sched_pub.get_subscription_count(), time.monotonic()
            )
            if schedule is not None and self.planner.tick_shift:
                # the grid is laid on ticks moved onto the sensor phase: move the clock with it
                self.pacer.shift(self.planner.tick_shift)
                self._last_tick_due += self.planner.tick_shift
            if schedule is not None and self.gate.opens_after == math.inf:
                # the window opens once every worker has started on the first grid
                self.gate.opens_after = schedule.epoch + schedule.cycle
        if schedule is None:
            return
        self.sched_pub.publish(schedule_to_msg(schedule, self.auth))
        if schedule.revision == 1:
            self.report()  # "scheduled" now, not at the next statistics period
        self.get_logger().info(
            f"schedule r{schedule.revision}: N={schedule.num_workers} {list(schedule.workers)} "
            f"T={schedule.inference_time * 1e3:.2f} ms "
            f"spacing={schedule.spacing * 1e3:.2f} ms predicted fresh ratio {schedule.predicted_fresh_ratio():.3f}"
        )

    def _watch_overload(self) -> None:
        """Once a second: say so when the clock starts falling behind, and when it stops."""
        if self.pacer is None:
            return
        c = self.pacer.counters()
        # fresh ticks count once every worker follows the grid (the measuring window)
        fresh = (
            sum(r["fresh"] for r in list(self.rates.values())) if self.gate.opened_at is not None else None
        )
        said = self.overload.update(c["ticks"], c["late"], c["skipped"], fresh)
        if said == "overload":
            self.get_logger().warning(
                f"overload: late or skipped ticks, or fewer than {self.overload.fresh_floor:.0%} fresh in the "
                f"last second (late {c['late']}, skipped {c['skipped']} so far): the machine is too busy for this rate"
            )
        elif said == "recovered":
            self.get_logger().info(f"overload over after {self.overload.seconds} s")

    def _republish_schedule(self) -> None:
        schedule = self.planner.schedule if self.planner is not None else None
        if schedule is not None:
            self.sched_pub.publish(schedule_to_msg(schedule, self.auth))

    # --- reporting ----------------------------------------------------------------------------------
    def statistics(self, whole_window: bool = False) -> dict:
        # Copy under the lock (microseconds), compute outside it. While running, only the last minute's
        # samples: a whole-window copy and its percentiles grow with the run (65 536 samples after 11
        # minutes) and, holding the lock and the GIL, delayed the control thread (period p99 drifted
        # by 1.2 ms over a 10-minute run). The whole window is summarised once, at shutdown.
        with self._lock:
            snap = self.measurement.snapshot(recent_only=not whole_window)
            sched = self.planner.schedule
            opened = self.gate.opened_at is not None
        if opened:  # the core's counts start with the window (reset_counts)
            snap.superseded = self.core.superseded
            snap.rejected = {k.value: v for k, v in self.core.rejected.items()}
        out = summarize(snap)
        out["pacer"] = self.pacer.counters() if self.pacer else {}
        out["engagement"] = self.ramp.counts() if self._configured else {"state": "unconfigured"}
        out["rates_hz"] = {k: dict(v) for k, v in self.rates.items()}
        out["watchdog_spells"] = self.watchdog.spells if self._configured else 0
        out["overload_seconds"] = self.overload.seconds
        out["tick_grace"] = {"waits": self.grace_waits, "fresh_after_wait": self.grace_fresh}
        out["safe_stop"] = None if self.safe_stop_report is None else asdict(self.safe_stop_report)
        out["schedule"] = (
            None
            if sched is None
            else {
                "revision": sched.revision,
                "num_workers": sched.num_workers,
                "inference_time_ms": round(sched.inference_time * 1e3, 3),
                "spacing_ms": round(sched.spacing * 1e3, 3),
                "lead_ms": round(sched.lead * 1e3, 3),
                "workers": list(sched.workers),
                "sensor_phase_ms": round(sched.sensor_phase * 1e3, 3),
                "tick_shift_ms": round(self.planner.tick_shift * 1e3, 3),
            }
        )
        with self._lock:
            alive = self.planner.alive(time.monotonic())
        out["pool"] = {
            "auto": self.auto,
            "wanted": self.planner.wanted,
            "active": list(sched.workers) if sched else [],
            "alive": alive,
            "heartbeats": self.heartbeats,
        }
        return out

    def status(self) -> tuple[str, dict]:
        if self.planner is None:
            return "unconfigured", {"engagement": {"state": "unconfigured"}}
        state = "scheduled" if self.planner.schedule is not None else "warming up"
        return state, self.statistics(whole_window=self.stop_event.is_set())

    # --- stop ---------------------------------------------------------------------------------------
    def before_exit(self) -> None:
        """Every stop of the node ends here, its control thread stopped or not: close the gate (no
        policy command after this), publish the safe command until acknowledged (core.safe_stop), then
        the final report (its counts include the safe commands, as the recorder's bag does). An arbiter
        that is not publishing (unconfigured, or inactive: handed back, its last command was the safe
        one) publishes nothing: someone else may be commanding the robot."""
        if not self._configured or not self.ramp.publishing:
            self.get_logger().info(
                "exit while inactive: nothing published (the last command was the safe one)"
            )
            super().before_exit()
            return
        self.command_gate.close()
        msg = Float64MultiArray()
        msg.data = float64_array(np.asarray(self.safe_stop.command))
        topic = self.cmd_pub.topic_name
        report = run_safe_stop(
            self.safe_stop,
            lambda _command: self.cmd_pub.publish(msg),
            self.cmd_pub.wait_for_all_acked,
            lambda: (self.cmd_pub.get_subscription_count(), self.count_subscribers(topic)),
        )
        self.safe_stop_report = report
        text = f"safe stop: {list(self.safe_stop.command)} on {topic}, {report.describe()}"
        if report.acked:
            self.get_logger().info(text)
        else:
            self.get_logger().warning(text + " (a subscriber gone without leaving the graph?)")
        super().before_exit()


def main(argv: list[str] | None = None) -> int:
    return run("actuator_arbiter", ActuatorArbiter, argv)


if __name__ == "__main__":
    raise SystemExit(main())
