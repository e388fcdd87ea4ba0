"""What every rt_rl node shares: declared parameters with ranges, clean start/stop, diagnostics.

Nodes stay thin: they declare parameters, move messages between topics and a pure core, and report.
A bad parameter stops the process before it joins the graph, with one line on stderr naming the
parameter and what is allowed, and exit code 2 (the launcher relays the line).
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import rclpy
import rclpy.executors
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterValueException, ParameterException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rt_rl_interfaces.msg import Schedule as ScheduleMsg

from rt_rl.core.schedule import Schedule

EXIT_CONFIG_ERROR = 2

# Latched topics (schedule): late joiners get the last message.
LATCHED_QOS = QoSProfile(
    depth=1,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
# Streams where only the newest sample matters (observations, commands): no queueing of stale data.
FRESHEST_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
# Sensor input: best effort matches both best-effort and reliable publishers (e.g. joint_state_broadcaster).
SENSOR_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)


def schedule_to_msg(schedule: Schedule) -> ScheduleMsg:
    msg = ScheduleMsg(
        revision=schedule.revision,
        num_workers=schedule.num_workers,
        control_period=schedule.control_period,
        inference_time=schedule.inference_time,
        spacing=schedule.spacing,
        lead=schedule.lead,
        epoch=to_time_msg(schedule.epoch),
    )
    msg.header.stamp = to_time_msg(time.time())
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

    def descriptor(self) -> ParameterDescriptor:
        d = ParameterDescriptor(description=self.description, read_only=True)
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


def set_realtime_priority(node: Node, priority: int) -> None:
    """Put every thread of this process under SCHED_FIFO (as ros2_control's `thread_priority` does).

    The whole process, not just the timing thread: a FIFO thread that waits for the GIL held by a
    normal-priority thread of its own process would inherit that thread's scheduling delays (priority
    inversion). Threads started later inherit the policy. 0 leaves normal scheduling. Needs
    CAP_SYS_NICE or an rtprio limit; without it the node warns and runs at normal priority.
    """
    if priority <= 0:
        return
    try:
        for tid in os.listdir("/proc/self/task"):
            os.sched_setscheduler(int(tid), os.SCHED_FIFO, os.sched_param(priority))
    except (PermissionError, OSError) as err:
        node.get_logger().warning(f"realtime priority {priority} not granted ({err}); normal priority")


REALTIME_PRIORITY = Param(
    "realtime_priority", 0, "SCHED_FIFO priority of the node's threads; 0 = normal scheduling", 0, 99
)


def statistics_rate(default: float) -> Param:
    return Param("statistics_rate_hz", default, "rate of diagnostics on /diagnostics", 0.1, 100.0)


class RtNode(Node):
    """Base for rt_rl nodes: a stop event for worker threads, periodic diagnostics (`status`), and a
    hook run before shutdown."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.stop_event = threading.Event()
        self._diag_pub = None

    def start_reporting(self, rate_hz: float) -> None:
        """Publish `status()` on /diagnostics at `rate_hz`; the first report also tells the launcher
        that the node is ready."""
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(1.0 / rate_hz, self.report)

    def status(self) -> tuple[str, dict[str, Any]]:
        return "running", {}

    def report(self) -> None:
        message, values = self.status()
        self._diag_pub.publish(diagnostic(self, DiagnosticStatus.OK, message, values))

    def on_shutdown(self) -> None:
        """Called once after Ctrl-C/SIGTERM while the node can still publish (final statistics)."""


def run(name: str, node_factory: Callable[[], RtNode], argv: Sequence[str] | None = None) -> int:
    """Start a node, spin until SIGINT/SIGTERM, then stop threads and publish final reports."""
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
        # Not rclpy.experimental.EventsExecutor: with it, a worker sometimes received the latched
        # schedule seconds late (seen here, Kilted wheels), which costs far more than its CPU savings.
        executor = rclpy.executors.SingleThreadedExecutor()
        executor.add_node(node)
        while not stop.is_set() and not node.stop_event.is_set():
            executor.spin_once(timeout_sec=0.1)
    except ConfigError as err:
        print(f"{name}: error: {err}", file=sys.stderr, flush=True)
        code = EXIT_CONFIG_ERROR
    finally:
        if node is not None:
            node.stop_event.set()
            try:
                node.on_shutdown()
                time.sleep(0.1)  # let DDS deliver the final reports
            finally:
                node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code
