"""`rt-rl reload CHECKPOINT [--workers N]`: a new policy goes live on the running graph, one worker at
a time, without stopping the control loop.

It sets `policy_checkpoint` on /inference_worker_0, /inference_worker_1, ... through each worker's
standard SetParameters service and waits for each answer before asking the next. A worker answers
once the new policy is live in its slots (it shadow-runs it first, see rt_rl.policy.swap), or with
the one line saying why it refused it (its old policy keeps running). At most one worker is ever
between policies, and the first refusal stops the rollout: the remaining workers keep their policy.
One line per worker; exit 0 when every worker took it, 1 otherwise, 2 on a bad argument.

The process joins the graph with the nodes' own DDS settings (rt_rl.graph.node_environment: the
fast-discovery profile) and the caller's ROS_DOMAIN_ID, at a lower CPU priority than the nodes;
without --workers the count is worker 0's `num_workers` parameter.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rt_rl.graph import WORKER, node_environment

NICE = 10


class ReloadError(RuntimeError):
    pass


def checkpoint_value(arg: str) -> str:
    """What the workers are sent: an absolute path for a file here (their working directory may
    differ), else the argument as given ('random', a shipped `checkpoints/...` name, a path on the
    workers' machine)."""
    p = Path(arg)
    return str(p.resolve()) if p.is_file() else arg


def worker_names(count: int) -> list[str]:
    """The workers' node names, as rt_rl.graph.describe_graph names them."""
    return [f"{WORKER}_{i}" for i in range(count)]


def _call(node, srv_type, service: str, request, timeout: float):
    import rclpy

    client = node.create_client(srv_type, service)
    try:
        if not client.wait_for_service(timeout_sec=timeout):
            raise ReloadError(
                f"no {service} service after {timeout:g} s (is the graph running, same ROS_DOMAIN_ID?)"
            )
        future = client.call_async(request)
        rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
        if not future.done():
            raise ReloadError(f"no answer from {service} within {timeout:g} s")
        return future.result()
    finally:
        node.destroy_client(client)


def _num_workers(node, timeout: float) -> int:
    from rcl_interfaces.srv import GetParameters

    name = worker_names(1)[0]
    response = _call(
        node, GetParameters, f"/{name}/get_parameters", GetParameters.Request(names=["num_workers"]), timeout
    )
    if not response.values or response.values[0].type != 2:  # ParameterType.PARAMETER_INTEGER
        raise ReloadError(f"/{name} has no integer 'num_workers' parameter; pass --workers N")
    return int(response.values[0].integer_value)


def _set_checkpoint(node, name: str, value: str, timeout: float) -> tuple[bool, str]:
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    request = SetParameters.Request(
        parameters=[Parameter("policy_checkpoint", value=value).to_parameter_msg()]
    )
    response = _call(node, SetParameters, f"/{name}/set_parameters", request, timeout)
    result = response.results[0]
    return bool(result.successful), result.reason


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="rt-rl reload", description="Put a new policy live on the running workers, one at a time."
    )
    ap.add_argument("checkpoint", help="checkpoint file (or 'random') for the workers' policy_checkpoint")
    ap.add_argument("--workers", type=int, help="number of workers (default: worker 0's num_workers)")
    ap.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        help="seconds to find each worker and for its answer (default 15)",
    )
    a = ap.parse_args(argv)
    if a.workers is not None and a.workers < 1:
        print(f"rt-rl reload: error: --workers must be >= 1, got {a.workers}", file=sys.stderr)
        return 2
    value = checkpoint_value(a.checkpoint)
    # Below the graph's normal-priority threads (the nodes' DDS receive threads among them): this
    # process's start (imports, a DDS participant) takes a core for about a second on a small machine.
    os.nice(NICE)
    os.environ.update(node_environment(dict(os.environ)))  # before the DDS participant exists
    import rclpy

    rclpy.init(args=[])
    node = rclpy.create_node(f"rt_rl_reload_{os.getpid()}", start_parameter_services=False)
    try:
        count = a.workers or _num_workers(node, a.timeout)
        for name in worker_names(count):
            t0 = time.monotonic()
            ok, reason = _set_checkpoint(node, name, value, a.timeout)
            if not ok:
                print(f"{name}: {reason}", flush=True)
                print(
                    f"rt-rl reload: stopped at {name}; the workers after it keep their policy",
                    file=sys.stderr,
                )
                return 1
            print(f"{name}: live {value} ({time.monotonic() - t0:.2f} s)", flush=True)
        return 0
    except ReloadError as err:
        print(f"rt-rl reload: error: {err}", file=sys.stderr)
        return 1
    finally:
        node.destroy_node()
        rclpy.shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
