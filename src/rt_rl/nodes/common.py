"""What every rt_rl node shares: declared parameters with ranges, clean start/stop, diagnostics.

Nodes stay thin: they declare parameters, move messages between topics and a pure core, and report.
A bad parameter stops the process before it joins the graph, with one line on stderr naming the
parameter and what is allowed, and exit code 2 (the launcher relays the line).
"""

from __future__ import annotations

import array
import ctypes
import gc
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
import rclpy.experimental
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.duration import Duration
from rclpy.exceptions import InvalidParameterValueException, ParameterException
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rclpy.type_support import check_is_valid_msg_type
from rt_rl_interfaces.msg import Schedule as ScheduleMsg

from rt_rl.core.auth import KEY_ENV, Authenticator, schedule_fields
from rt_rl.core.grid import Schedule
from rt_rl.graph import LATCHED, TOPICS, QosSpec

EXIT_FAILURE = 1  # a timing or inference thread (or a callback) died: the launcher respawns or stops
EXIT_CONFIG_ERROR = 2


def qos_profile(spec: QosSpec) -> QoSProfile:
    """rclpy QoS of a graph QoS spec (rt_rl.graph declares every topic's QoS once)."""
    return QoSProfile(
        depth=spec.depth,
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.RELIABLE if spec.reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if spec.latched else DurabilityPolicy.VOLATILE,
    )


def topic_param(key: str, role: str) -> Param:
    """The parameter that names topic `key` of the graph, with its default and type."""
    spec = TOPICS[key]
    return Param(spec.param, spec.default, f"{spec.msg_type} {role}: {spec.about}")


def schedule_to_msg(schedule: Schedule, auth: Authenticator | None = None) -> ScheduleMsg:
    """The Schedule message, signed by `auth` (the arbiter's) when given."""
    msg = ScheduleMsg(
        revision=schedule.revision,
        num_workers=schedule.num_workers,
        control_period=schedule.control_period,
        inference_time=schedule.inference_time,
        spacing=schedule.spacing,
        lead=schedule.lead,
        epoch=to_time_msg(schedule.epoch),
        workers=list(schedule.workers),
        sensor_period=schedule.sensor_period,
        sensor_phase=schedule.sensor_phase,
    )
    msg.header.stamp = to_time_msg(time.time())
    if auth is not None:
        msg.auth_tag = auth.sign(schedule_fields(msg))
    return msg


def schedule_from_msg(msg: ScheduleMsg) -> Schedule:
    return Schedule(
        msg.revision,
        msg.num_workers,
        msg.control_period,
        msg.inference_time,
        msg.spacing,
        msg.lead,
        from_time_msg(msg.epoch),
        tuple(int(w) for w in msg.workers),
        msg.sensor_period,
        msg.sensor_phase,
    )


class ConfigError(ValueError):
    """A parameter or file the node cannot start with; the message is the one line the user sees."""


@dataclass(frozen=True)
class Param:
    """One ROS 2 parameter: type from the default, description, optional range or choices."""

    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: Sequence[str] = ()
    live: bool = False  # settable while the node runs (`ros2 param set`); read once otherwise

    def descriptor(self) -> ParameterDescriptor:
        d = ParameterDescriptor(description=self.description, read_only=not self.live)
        if self.choices:
            d.additional_constraints = "one of: " + ", ".join(self.choices)
        if self.low is not None or self.high is not None:
            lo = self.low if self.low is not None else -1e308
            hi = self.high if self.high is not None else 1e308
            if isinstance(self.default, int) and not isinstance(self.default, bool):
                d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(min(hi, 2**62)), step=0)]
            elif isinstance(self.default, float):
                d.floating_point_range = [FloatingPointRange(from_value=lo, to_value=hi, step=0.0)]
            d.additional_constraints = f"range [{self.low}, {self.high}]"
        return d


def declare(node: Node, params: Sequence[Param]) -> dict[str, Any]:
    """Declare all parameters and return their values; any invalid one raises ConfigError."""
    values: dict[str, Any] = {}
    for p in params:
        try:
            value = node.declare_parameter(p.name, p.default, p.descriptor()).value
        except InvalidParameterValueException as err:
            raise ConfigError(
                f"parameter '{p.name}': {_first_line(err)} ({p.descriptor().additional_constraints})"
            ) from None
        except ParameterException as err:  # wrong type and friends
            raise ConfigError(f"parameter '{p.name}': {_first_line(err)}") from None
        if p.choices and value not in p.choices:
            raise ConfigError(f"parameter '{p.name}' is '{value}', allowed: {', '.join(p.choices)}")
        if isinstance(value, (list, tuple)):
            value = list(value)
        values[p.name] = value
    return values


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def to_time_msg(seconds: float) -> Time:
    sec = int(seconds // 1)
    return Time(sec=sec, nanosec=round((seconds - sec) * 1e9) % 1_000_000_000)


def from_time_msg(t: Time) -> float:
    return t.sec + t.nanosec * 1e-9


def process_age() -> float:
    """Seconds since this process started (Linux /proc), for the startup report."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def set_stamp(t: Time, seconds: float) -> None:
    """Fill an existing Time in place (hot paths: no new message object per sample)."""
    sec = int(seconds // 1)
    t.sec = sec
    t.nanosec = int((seconds - sec) * 1e9) % 1_000_000_000


def sleep_until_wall(target: float, stop: threading.Event, chunk: float = 0.05) -> bool:
    """Sleep until wall time `target` (the schedule's clock) in chunks of at most `chunk` seconds, so a
    stop request is seen; False if stopped or if the wait was cut short to re-plan (a long wait)."""
    remaining = target - time.time()
    if remaining > chunk:
        stop.wait(chunk)
        return False
    if remaining > 0:
        time.sleep(remaining)
    return not stop.is_set()


# The last stretch of a precise wait is spun, not slept: a sleep ends 0.05-0.2 ms late here.
SPIN_TAIL = 0.0002


def wait_until_monotonic(deadline: float, stop: threading.Event) -> None:
    """Wait until monotonic time `deadline`: sleep, then spin the last `SPIN_TAIL` seconds, so the
    wait ends on time (an emulated model's inference ends when it should); a stop request ends the
    sleeping part."""
    remaining = deadline - SPIN_TAIL - time.monotonic()
    if remaining > 0 and stop.wait(remaining):
        return
    while time.monotonic() < deadline:
        pass


def float64_array(values: np.ndarray) -> array.array:
    """A float64[] field value without rclpy's per-element checks (it takes array.array('d') as is)."""
    out = array.array("d")
    out.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return out


def float32_array(values: np.ndarray) -> array.array:
    out = array.array("f")
    out.frombytes(np.ascontiguousarray(values, dtype=np.float32).tobytes())
    return out


def diagnostic(node: Node, level: bytes, message: str, values: dict[str, Any]) -> DiagnosticArray:
    """A DiagnosticArray with one status named after the node; `values` also travel as one JSON value
    ('json') so programs (the launcher's summary) need not parse strings back."""
    status = DiagnosticStatus(
        level=level,
        name=f"rt_rl/{node.get_name()}",
        message=message,
        hardware_id=node.get_fully_qualified_name(),
        values=[KeyValue(key=k, value=str(v)) for k, v in values.items()]
        + [KeyValue(key="json", value=json.dumps(values))],
    )
    array = DiagnosticArray(status=[status])
    array.header.stamp = node.get_clock().now().to_msg()
    return array


# PR_SET_TIMERSLACK (linux/prctl.h): how late the kernel may fire a normal thread's timers.
_PR_SET_TIMERSLACK = 29
_TIMER_SLACK_NS = 1_000


def tighten_timer_slack() -> bool:
    """Let the kernel fire the *calling thread's* sleeps no more than 1 us late instead of the default
    50 us (SCHED_FIFO threads have none anyway). Measured here: a 10 ms sleep overshot by 169 us with
    the default and 86 us with this. False where it is not available (not Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_TIMERSLACK, _TIMER_SLACK_NS, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def set_thread_realtime(node: Node, priority: int) -> None:
    """Make the *calling thread* a timekeeper: tight timer slack (`tighten_timer_slack`), and
    SCHED_FIFO at `priority` (0: leave it at normal scheduling).

    Only the threads that keep time get it, and they are kept cheap (a sleep, a take, a publish): a
    FIFO process that needs whole cores starves every normal process on the machine, an outside
    subscriber of the command topic included. Needs CAP_SYS_NICE or an rtprio limit; without it the
    node warns once and runs at normal priority.
    """
    tighten_timer_slack()
    if priority <= 0:
        return
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))  # 0: this thread (Linux)
    except (PermissionError, OSError) as err:
        node.get_logger().warning(f"realtime priority {priority} not granted ({err}); normal priority")


class LatestReader:
    """A DDS reader that is taken from when its data is used, never by an executor callback.

    With KEEP_LAST depth 1 the middleware keeps only the newest sample: taking it at the moment of use
    costs one take per use instead of one Python callback per sample (a 250 Hz sensor read by a worker
    that uses 20 samples a second). With depth k, `take_all` returns the (up to k) samples received
    since the last take, oldest first. The reader is a real subscription (it shows in the graph, QoS
    and discovery as usual); it is just not handed to the executor.
    """

    def __init__(self, node: Node, msg_type: type, topic: str, qos: QoSProfile) -> None:
        self.msg_type = msg_type
        self.topic = topic
        check_is_valid_msg_type(msg_type)  # imports the type support, as create_subscription does
        with node.handle:
            self._handle = _rclpy.Subscription(node.handle, msg_type, topic, qos.get_c_qos_profile(), None)
        self._lock = threading.Lock()
        self._context = node.context
        self._wait_set = None  # made on the first wait_for: one subscription, reused

    def wait_for(self, timeout: float) -> bool:
        """Block (no polling) until a sample is there to take or `timeout` seconds pass; True if one is."""
        with self._lock:
            if self._handle is None:
                return False
            with self._context.handle, self._handle:
                if self._wait_set is None:
                    self._wait_set = _rclpy.WaitSet(1, 0, 0, 0, 0, 0, self._context.handle)
                self._wait_set.clear_entities()
                self._wait_set.add_subscription(self._handle)
                self._wait_set.wait(max(0, int(timeout * 1e9)))
                return bool(self._wait_set.get_ready_entities("subscription"))

    def take(self) -> Any | None:
        """The oldest unread sample, or None."""
        with self._lock:
            if self._handle is None:
                return None
            with self._handle:
                taken = self._handle.take_message(self.msg_type, False)
        return taken[0] if taken else None

    def take_all(self) -> list[Any]:
        out = []
        while (msg := self.take()) is not None:
            out.append(msg)
        return out

    def take_newest(self) -> Any | None:
        msgs = self.take_all()
        return msgs[-1] if msgs else None

    def destroy(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.destroy_when_not_in_use()
                self._handle = None


REALTIME_PRIORITY = Param(
    "realtime_priority",
    0,
    "SCHED_FIFO priority of the node's timing thread only (not the executor); 0 = normal scheduling",
    0,
    99,
)


def statistics_rate(default: float) -> Param:
    return Param("statistics_rate_hz", default, "rate of diagnostics on /diagnostics", 0.1, 100.0)


class CountingPublisher:
    """An rclpy publisher that counts what it publishes (a recorder's bag is checked against it)."""

    __slots__ = ("_pub", "count")

    def __init__(self, pub) -> None:
        self._pub = pub
        self.count = 0

    def publish(self, msg) -> None:
        self._pub.publish(msg)
        self.count += 1

    @property
    def topic_name(self) -> str:
        return self._pub.topic_name

    def get_subscription_count(self) -> int:
        return self._pub.get_subscription_count()

    def wait_for_all_acked(self, timeout: float) -> bool:
        """Until every matched reliable subscriber acknowledged all published samples (True), or at
        most `timeout` seconds (False)."""
        return self._pub.wait_for_all_acked(Duration(seconds=timeout))


class RtNode(Node):
    """Base for rt_rl nodes: a stop event, supervised worker threads, periodic diagnostics (`status`),
    and a hook run before shutdown."""

    # Diagnostics go out fast for the first seconds (the launcher waits for the first one: readiness),
    # then at the node's statistics rate.
    BOOT_REPORT_PERIOD = 0.1
    BOOT_REPORTS = 20

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.stop_event = threading.Event()
        self.diag_level = DiagnosticStatus.OK  # WARN/ERROR while something is wrong (said in the log)
        self.failure: str | None = None
        self._diag_pub = None
        self._readers: list[LatestReader] = []
        self._counted_publishers: list[CountingPublisher] = []  # not _publishers: rclpy's own
        self._threads: list[threading.Thread] = []
        # The run's identity (rt_rl.core.auth): signs what this node publishes, verifies what it reads.
        self.auth = Authenticator.from_env()

    def reader(
        self, key: str, params: dict[str, Any], qos: QosSpec | None = None, topic: str | None = None
    ) -> LatestReader:
        """A LatestReader of graph topic `key` (name from its parameter in `params`, or `topic`) with
        QoS `qos`, by default the newest sample, including one published before this reader joined."""
        spec = TOPICS[key]
        name = topic or params[spec.param]
        r = LatestReader(self, spec.type_class(), name, qos_profile(qos or LATCHED))
        self._readers.append(r)
        return r

    def publisher(
        self, key: str, params: dict[str, Any], topic: str | None = None, qos: QosSpec | None = None
    ) -> CountingPublisher:
        """A publisher of graph topic `key` (or of `topic`, same type) with the topic's declared QoS (or
        `qos`); its count goes into every report as `published` (topic -> messages since start)."""
        spec = TOPICS[key]
        pub = self.create_publisher(
            spec.type_class(), topic or params[spec.param], qos_profile(qos or spec.qos)
        )
        counted = CountingPublisher(pub)
        self._counted_publishers.append(counted)
        return counted

    def start_thread(self, target: Callable[[], None], name: str) -> threading.Thread:
        """Run `target` in a thread whose death stops the node with a non-zero exit code (no silent
        death: the launcher then respawns the node or stops the graph)."""

        def guarded() -> None:
            try:
                target()
            except BaseException as err:  # any death must reach the exit code
                self.failure = f"{name} thread died: {type(err).__name__}: {err}"
                self.get_logger().error(self.failure + "\n" + traceback.format_exc())
                self.stop_event.set()

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def start_reporting(self, rate_hz: float) -> None:
        """Publish `status()` on /diagnostics at `rate_hz`; the first report also tells the launcher
        that the node is ready."""
        spec = TOPICS["diagnostics"]
        self._diag_pub = self.create_publisher(DiagnosticArray, spec.default, qos_profile(spec.qos))
        self.get_logger().info(f"up {process_age():.2f} s after its process started")
        if not self.auth.enabled:  # said once the parameters are accepted: a refusal stays one line
            self.get_logger().warning(
                f"{KEY_ENV} not set: unauthenticated, any process on the domain can drive this node's "
                "inputs (rt-rl launch and the launch file set it)"
            )
        self._boot_left = self.BOOT_REPORTS
        self._boot_timer = self.create_timer(self.BOOT_REPORT_PERIOD, self._boot_report)
        self.create_timer(1.0 / rate_hz, self.report)

    def _boot_report(self) -> None:
        self.report()
        self._boot_left -= 1
        if self._boot_left <= 0:
            self._boot_timer.cancel()

    def status(self) -> tuple[str, dict[str, Any]]:
        return "running", {}

    def report(self) -> None:
        if self._diag_pub is None:  # not reporting (start_reporting not called)
            return
        message, values = self.status()
        values["published"] = {p.topic_name: p.count for p in self._counted_publishers}
        values["auth"] = self.auth.counts()
        self._diag_pub.publish(diagnostic(self, self.diag_level, message, values))

    def before_exit(self) -> None:
        """Called once after Ctrl-C/SIGTERM while the node can still publish: the final statistics
        (and publish counts) after the node's threads have stopped."""
        self.report()

    def join_threads(self, timeout: float = 1.0) -> None:
        for thread in self._threads:
            thread.join(timeout=timeout)

    def destroy_node(self) -> None:
        for r in self._readers:
            r.destroy()
        super().destroy_node()


def run(name: str, node_factory: Callable[[], RtNode], argv: Sequence[str] | None = None) -> int:
    """Start a node, spin until SIGINT/SIGTERM or a thread's death, then stop and publish final reports.

    Exit codes: 0 stopped, 1 a thread or callback died, 2 bad configuration.
    """
    rclpy.init(
        args=list(argv) if argv is not None else sys.argv, signal_handler_options=SignalHandlerOptions.NO
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    node: RtNode | None = None
    code = 0
    try:
        node = node_factory()
        gc.freeze()  # start-up objects leave the collector's view: shorter pauses in timing threads
        # EventsExecutor, driven by spin_once(timeout): its spin() busy-loops in the Kilted wheels.
        # The executor only serves rare work (diagnostics, parameters, the arbiter's planner); the
        # data paths are LatestReaders taken by the timing threads.
        executor = rclpy.experimental.EventsExecutor()
        executor.add_node(node)
        while not stop.is_set() and not node.stop_event.is_set():
            executor.spin_once(timeout_sec=0.1)
    except ConfigError as err:
        print(f"{name}: error: {err}", file=sys.stderr, flush=True)
        code = EXIT_CONFIG_ERROR
    except Exception as err:  # a callback died: say so in one line and exit non-zero
        print(f"{name}: error: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        traceback.print_exc()
        code = EXIT_FAILURE
    finally:
        if node is not None:
            node.stop_event.set()
            try:
                node.join_threads()
                node.before_exit()
                time.sleep(0.1)  # let DDS deliver the final reports
            finally:
                node.destroy_node()
            if node.failure and code == 0:
                print(f"{name}: error: {node.failure}", file=sys.stderr, flush=True)
                code = EXIT_FAILURE
        if rclpy.ok():
            rclpy.shutdown()
    return code
