"""ros2 launch rt_rl rt_rl.launch.py [params_file:=FILE] [num_workers:=N|auto] [synthetic_latency:=S] [with_sim:=false]
                                     [autostart:=false]
                                     [discovery_range:=localhost|subnet] [static_peers:='host;host']

The same graph as `rt-rl launch`, from the same description (rt_rl.graph): MuJoCo sim, sensor ingest,
N staggered inference workers (respawned if they die, up to the launcher's limit) and the actuator
arbiter. The params file is expanded exactly as the project's launcher does it (per-worker sections with
their worker_id) and written, with a bag if the file records one, into this launch's log directory
(ROS_LOG_DIR). On a robot, drop mujoco_sim with `with_sim:=false` and point the topics at ros2_control.
Where it differs from `rt-rl launch`: docs/ros2_launch.md.
"""

import os
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
    Shutdown,
)
from launch.event_handlers import OnProcessExit
from launch.logging import launch_config
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from rt_rl.core.auth import graph_key_env
from rt_rl.discovery import choose as choose_discovery
from rt_rl.discovery import parse_peers, parse_range
from rt_rl.discovery import settings_from_params as discovery_settings
from rt_rl.graph import (
    RECORDER,
    describe_graph,
    expand_params,
    load_params,
    node_environment,
    priority_notes,
    realtime_permitted,
    robot_mode,
    uses_realtime,
    wants_recording,
    worker_pool,
    write_params,
)
from rt_rl.launcher import ARBITER, MAX_RESPAWNS


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
    autostart = LaunchConfiguration("autostart").perform(context).lower()
    run_dir = Path(launch_config.log_dir)  # this launch's own directory under ROS_LOG_DIR
    graph_params = expand_params(params, n, overrides, pool.auto)
    if wants_recording(params):  # the bag beside the logs, as `rt-rl launch` puts it in its run directory
        rec = graph_params[RECORDER]["ros__parameters"]
        rec.setdefault("output_dir", str((run_dir / "bag").resolve()))
        rec.setdefault("params_snapshot", str((run_dir / "params.yaml").resolve()))
    if autostart in ("false", "0", "no"):  # the arbiter waits for `ros2 lifecycle set` configure, activate
        graph_params.setdefault(ARBITER, {}).setdefault("ros__parameters", {})["autostart"] = False
    expanded = write_params(graph_params, run_dir / "params.yaml")
    choice = LaunchConfiguration("with_sim").perform(context).lower()
    # default: as `rt-rl launch`, no simulator for a params file with a robot section (robot mode)
    with_sim = not robot_mode(params) if choice in ("", "auto") else choice in ("1", "true", "yes")
    # who can discover the graph: this host only unless the params file's `/**` or the arguments say
    # discovery_range: subnet (rt_rl.discovery); a ROS_AUTOMATIC_DISCOVERY_RANGE already set wins
    file_range, file_peers = discovery_settings(params)
    arg_range = LaunchConfiguration("discovery_range").perform(context)
    arg_peers = LaunchConfiguration("static_peers").perform(context)
    discovery = choose_discovery(
        dict(os.environ),
        parse_range(arg_range) or file_range,
        parse_peers(arg_peers) or file_peers,
        source="launch argument" if arg_range else "params",
    )
    env = node_environment(dict(os.environ), uses_realtime(graph_params) and realtime_permitted(), discovery)
    env.update(graph_key_env(os.environ))  # a per-launch key for every node (rt_rl.core.auth), never logged
    # graph threads that would preempt a robot's control loop, as `rt-rl launch` names them
    actions = [LogInfo(msg=discovery.note)]
    actions += [LogInfo(msg=f"priorities: {line}") for line in priority_notes(params)]
    for spec in describe_graph(n, wants_recording(params), with_sim):
        guarded = spec.name == ARBITER
        actions.append(
            node := Node(
                package="rt_rl",
                executable=spec.executable,
                name=spec.name,
                parameters=[str(expanded)],
                respawn=spec.respawn,
                respawn_delay=1.0,
                respawn_max_retries=MAX_RESPAWNS if spec.respawn else -1,
                output="screen",
                additional_env=env,
                # a required node's exit ends the launch, like `rt-rl launch`
                on_exit=None
                if spec.respawn or not spec.required or guarded
                else Shutdown(reason=f"{spec.name} exited"),
            )
        )
        if guarded:
            actions.append(
                RegisterEventHandler(OnProcessExit(target_action=node, on_exit=_guard(expanded, env)))
            )
    return actions


def _guard(expanded: Path, env: dict):
    """The arbiter ended: with an error (killed, crashed) it did not publish its safe command, so
    safe_stop_guard does (as `rt-rl launch` does in its own process); then the launch ends."""

    def on_exit(event, context):
        if event.returncode in (0, 2):  # 0: its own safe stop ran (or it was inactive); 2: never started
            return [Shutdown(reason=f"{ARBITER} exited ({event.returncode})")]
        guard = ExecuteProcess(
            cmd=[
                _executable("safe_stop_guard"),
                "--params-file",
                str(expanded),
                "--returncode",
                str(event.returncode),
            ],
            output="screen",
            additional_env=env,  # the graph's discovery profile and key, as the nodes have them
        )
        return [
            guard,
            RegisterEventHandler(
                OnProcessExit(
                    target_action=guard, on_exit=[Shutdown(reason=f"{ARBITER} exited ({event.returncode})")]
                )
            ),
        ]

    return on_exit


def _executable(name: str) -> str:
    """An executable of this package, where colcon installs it (lib/rt_rl)."""
    prefix = Path(get_package_share_directory("rt_rl")).parent.parent
    return str(prefix / "lib" / "rt_rl" / name)


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
                "with_sim",
                default_value="auto",
                description="start mujoco_sim: auto (not for a params file with a robot section), true, false",
            ),
            DeclareLaunchArgument(
                "discovery_range",
                default_value="",
                description="localhost (default: this host only) or subnet (a LAN); overrides the params "
                "file's /** discovery_range; ROS_AUTOMATIC_DISCOVERY_RANGE in the environment wins",
            ),
            DeclareLaunchArgument(
                "autostart",
                default_value="true",
                description="the arbiter configures and activates itself; false: `ros2 lifecycle set "
                "/actuator_arbiter configure` then `activate`",
            ),
            DeclareLaunchArgument(
                "static_peers", default_value="", description="hosts to reach beyond discovery: 'a;b'"
            ),
            OpaqueFunction(function=_nodes),
        ]
    )
