"""safe_stop_guard: publish the arbiter's safe command once, from outside the arbiter.

When the arbiter ends without its own safe stop (killed, crashed), the robot holds its last command
(a forward_command_controller has no timeout). Whoever supervises the arbiter then publishes the safe
command the arbiter would have: `rt-rl launch` calls `publish_safe_command` in its own process, the
launch file (`ros2 launch`) runs this executable when the arbiter exits with an error:

    safe_stop_guard --params-file EXPANDED_PARAMS.yaml [--returncode N]

The command, its topic and how often it is repeated come from the params file the arbiter was started
with (robot section applied) by the arbiter's own rule (`rt_rl.core.safe_stop.safe_stop_plan`). A
fresh publisher first matches the subscribers the graph knows, then waits for their acknowledgement.
Exit codes: 0 published (acknowledged or not: said in the line printed), 2 bad params file, 1 DDS error.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from typing import Any

from rt_rl.graph import TOPICS, load_params, node_settings

ARBITER = "actuator_arbiter"

DISCOVERY_WAIT = 5.0  # s a fresh guard process waits at most to discover the command's subscribers
DISCOVERY_SETTLE = 1.0  # s the subscriber count must hold before the guard publishes
GUARD_MATCH_TIMEOUT = 1.0  # s for the guard's fresh command publisher to match the known subscribers


def arbiter_settings(params_file: str) -> Mapping[str, Any]:
    """The arbiter's parameters in an (expanded) params file; ValueError if it cannot be read."""
    return node_settings(load_params(params_file), ARBITER)


def publish_safe_command(node, settings: Mapping[str, Any], discover: float = 0.0) -> str:
    """Publish the safe command of an arbiter with `settings` from rclpy `node`; a line saying what was
    published where and whether every subscriber acknowledged it. ValueError: bad settings. `discover`:
    seconds a fresh process waits to learn of the command's subscribers (the robot's controller)."""
    from rclpy.duration import Duration
    from std_msgs.msg import Float64MultiArray

    from rt_rl.core.safe_stop import run_safe_stop, safe_stop_plan
    from rt_rl.nodes.common import qos_profile

    topic = str(settings.get(TOPICS["command"].param, TOPICS["command"].default))
    plan = safe_stop_plan(settings, match_timeout=GUARD_MATCH_TIMEOUT)
    # a fresh process learns of the subscribers by discovery: wait until their count has held for a
    # settle time (the robot's controller and any recorder), or the deadline
    deadline, known, since = time.monotonic() + discover, -1, time.monotonic()
    while time.monotonic() < deadline:
        count = node.count_subscribers(topic)
        if count != known:
            known, since = count, time.monotonic()
        elif count > 0 and time.monotonic() - since >= DISCOVERY_SETTLE:
            break
        time.sleep(0.02)
    pub = node.create_publisher(Float64MultiArray, topic, qos_profile(TOPICS["command"].qos))
    try:
        msg = Float64MultiArray(data=list(plan.command))

        def stop_once():
            return run_safe_stop(
                plan,
                lambda _command: pub.publish(msg),
                lambda timeout: pub.wait_for_all_acked(Duration(seconds=timeout)),
                lambda: (pub.get_subscription_count(), node.count_subscribers(topic)),
            )

        report = stop_once()
        # a subscriber this fresh process discovers late (a missed discovery announcement) gets it too
        late_until, served = time.monotonic() + discover, pub.get_subscription_count()
        while time.monotonic() < late_until:
            if pub.get_subscription_count() > served:
                report, served = stop_once(), pub.get_subscription_count()
            time.sleep(0.05)
    finally:
        node.destroy_publisher(pub)
    return f"safe command {list(plan.command)} on {topic}, {report.describe()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="safe_stop_guard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params-file", required=True, help="the params file the arbiter was started with")
    parser.add_argument("--returncode", default="?", help="the arbiter's exit code (for the message)")
    args, _ros_args = parser.parse_known_args(argv)
    try:
        settings = arbiter_settings(args.params_file)
    except (OSError, ValueError, TypeError) as err:
        print(f"safe_stop_guard: error: no safe command: {err}", file=sys.stderr)
        return 2
    import rclpy

    rclpy.init()
    node = rclpy.create_node("rt_rl_safe_stop_guard")
    try:
        line = publish_safe_command(node, settings, discover=DISCOVERY_WAIT)
    except ValueError as err:
        print(f"safe_stop_guard: error: no safe command: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # DDS gone: say so in one line
        print(f"safe_stop_guard: error: publishing the safe command failed: {err}", file=sys.stderr)
        return 1
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    print(f"safe_stop_guard: {ARBITER} exited ({args.returncode}) without its safe stop: published {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
