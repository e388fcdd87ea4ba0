"""An outside recorder of ticks and inferences, that can change the workers' latency mid-run.

    python -m rt_rl.bench.tick_probe OUT.json [--set-latency-after S --latency L]

A plain rclpy process (normal priority) on `/rt_rl/actuation` (one message per control tick: its
kind and the actuated action's observation stamp) and `/rt_rl/action` (each inference's worker,
start and end). With `--set-latency-after S` it sets `synthetic_latency` to L on every running
`inference_worker_*` S seconds after the first tick inside the arbiter's measurement window (the
parameter services `ros2 param set` uses). Writes everything to OUT.json on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import time

from rt_rl.bench.probe import close_outside_node, outside_node


def stamp(t) -> float:
    return t.sec + t.nanosec * 1e-9


def set_latency(node, latency: float, skip: set[str] = frozenset()) -> list[tuple]:
    """Ask every inference worker in the graph (but those in `skip`) to take `latency`: (name, client,
    future) each; the caller's executor completes the calls."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    request = SetParameters.Request(
        parameters=[Parameter("synthetic_latency", value=latency).to_parameter_msg()]
    )
    calls = []
    for name, ns in node.get_node_names_and_namespaces():
        if name.startswith("inference_worker_") and name not in skip:
            client = node.create_client(SetParameters, f"{ns.rstrip('/')}/{name}/set_parameters")
            calls.append((name, client, client.call_async(request)))
    return calls


def rewrite_latency(path: str, latency: float) -> None:
    """Every worker section of a params file gets `latency` (atomically: a process may read it now)."""
    import os

    import yaml

    with open(path) as f:
        params = yaml.safe_load(f)
    for name, section in params.items():
        if name.startswith("inference_worker_"):
            section["ros__parameters"]["synthetic_latency"] = latency
    with open(path + ".tmp", "w") as f:
        yaml.safe_dump(params, f, sort_keys=False)
    os.replace(path + ".tmp", path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rt_rl.bench.tick_probe", description=__doc__.splitlines()[0])
    ap.add_argument("out", help="JSON file written on SIGINT/SIGTERM")
    ap.add_argument("--set-latency-after", type=float, default=None, help="seconds after the window opens")
    ap.add_argument("--latency", type=float, default=None, help="the new synthetic_latency (s)")
    ap.add_argument("--params-file", help="the launcher's expanded params file: new worker processes read it")
    ap.add_argument(
        "--command-topic", help="also record when each command arrives here (a robot's view of the stream)"
    )
    ap.add_argument(
        "--joint-states-topic", help="also record the joint states' stamps (the robot's update grid)"
    )
    a = ap.parse_args(argv)
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rt_rl_interfaces.msg import Action, Actuation

    rclpy, node, stop = outside_node("rt_rl_tick_probe")
    # [tick stamp, kind, in_window, action_age, worker, observation seq, observation stamp, episode,
    #  command]:
    # the last fields came later, so a reader of the first six sees the same records
    ticks: list[list] = []
    actions: list[
        list
    ] = []  # [worker, inference start, inference end, schedule revision, arrival, obs seq, obs stamp,
    #  inference time, turnaround, slot end]
    changed: dict = {}

    def on_tick(m) -> None:
        ticks.append(
            [
                stamp(m.header.stamp),
                m.kind,
                bool(m.in_window),
                m.action_age,
                m.worker_id,
                m.observation_seq,
                stamp(m.observation_stamp),
                m.episode,
                list(m.command),
            ]
        )

    def on_action(m) -> None:
        actions.append(
            [
                m.worker_id,
                stamp(m.inference_start),
                stamp(m.inference_end),
                m.schedule_revision,
                time.time(),
                m.observation_seq,
                stamp(m.observation_stamp),
                m.inference_time,
                m.turnaround,
                stamp(m.slot_end),
            ]
        )

    commands: list[list] = []  # [arrival wall time, *command]
    samples: list[float] = []  # joint-state stamps

    qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Actuation, "/rt_rl/actuation", on_tick, qos)
    if a.command_topic:
        from std_msgs.msg import Float64MultiArray

        node.create_subscription(
            Float64MultiArray, a.command_topic, lambda m: commands.append([time.time(), *m.data]), qos
        )
    if a.joint_states_topic:
        from sensor_msgs.msg import JointState

        best_effort = QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)
        node.create_subscription(
            JointState, a.joint_states_topic, lambda m: samples.append(stamp(m.header.stamp)), best_effort
        )
    node.create_subscription(Action, "/rt_rl/action", on_action, qos)
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    pending: list[tuple] = []
    next_look = 0.0
    while not stop:
        executor.spin_once(timeout_sec=0.05)
        if a.set_latency_after is not None and not changed:
            opened = next((t[0] for t in ticks if t[2]), None)
            if opened is not None and time.time() >= opened + a.set_latency_after:
                changed["wall"] = time.time()
                changed["latency"] = a.latency
                if a.params_file:  # first, so a worker starting now reads the new latency
                    rewrite_latency(a.params_file, a.latency)
                pending = set_latency(node, a.latency)  # answered while spinning
                next_look = time.time() + 0.5
        if changed and time.time() >= next_look:
            # a worker process started after the change (an auto pool growing) comes up with the
            # params file's latency: the model's latency is the machine's, so it gets the new one too
            next_look = time.time() + 0.5
            pending += set_latency(node, a.latency, {name for name, _, _ in pending})
    changed["workers"] = sorted(name for name, _, _ in pending)
    changed["accepted"] = sorted(n for n, _, f in pending if f.done() and f.result().results[0].successful)
    with open(a.out, "w") as f:
        json.dump(
            {"ticks": ticks, "actions": actions, "changed": changed, "commands": commands, "samples": samples}, f
        )
    close_outside_node(rclpy, node)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
