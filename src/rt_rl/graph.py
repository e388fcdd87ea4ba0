"""The one description of the rt_rl graph (its topics and its nodes), used by both front ends: `rt-rl launch` (the project's own
supervisor, for machines without ros2 launch) and `launch/rt_rl.launch.py` (ros2 launch).

A parameter file is a normal ROS 2 params file with one section per node. Graph-wide settings live in
the `/**` section (read by every node); the `inference_worker` section applies to every worker, and
`expand_params` writes it out as `inference_worker_0 ... inference_worker_{N-1}` sections (the rcl
parser has no partial-name wildcards), each with its `worker_id`.
"""

from __future__ import annotations

import copy
import importlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rt_rl.discovery import Discovery


@dataclass(frozen=True)
class QosSpec:
    """A QoS profile as plain data (this module needs no rclpy); `rt_rl.nodes.common.qos_profile`
    turns it into an rclpy QoSProfile, the recorder writes it into the bag's metadata."""

    depth: int
    reliable: bool = True
    latched: bool = False  # transient local: a late joiner gets the last `depth` samples

    def with_depth(self, depth: int) -> QosSpec:
        return QosSpec(depth, self.reliable, self.latched)


# Only the newest sample matters (a reader takes it when it needs it): no queue of stale data.
NEWEST = QosSpec(1)
# Sensor input as read: best effort matches both best-effort and reliable publishers.
SENSOR = QosSpec(1, reliable=False)
LATCHED = QosSpec(1, latched=True)


def offered(depth: int) -> QosSpec:
    """What the graph's publishers offer: reliable and transient local with `depth` samples of history
    (about 4 s at the topic's rate). A subscriber matched late, such as a recorder that a publisher
    discovers a second after it started publishing on a busy machine, still receives everything from
    the first sample; a volatile subscriber (every node's reader) matches it as usual and gets none of
    the history. Measured without it: the first 13-234 commands of a run missing from the bag."""
    return QosSpec(depth, latched=True)


@dataclass(frozen=True)
class TopicSpec:
    """One topic of the graph: the parameter that renames it, its default name, its type and the QoS
    its publisher offers (readers that need a queue ask for `qos.with_depth(n)`)."""

    key: str
    default: str
    msg_type: str  # ROS 2 type name, e.g. "std_msgs/msg/Float64MultiArray"
    qos: QosSpec
    about: str

    @property
    def param(self) -> str:
        return f"{self.key}_topic"

    def type_class(self) -> type:
        """The Python message class (imports its package)."""
        package, _, name = self.msg_type.split("/")
        return getattr(importlib.import_module(f"{package}.msg"), name)


TOPICS: dict[str, TopicSpec] = {
    t.key: t
    for t in (
        TopicSpec("joint_states", "/joint_states", "sensor_msgs/msg/JointState", offered(1000),
                  "joint states, what joint_state_broadcaster publishes"),
        TopicSpec("observation", "/rt_rl/observation", "rt_rl_interfaces/msg/Observation", offered(500),
                  "policy observations, one per worker slot (each also on its worker's own topic)"),
        TopicSpec("action", "/rt_rl/action", "rt_rl_interfaces/msg/Action", offered(500),
                  "worker actions with their timing and provenance"),
        TopicSpec("command", "/rt_rl/command", "std_msgs/msg/Float64MultiArray", offered(500),
                  "executed commands, the input of forward command controllers"),
        TopicSpec("actuation", "/rt_rl/actuation", "rt_rl_interfaces/msg/Actuation", offered(500),
                  "every control tick: its kind, the command executed and the action it came from"),
        TopicSpec("reward", "/rt_rl/reward", "rt_rl_interfaces/msg/Reward", offered(1000),
                  "task reward of every simulation step"),
        TopicSpec("episode_end", "/rt_rl/episode_end", "rt_rl_interfaces/msg/Reward", offered(100),
                  "the last step of each episode: the episode boundary"),
        TopicSpec("schedule", "/rt_rl/schedule", "rt_rl_interfaces/msg/Schedule", offered(100),
                  "the staggering schedule"),
        TopicSpec("diagnostics", "/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", QosSpec(10),
                  "every node's statistics"),
    )
}  # fmt: skip


def worker_observation_topic(observation_topic: str, worker_id: int) -> str:
    """The topic that carries only worker `worker_id`'s observations (those built for its slots).

    Every observation goes out on the observation topic (recorders, other tools) and on the topic of
    the worker whose slot it was built for: a worker's DDS reader then wakes for the 1/N of the
    observations it uses, not for all of them (measured: N x 100 deliveries a second at 100 Hz)."""
    return f"{observation_topic.rstrip('/')}/worker_{worker_id}"


GLOBAL = "/**"
WORKER = "inference_worker"
RECORDER = "bag_recorder"


DDS_PROFILE = Path(__file__).resolve().parent / "dds" / "fast_discovery.xml"
DDS_PROFILE_REALTIME = Path(__file__).resolve().parent / "dds" / "fast_realtime.xml"
# the private default (rt_rl.discovery): the same settings with every socket on the loopback interface
DDS_PROFILE_LOCALHOST = Path(__file__).resolve().parent / "dds" / "fast_localhost.xml"
DDS_PROFILE_REALTIME_LOCALHOST = Path(__file__).resolve().parent / "dds" / "fast_realtime_localhost.xml"


def realtime_permitted() -> bool:
    """Whether this process may make a thread SCHED_FIFO (root with CAP_SYS_NICE, or an rtprio limit):
    tried on a short-lived thread, so no thread of the caller changes."""
    granted: list[bool] = []

    def attempt() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))  # 0: this thread (Linux)
            granted.append(True)
        except (PermissionError, OSError, AttributeError):
            granted.append(False)

    t = threading.Thread(target=attempt, name="rt_rl_rt_check")
    t.start()
    t.join()
    return granted[0]


def uses_realtime(params: dict[str, Any]) -> bool:
    """Some node of the (expanded) params file runs its timekeeping thread at SCHED_FIFO."""
    return any(
        isinstance(section, dict)
        and int((section.get("ros__parameters") or {}).get("realtime_priority", 0) or 0) > 0
        for section in params.values()
    )


def node_environment(
    env: dict[str, str], realtime: bool = False, discovery: Discovery | None = None
) -> dict[str, str]:
    """Environment additions for every node, each only where the user has not set it:

    - who can discover the graph, `discovery` (rt_rl.discovery.choose: this host only unless the params
      file says `discovery_range: subnet`; a user's ROS_AUTOMATIC_DISCOVERY_RANGE wins). None: nothing
      decided here, the environment's (for tools that join a running graph);
    - the Fast DDS profile: fast discovery (see the XML), and with `realtime` (the graph's timekeepers
      run at SCHED_FIFO: `uses_realtime` and `realtime_permitted`) shared-memory receive threads at
      SCHED_FIFO 40 too (fast_realtime.xml: below a controller manager); where `discovery` is private,
      the same profiles with every socket on the loopback interface (fast_localhost.xml,
      fast_realtime_localhost.xml);
    - one OpenMP/MKL thread: without it torch's OpenMP runtime starts a thread per core at import that
      spin-waits between the workers' small inferences (measured: 38 % of a core per worker, forked or
      not; `torch.set_num_threads` comes too late to stop it). `torch_threads` still raises it per worker.
    """
    add = dict(discovery.env) if discovery is not None else {}
    if not (env.get("FASTDDS_DEFAULT_PROFILES_FILE") or env.get("FASTRTPS_DEFAULT_PROFILES_FILE")):
        # a user who chose the builtin transports (FASTDDS_BUILTIN_TRANSPORTS) keeps them: the realtime
        # and loopback profiles declare their own (discovery.choose then takes rmw's LOCALHOST)
        realtime = realtime and not env.get("FASTDDS_BUILTIN_TRANSPORTS")
        if discovery is not None and discovery.loopback_only:
            profile = DDS_PROFILE_REALTIME_LOCALHOST if realtime else DDS_PROFILE_LOCALHOST
        else:
            profile = DDS_PROFILE_REALTIME if realtime else DDS_PROFILE
        add["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if not env.get(name):
            add[name] = "1"
    return add


def wants_recording(params: dict[str, Any]) -> bool:
    return RECORDER in params


@dataclass(frozen=True)
class NodeSpec:
    name: str  # ROS node name
    module: str  # python -m entry (own launcher)
    executable: str  # console script (ros2 launch)
    stage: int  # start order: a stage starts when the previous one is ready
    required: bool = True  # its death stops the graph
    respawn: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)  # per-instance overrides
    # modules the own launcher imports once and forks the node from (rt_rl.prefork): startup fast path
    preload: tuple[str, ...] = ()


def describe_graph(num_workers: int, record: bool = False, with_sim: bool = True) -> list[NodeSpec]:
    """Recorder first (nothing is missed); then the workers (they take longest to start: each imports
    torch and loads its policy), the robot (sensors flowing) and the ingest, together; the arbiter,
    which drives them, last. `record` adds the bag recorder (a params file with a `bag_recorder`
    section); `with_sim=False` (robot mode: a params file with a `robot` section) leaves out the
    simulator: the robot is not part of the graph."""
    # A recorder that fails (disk full) stops alone: the control loop goes on.
    recorder = NodeSpec("bag_recorder", "rt_rl.nodes.bag_recorder", "bag_recorder", stage=-1, required=False)
    nodes = [recorder] if record else []
    nodes += [
        NodeSpec(
            f"{WORKER}_{i}",
            "rt_rl.nodes.inference_worker",
            "inference_worker",
            stage=0,
            required=False,
            respawn=True,
            parameters={"worker_id": i},
            preload=("torch", "rt_rl.policy.runtime"),
        )
        for i in range(num_workers)
    ]
    nodes += [SIM_NODE] if with_sim else []
    nodes += [
        NodeSpec("sensor_ingest", "rt_rl.nodes.sensor_ingest", "sensor_ingest", stage=0),
        NodeSpec("actuator_arbiter", "rt_rl.nodes.actuator_arbiter", "actuator_arbiter", stage=1),
    ]
    return nodes


SIM_NODE = NodeSpec("mujoco_sim", "rt_rl.nodes.mujoco_sim", "mujoco_sim", stage=0)


class ParamsFileError(ValueError):
    pass


ROBOT = "robot"
# The robot section: the robot's interface in one place (robot mode), and the node parameters each key
# becomes. Keys a node's own section sets win.
ROBOT_KEYS: dict[str, tuple[str, ...]] = {
    "joint_states_topic": ("sensor_ingest", RECORDER),
    "joint_names": ("sensor_ingest",),
    "reset_jump": ("sensor_ingest",),
    "command_topic": ("actuator_arbiter", "sensor_ingest", RECORDER),
    "command_lower": ("actuator_arbiter",),
    "command_upper": ("actuator_arbiter",),
    "safe_command": ("actuator_arbiter",),
    "sensor_rate_hz": ("actuator_arbiter",),
    "controller_priority": (),  # the robot's control loop's SCHED_FIFO priority: the graph stays below
}
ROBOT_DEFAULTS = {"reset_jump": 0.1}  # Hopper: motion leaves < 0.03 (10 ms samples), < 0.09 (20 ms); every fall of 1166 > 0.1, 20 % under 0.2


CONTROLLER_PRIORITY = 50  # ros2_control's controller manager runs at SCHED_FIFO 50 by default
DDS_RECEIVE_PRIORITY = 40  # fast_realtime.xml's shared-memory receive threads


def priority_notes(params: dict[str, Any]) -> list[str]:
    """One line per graph thread whose SCHED_FIFO priority would preempt (or tie with) the robot's
    control loop: the robot section's `controller_priority`, else a controller manager's default 50.
    The simulator is the robot's stand-in and is left out."""
    robot = ((params.get(ROBOT) or {}).get("ros__parameters") or {}).get("controller_priority")
    limit = int(robot if robot is not None else CONTROLLER_PRIORITY)
    out, realtime = [], False
    for name, section in params.items():
        if name in (ROBOT, GLOBAL, "mujoco_sim") or not isinstance(section, dict):
            continue
        prio = int(node_settings(params, name).get("realtime_priority", 0) or 0)
        realtime = realtime or prio > 0
        if prio >= limit:
            out.append(f"{name} at SCHED_FIFO {prio} would preempt the robot's control loop ({limit})")
    if realtime and limit <= DDS_RECEIVE_PRIORITY:
        out.append(f"DDS receive threads at SCHED_FIFO {DDS_RECEIVE_PRIORITY} would preempt the robot's ({limit})")
    return out


def robot_mode(params: dict[str, Any]) -> bool:
    """A params file with a `robot` section drives a robot: no simulator, the robot's interface from it."""
    return ROBOT in params


def apply_robot_section(params: dict[str, Any]) -> dict[str, Any]:
    """The `robot` section spread over the nodes that use each key (ROBOT_KEYS); unknown keys refused."""
    section = (params.get(ROBOT) or {}).get("ros__parameters") or {}
    unknown = sorted(set(section) - set(ROBOT_KEYS))
    if unknown:
        raise ParamsFileError(
            f"robot section: unknown key '{unknown[0]}' (known: {', '.join(sorted(ROBOT_KEYS))})"
        )
    out = copy.deepcopy(params)
    out.pop(ROBOT, None)
    if not robot_mode(params):
        return out
    values = ROBOT_DEFAULTS | section
    for key, value in values.items():
        for node in ROBOT_KEYS[key]:
            if node == RECORDER and RECORDER not in out:
                continue
            own = out.setdefault(node, {"ros__parameters": {}})["ros__parameters"]
            own.setdefault(key, value)
    rate = float(values.get("sensor_rate_hz") or 0.0)
    if rate > 0:  # a silent sensor: no observation from a sample older than 5 of its periods (50 ms at least)
        ingest = out.setdefault("sensor_ingest", {"ros__parameters": {}})["ros__parameters"]
        ingest.setdefault("max_sample_age", round(max(0.05, 5.0 / rate), 6))
    return out


def load_params(path: str | Path) -> dict[str, Any]:
    """Read and check the shape of a params file; errors are one line naming the file."""
    p = Path(path)
    if not p.is_file():
        raise ParamsFileError(f"params file '{path}' not found")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}" if where else ""
        raise ParamsFileError(
            f"params file '{path}' does not parse{at}: {getattr(err, 'problem', err)}"
        ) from None
    if not isinstance(data, dict):
        raise ParamsFileError(f"params file '{path}' must map node names to 'ros__parameters'")
    for node, section in data.items():
        if not isinstance(section, dict) or not isinstance(section.get("ros__parameters"), dict):
            raise ParamsFileError(f"params file '{path}': section '{node}' needs a 'ros__parameters' mapping")
    return data


def node_settings(params: dict[str, Any], node: str) -> dict[str, Any]:
    """What a node of a params file is given: the `/**` section, overridden by its own (an expanded
    file's `inference_worker_<i>` sections are found by the `inference_worker` prefix)."""
    own = params.get(node) or next(
        (v for k, v in params.items() if node == WORKER and k.startswith(WORKER + "_")), {}
    )
    return dict((params.get(GLOBAL) or {}).get("ros__parameters") or {}) | dict(
        (own or {}).get("ros__parameters") or {}
    )


def graph_setting(params: dict[str, Any], name: str, default: Any) -> Any:
    return params.get(GLOBAL, {}).get("ros__parameters", {}).get(name, default)


@dataclass(frozen=True)
class WorkerPool:
    """How many worker processes a graph starts. `num_workers: N` starts N, all active. `num_workers:
    auto` starts `max_workers`; the arbiter activates the fewest that give a fresh action every tick
    (about ceil(T/P) + 1) and the rest are warm spares, of which the launcher keeps `warm_spares`
    running (retiring the others and starting new ones as T changes)."""

    processes: int
    auto: bool = False
    warm_spares: int = 0


POOL_KEYS = ("max_workers", "warm_spares")  # launcher settings in `/**`, not node parameters


def worker_pool(params: dict[str, Any], override: int | str | None = None) -> WorkerPool:
    """The pool of a params file (or of `--workers`); ParamsFileError (one line) when it makes no sense."""
    value = override if override is not None else graph_setting(params, "num_workers", 1)
    if value == "auto":
        most, spares = graph_setting(params, "max_workers", 8), graph_setting(params, "warm_spares", 2)
        for name, v, low in (("max_workers", most, 1), ("warm_spares", spares, 0)):
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise ParamsFileError(f"{name} must be an integer >= {low}, got {v!r}")
        return WorkerPool(most, auto=True, warm_spares=spares)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ParamsFileError(f"num_workers must be an integer >= 1 or 'auto', got {value!r}")
    return WorkerPool(value)


def expand_params(
    params: dict[str, Any],
    num_workers: int,
    worker_overrides: dict[str, Any] | None = None,
    auto_workers: bool = False,
) -> dict:
    """Per-worker sections from the shared `inference_worker` one; `num_workers` set once, graph-wide
    (for an auto pool: the most workers, and the arbiter's `auto_workers`)."""
    out = apply_robot_section(params)
    out.setdefault(GLOBAL, {"ros__parameters": {}})
    for section in out.values():
        section["ros__parameters"].pop("num_workers", None)
        for key in POOL_KEYS:
            section["ros__parameters"].pop(key, None)
    out[GLOBAL]["ros__parameters"]["num_workers"] = num_workers
    if auto_workers:
        arbiter = out.setdefault("actuator_arbiter", {"ros__parameters": {}})["ros__parameters"]
        arbiter["auto_workers"] = True
    shared = {**out.pop(WORKER, {"ros__parameters": {}})["ros__parameters"], **(worker_overrides or {})}
    for spec in describe_graph(num_workers):
        if spec.name.startswith(WORKER):
            out[spec.name] = {"ros__parameters": {**shared, **spec.parameters}}
    return out


def write_params(params: dict[str, Any], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(yaml.safe_dump(params, sort_keys=False))
    return p
