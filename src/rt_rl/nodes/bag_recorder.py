"""bag_recorder: writes what an offline learner needs into a rosbag2 bag (MCAP or sqlite3).

States, observations, actions with their timing, executed commands, rewards with episode boundaries,
the schedule and the diagnostics, each subscribed raw (the exact bytes from the wire, no
re-serialisation) and written with `rosbags` at receive time. The expanded params file of the run is
copied next to the bag. `ros2 bag info/play` and rosbags' Reader read it.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from rt_rl.graph import TOPICS, QosSpec, TopicSpec
from rt_rl.nodes.common import (
    ConfigError,
    Param,
    RtNode,
    declare,
    qos_profile,
    run,
    statistics_rate,
    topic_param,
)


# Everything the graph description names is recorded, each with a reliable queue deep enough for a
# stall of the writer (latched topics keep their durability so the last schedule is in every bag).
def recording_qos(spec: TopicSpec) -> QosSpec:
    return QosSpec(1, latched=True) if spec.qos.latched else QosSpec(100)


PARAMS = (
    Param("output_dir", "bags/rt_rl", "bag directory; must not exist yet (a timestamp is appended)"),
    Param("storage", "mcap", "rosbag2 storage plugin", choices=("mcap", "sqlite3")),
    Param("params_snapshot", "", "params file copied next to the bag ('' = none)"),
    statistics_rate(1.0),
    *(topic_param(key, "recorded ('' = not recorded)") for key in TOPICS),
)


def rt_rl_typestore():
    """ROS 2 Kilted's types plus rt_rl_interfaces, read from the installed .msg files."""
    store = get_typestore(Stores.ROS2_KILTED)
    try:
        share = Path(get_package_share_directory("rt_rl_interfaces")) / "msg"
    except (OSError, LookupError, ValueError):  # a venv install has no AMENT_PREFIX_PATH
        share = Path(sys.prefix) / "share" / "rt_rl_interfaces" / "msg"
    types = {}
    for msg in sorted(share.glob("*.msg")):
        types.update(get_types_from_msg(msg.read_text(), f"rt_rl_interfaces/msg/{msg.stem}"))
    store.register(types)
    return store


class BagRecorder(RtNode):
    def __init__(self) -> None:
        super().__init__("bag_recorder")
        p = declare(self, PARAMS)
        self.path = Path(f"{p['output_dir']}_{time.strftime('%Y%m%d-%H%M%S')}")
        if self.path.exists():
            raise ConfigError(f"parameter 'output_dir': {self.path} exists already")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        store = rt_rl_typestore()
        plugin = StoragePlugin.MCAP if p["storage"] == "mcap" else StoragePlugin.SQLITE3
        self.writer = Writer(self.path, version=9, storage_plugin=plugin)
        self.writer.open()
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}
        for spec in TOPICS.values():
            topic = p[spec.param]
            if not topic:
                continue
            connection = self.writer.add_connection(topic, spec.msg_type, typestore=store)
            self.counts[topic] = 0
            self.create_subscription(
                spec.type_class(),
                topic,
                self._writer_for(topic, connection),
                qos_profile(recording_qos(spec)),
                raw=True,
            )
        if p["params_snapshot"]:
            shutil.copy(p["params_snapshot"], self.path / "params.yaml")
        self.start_reporting(p["statistics_rate_hz"])
        self.get_logger().info(f"recording {len(self.counts)} topics to {self.path}")

    def _writer_for(self, topic: str, connection):
        def write(raw: bytes) -> None:
            with self._lock:
                if self.writer is not None:
                    self.writer.write(connection, time.time_ns(), raw)
                    self.counts[topic] += 1

        return write

    def status(self) -> tuple[str, dict]:
        return "recording", {"path": str(self.path), "messages": dict(self.counts)}

    def on_shutdown(self) -> None:
        with self._lock:
            if self.writer is not None:
                self.writer.close()  # writes metadata.yaml: without it the bag is not a bag
                self.writer = None
        self.get_logger().info(f"bag closed: {self.path} {self.counts}")


def main(argv: list[str] | None = None) -> int:
    return run("bag_recorder", BagRecorder, argv)


if __name__ == "__main__":
    raise SystemExit(main())
