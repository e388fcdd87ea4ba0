"""An outside subscriber: what a normal-priority process on the same machine sees of a topic.

    python -m rt_rl.bench.probe OUT.json [--topic /rt_rl/command]

A plain rclpy node (classic executor, a callback per message, normal scheduling, no rt_rl code on
the receive path), like a user's logger or controller. It stamps every message on arrival (wall and
monotonic clocks) and writes the stamps to OUT.json on SIGINT/SIGTERM. `inter_arrival_ms` turns
them into the statistics the benchmark reports.
"""

from __future__ import annotations

import argparse
import json
import signal
import time

import numpy as np

from rt_rl.core.measurement import percentiles_ms


def inter_arrival_ms(wall: list[float], mono: list[float], start_wall: float, end_wall: float) -> dict:
    """Inter-arrival time statistics of the messages received between two wall times (ms)."""
    keep = [m for w, m in zip(wall, mono, strict=True) if start_wall <= w <= end_wall]
    gaps = np.diff(np.asarray(keep, dtype=float))
    out = percentiles_ms(gaps, ("p50", "p99", "max"))
    out["messages"] = len(keep)
    span = keep[-1] - keep[0] if len(keep) > 1 else 0.0
    out["rate_hz"] = round((len(keep) - 1) / span, 3) if span > 0 else None
    return out


def outside_node(name: str):
    """A plain rclpy node that a SIGINT/SIGTERM asks to stop: (rclpy, node, stop), `stop` non-empty once
    asked. The caller spins and, when stopped, writes its file and calls `close_outside_node`."""
    import rclpy

    rclpy.init(signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
    stop: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(1))
    return rclpy, rclpy.create_node(name), stop


def close_outside_node(rclpy, node) -> None:
    node.destroy_node()
    rclpy.try_shutdown()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rt_rl.bench.probe", description=__doc__.splitlines()[0])
    ap.add_argument("out", help="JSON file written on SIGINT/SIGTERM")
    ap.add_argument("--topic", default="/rt_rl/command", help="command topic to time")
    ap.add_argument("--reliable", action="store_true", help="a reliable subscriber (a controller's QoS)")
    a = ap.parse_args(argv)
    from rclpy.qos import qos_profile_sensor_data
    from std_msgs.msg import Float64MultiArray

    rclpy, node, stop = outside_node("rt_rl_outside_probe")
    wall: list[float] = []
    mono: list[float] = []
    last: list[list[float]] = []  # the newest command's values (a stop must end on the safe one)

    def on_msg(msg) -> None:
        mono.append(time.monotonic())
        wall.append(time.time())
        last[:] = [list(msg.data)]

    # best effort matches any publisher; depth 10 as a typical user's subscriber
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    qos = (
        QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        if a.reliable
        else qos_profile_sensor_data
    )
    node.create_subscription(Float64MultiArray, a.topic, on_msg, qos)
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    while not stop:
        executor.spin_once(timeout_sec=0.1)
    with open(a.out, "w") as f:
        json.dump({"topic": a.topic, "wall": wall, "mono": mono, "last": last[0] if last else None}, f)
    close_outside_node(rclpy, node)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
