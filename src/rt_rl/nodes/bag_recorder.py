"""bag_recorder: writes what an offline learner needs into a rosbag2 bag (MCAP or sqlite3).

Records every topic the graph description (`rt_rl.graph.TOPICS`) names, each through a reliable
subscription with a queue deep enough for a stall, raw (the exact bytes from the wire). The bag's
metadata.yaml carries the ROS distro and each topic's offered QoS (the publishers' QoS as the graph
description declares it), so `ros2 bag play` recreates the publishers faithfully. Messages are
written with `rosbags` by a writer thread (`rt_rl.bagfile`), stamped with their receive time; the
expanded params file of the run is copied next to the bag. `ros2 bag info/play`, rosbags' Reader and
`mcap-ros2-support` read it.

Optional zstd (MCAP: per chunk inside the file), split files by size or duration, a complete chunk
every `chunk_period` seconds: after a SIGKILL (or a disk full) `rt-rl bag reindex BAG` makes the bag
readable up to its last chunk.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import WriterError

from rt_rl.bagfile import COMPRESSIONS, WRITE_ERRORS, BagSink, BagWriter, SplitLimits
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
from rt_rl.typestore import rt_rl_typestore


# Everything the graph description names is recorded, each with a reliable queue deep enough for a
# stall of the writer, transient local where the publishers offer it: a publisher this recorder is
# matched with late (discovery on a busy machine) hands over its history from the first sample.
def recording_qos(spec: TopicSpec) -> QosSpec:
    return QosSpec(max(100, spec.qos.depth), latched=spec.qos.latched)


PARAMS = (
    Param("output_dir", "bags/rt_rl", "bag directory; must not exist yet (a timestamp is appended)"),
    Param("storage", "mcap", "rosbag2 storage plugin", choices=("mcap", "sqlite3")),
    Param(
        "compression",
        "none",
        "zstd: MCAP chunks compressed inside the file (readers decompress them as they read); "
        "sqlite3: each message (compression_mode message)",
        choices=COMPRESSIONS,
    ),
    Param(
        "max_bag_size",
        0,
        "bytes per storage file, then the next file starts (0 = no split by size); a file ends at the "
        "first chunk past it",
        0,
    ),
    Param(
        "max_bag_duration", 0, "seconds per storage file, then the next file starts (0 = no split by time)", 0
    ),
    Param(
        "chunk_period",
        1.0,
        "seconds between complete MCAP chunks written to the file (sqlite3: commits): a killed recorder "
        "loses at most about this much (0 = chunks only every 1 MiB)",
        0.0,
        60.0,
    ),
    Param("params_snapshot", "", "params file copied next to the bag ('' = none)"),
    statistics_rate(1.0),
    *(topic_param(key, "recorded ('' = not recorded)") for key in TOPICS),
)


def offered_qos(spec: QosSpec) -> Qos:
    """The QoS the graph declares for a topic's publishers, in the bag metadata's form."""
    never = QosTime(0x7FFFFFFF, 0xFFFFFFFF)  # rmw's "infinite" duration
    return Qos(
        QosHistory.KEEP_LAST,
        spec.depth,
        QosReliability.RELIABLE if spec.reliable else QosReliability.BEST_EFFORT,
        QosDurability.TRANSIENT_LOCAL if spec.latched else QosDurability.VOLATILE,
        never,
        never,
        QosLiveliness.AUTOMATIC,
        never,
        False,
    )


class BagRecorder(RtNode):
    """Subscriptions hand the raw bytes to a queue; one writer thread writes them (the receive path
    never waits for the disk). A write failure (disk full) stops recording with one line (exit code
    1, the bag kept up to its last chunk); the graph's control loop is not touched (the recorder is
    not a required node: the launcher says it exited and goes on)."""

    def __init__(self) -> None:
        super().__init__("bag_recorder")
        p = declare(self, PARAMS)
        self.path = Path(f"{p['output_dir']}_{time.strftime('%Y%m%d-%H%M%S')}")
        if self.path.exists():
            raise ConfigError(f"parameter 'output_dir': {self.path} exists already")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not os.access(self.path.parent, os.W_OK):
                raise PermissionError(f"{self.path.parent} is not writable")
            store = rt_rl_typestore()
            self.writer = BagWriter(
                self.path,
                storage=p["storage"],
                compression=p["compression"],
                limits=SplitLimits(p["max_bag_size"], int(p["max_bag_duration"] * 1e9)),
                distro=os.environ.get("ROS_DISTRO", "kilted"),  # the ROS 2 wheels this venv runs are Kilted
            )
            self.writer.open()
        except (OSError, WriterError) as err:
            raise ConfigError(f"parameter 'output_dir': cannot write a bag at {self.path}: {err}") from None
        self.sink = BagSink(self.writer, p["chunk_period"])
        self.counts = self.sink.counts
        for spec in TOPICS.values():
            topic = p[spec.param]
            if not topic:
                continue
            connection = self.writer.add_connection(
                topic, spec.msg_type, typestore=store, offered_qos_profiles=[offered_qos(spec.qos)]
            )
            self.counts[topic] = 0
            self.create_subscription(
                spec.type_class(),
                topic,
                self._receiver_for(connection),
                qos_profile(recording_qos(spec)),
                raw=True,
            )
        if p["params_snapshot"]:
            shutil.copy(p["params_snapshot"], self.path / "params.yaml")
        self.start_reporting(p["statistics_rate_hz"])
        self._writer_thread = self.start_thread(self._write, "writer")
        self.get_logger().info(f"recording {len(self.counts)} topics to {self.path}")

    def _receiver_for(self, connection):
        put = self.sink.put

        def receive(raw: bytes) -> None:
            put(connection, time.time_ns(), raw)  # log time = receive time

        return receive

    def _write(self) -> None:
        """Until stopped and everything received is written; a write failure (disk full) stops the
        node with that one line as its reason (exit code 1)."""
        self.sink.run(self.stop_event)
        if self.sink.error:
            self.failure = self.sink.error
            self.stop_event.set()

    def status(self) -> tuple[str, dict]:
        return "recording", {
            "path": str(self.path),
            "messages": dict(self.counts),
            "queued": self.sink.queue.qsize(),
            "files": len(self.writer.files) + 1,
        }

    def before_exit(self) -> None:
        self._writer_thread.join(timeout=10.0)  # everything received so far is written first
        if self.sink.error:
            return  # the failure is the node's one line; the bag stays as it was left
        if self._writer_thread.is_alive():
            self.failure = f"bag not finalised: still writing after 10 s; `rt-rl bag reindex {self.path}`"
            return
        try:
            self.writer.close()  # writes metadata.yaml: without it the bag is not a bag
        except WRITE_ERRORS as err:
            self.writer.abort()
            self.failure = f"bag not finalised: {err}; `rt-rl bag reindex {self.path}` makes it readable"
            return
        self.get_logger().info(f"bag closed: {self.path} ({len(self.writer.files)} files) {self.counts}")


def main(argv: list[str] | None = None) -> int:
    return run("bag_recorder", BagRecorder, argv)


if __name__ == "__main__":
    raise SystemExit(main())
