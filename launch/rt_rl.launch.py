"""ros2 launch rt_rl rt_rl.launch.py [params_file:=FILE] [num_workers:=N] [synthetic_latency:=S]

The same graph as `rt-rl launch`, from the same description (rt_rl.graph): MuJoCo sim, sensor ingest,
N staggered inference workers (respawned if they die) and the actuator arbiter. The params file is
expanded exactly as the project's launcher does it (per-worker sections with their worker_id).
On a robot, drop mujoco_sim with `with_sim:=false` and point the topics at ros2_control.
"""

import os
import tempfile

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from rt_rl.graph import (
    describe_graph,
    expand_params,
    load_params,
    node_environment,
    realtime_permitted,
    uses_realtime,
    wants_recording,
    worker_pool,
    write_params,
)


def _nodes(context):
    params_file = LaunchConfiguration("params_file").perform(context)
    params = load_params(params_file)
    workers_arg = LaunchConfiguration("num_workers").perform(context)
    # `auto` starts max_workers processes; the arbiter activates what T needs, the rest stay warm
    # spares (ros2 launch does not start or retire processes live; `rt-rl launch` does)
    pool = worker_pool(
        params, (workers_arg if workers_arg == "auto" else int(workers_arg)) if workers_arg else None
    )
    n = pool.processes
    latency = LaunchConfiguration("synthetic_latency").perform(context)
    overrides = {"synthetic_latency": float(latency)} if latency else {}
    expanded = write_params(
        expand_params(params, n, overrides, pool.auto),
        os.path.join(tempfile.mkdtemp(prefix="rt_rl_"), "params.yaml"),
    )
    with_sim = LaunchConfiguration("with_sim").perform(context).lower() in ("1", "true", "yes")
    env = node_environment(dict(os.environ), uses_realtime(params) and realtime_permitted())
    actions = []
    for spec in describe_graph(n, wants_recording(params)):
        if spec.name == "mujoco_sim" and not with_sim:
            continue
        actions.append(
            Node(
                package="rt_rl",
                executable=spec.executable,
                name=spec.name,
                parameters=[str(expanded)],
                respawn=spec.respawn,
                respawn_delay=1.0,
                output="screen",
                additional_env=env,
                # a required node's exit ends the launch, like `rt-rl launch`
                on_exit=None if spec.respawn or not spec.required else Shutdown(reason=f"{spec.name} exited"),
            )
        )
    return actions


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory("rt_rl"), "config", "demo.yaml")
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "params_file", default_value=default_params, description="ROS 2 params file"
            ),
            DeclareLaunchArgument("num_workers", default_value="", description="override num_workers"),
            DeclareLaunchArgument(
                "synthetic_latency", default_value="", description="seconds added per inference"
            ),
            DeclareLaunchArgument(
                "with_sim", default_value="true", description="start mujoco_sim (false on a robot)"
            ),
            OpaqueFunction(function=_nodes),
        ]
    )
