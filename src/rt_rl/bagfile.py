"""rosbag2 bags written with `rosbags`, made for long recordings: zstd, split files, crash recovery.

- `BagWriter` is rosbags' rosbag2 `Writer` (version 9) that can compress (MCAP: zstd per chunk inside
  the file, as `ros2 bag`'s MCAP plugin does with a zstd preset; sqlite3: zstd per message), split the
  bag into several storage files by size or duration (`name_0.mcap`, `name_1.mcap`, ... and one
  metadata.yaml listing them, as `ros2 bag record --max-bag-size/--max-bag-duration` does), and
  `flush()` what it holds to the OS (MCAP: the chunk in progress becomes a complete chunk; sqlite3: a
  commit), so a killed writer loses only what came after the last flush.
- `BagSink` is the writer's thread: it writes what the receive path queued, flushes periodically, and
  stops on the first write error (disk full) with a one-line reason.
- `reindex` (`rt-rl bag reindex BAG`) makes a bag a killed or failed recorder left readable: an MCAP
  file without its summary and footer is rewritten with the `mcap` library's writer up to its last
  complete chunk (read with `mcap`'s stream reader, which stops cleanly at the truncated record), and
  metadata.yaml is rebuilt from the files, as `ros2 bag reindex` does on a ROS install.

What a SIGKILLed writer leaves: no metadata.yaml, complete earlier split files, and the file it was
writing (`name.mcap`, not yet numbered) with complete chunks then a truncated one and no footer;
neither rosbags nor `mcap-ros2-support` opens that file until `reindex` has run.
"""

from __future__ import annotations

import argparse
import queue
import re
import sqlite3
import struct
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml
from rosbags.interfaces import Connection, Qos
from rosbags.rosbag2 import CompressionFormat, CompressionMode, Reader, ReaderError, StoragePlugin, Writer
from rosbags.rosbag2.metadata import dump_qos_v9
from rosbags.rosbag2.storage_mcap import McapWriter
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Writer

from rt_rl.typestore import rt_rl_typestore

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
SUFFIXES = {".mcap": "mcap", ".db3": "sqlite3"}
COMPRESSIONS = ("none", "zstd")
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # a zstd frame; a CDR message starts with its encapsulation header


class BagError(Exception):
    """A bag that cannot be reindexed; the message is one line naming it."""


@dataclass(frozen=True)
class SplitLimits:
    """When a storage file is full: 0 = no limit, like `ros2 bag record`'s options."""

    max_bytes: int = 0
    max_duration_ns: int = 0

    def due(self, size: int, first_stamp: int | None, stamp: int) -> bool:
        """Whether the message stamped `stamp` goes into a new file, the current one holding `size`
        bytes since its first message at `first_stamp` (None: it holds none, it is never full)."""
        if first_stamp is None:
            return False
        by_size = self.max_bytes > 0 and size >= self.max_bytes
        by_time = self.max_duration_ns > 0 and stamp - first_stamp >= self.max_duration_ns
        return by_size or by_time


def split_file_name(bag_name: str, index: int, suffix: str) -> str:
    return f"{bag_name}_{index}{suffix}"


def qos_text(profiles: list[Qos]) -> str:
    """Offered QoS as a storage file keeps it (a YAML list, rosbag2 version 9 keys)."""
    return yaml.safe_dump(dump_qos_v9(profiles), default_flow_style=False, sort_keys=False).strip()


def _stamp(ns: int) -> dict[str, int]:
    return {"nanoseconds_since_epoch": ns}


def file_entry(path: str, first: int | None, last: int, count: int) -> dict[str, Any]:
    """One entry of metadata.yaml's `files`; duration = last - first stamp, as rosbags writes it."""
    return {
        "path": path,
        "starting_time": _stamp(first if first is not None else 0),
        "duration": {"nanoseconds": max(0, last - first) if first is not None else 0},
        "message_count": count,
    }


def bag_metadata(
    storage: str, files: list[dict], topics: list[dict], compression: tuple[str, str], distro: str
) -> dict[str, Any]:
    """metadata.yaml (rosbag2 version 9) of a bag made of `files` (`file_entry`s) with `topics`
    (`topics_with_message_count` entries); `compression` is (format, mode), ('', '') for none or
    compression inside the storage (MCAP chunks)."""
    counted = [f for f in files if f["message_count"]]
    start = min((f["starting_time"]["nanoseconds_since_epoch"] for f in counted), default=0)
    end = max(
        (f["starting_time"]["nanoseconds_since_epoch"] + f["duration"]["nanoseconds"] for f in counted),
        default=0,
    )
    return {
        "rosbag2_bagfile_information": {
            "version": 9,
            "storage_identifier": storage,
            "relative_file_paths": [f["path"] for f in files],
            "duration": {"nanoseconds": end - start},
            "starting_time": _stamp(start),
            "message_count": sum(f["message_count"] for f in files),
            "topics_with_message_count": topics,
            "compression_format": compression[0],
            "compression_mode": compression[1],
            "files": files,
            "custom_data": None,
            "ros_distro": distro,
        }
    }


def write_metadata(bag: Path, metadata: dict) -> None:
    tmp = bag / "metadata.yaml.tmp"
    tmp.write_text(yaml.safe_dump(metadata, sort_keys=False))
    tmp.replace(bag / "metadata.yaml")


def topic_entry(conn: Connection, count: int, qos: Any) -> dict[str, Any]:
    return {
        "topic_metadata": {
            "name": conn.topic,
            "type": conn.msgtype,
            "serialization_format": conn.ext.serialization_format,
            "offered_qos_profiles": qos,
            "type_description_hash": conn.digest,
        },
        "message_count": count,
    }


class BagWriter(Writer):
    """rosbags' rosbag2 Writer with compression, split files and flushing (see the module doc).

    The file being written is the storage plugin's `NAME.mcap` (`NAME.db3`); when it is full or the bag
    closes it becomes `NAME_<i>.mcap`. `close()` writes metadata.yaml listing every file with the
    distro given; until then (a killed writer) there is none: `reindex` rebuilds it.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        storage: str = "mcap",
        compression: str = "none",
        limits: SplitLimits = SplitLimits(),
        distro: str = "rosbags",
    ) -> None:
        if storage not in STORAGES or compression not in COMPRESSIONS:
            raise ValueError(f"storage {storage!r} / compression {compression!r}")
        super().__init__(path, version=9, storage_plugin=STORAGES[storage])
        self.storage_name = storage
        if compression == "zstd":
            mode = CompressionMode.STORAGE if storage == "mcap" else CompressionMode.MESSAGE
            self.set_compression(mode, CompressionFormat.ZSTD)
        self.limits = limits
        self.distro = distro
        self.files: list[dict] = []  # finished files, metadata.yaml's `files` entries
        self._qos_text: dict[int, str] = {}
        self._new_file_stats()

    def _new_file_stats(self) -> None:
        self._first: int | None = None
        self._last = 0
        self._count = 0

    def add_connection(self, topic: str, msgtype: str, **kwargs: Any) -> Connection:
        conn = super().add_connection(topic, msgtype, **kwargs)
        self._qos_text[conn.id] = qos_text(conn.ext.offered_qos_profiles)
        return conn

    def file_size(self) -> int:
        """Bytes in the file being written (MCAP: including Python's buffer, not the open chunk)."""
        storage = self.storage
        if isinstance(storage, McapWriter):
            return storage.bio.tell()
        return storage.path.stat().st_size

    def write(self, connection: Connection, timestamp: int, data: bytes | memoryview) -> None:
        limits = self.limits
        size = self.file_size() if limits.max_bytes and self._first is not None else 0  # stat only if needed
        if limits.due(size, self._first, timestamp):
            self.split()
        super().write(connection, timestamp, data)
        self._first = timestamp if self._first is None else min(self._first, timestamp)
        self._last = max(self._last, timestamp)
        self._count += 1

    def flush(self) -> None:
        """Hand everything written so far to the OS (no fsync: this is against a killed process,
        not a power cut). MCAP: the open chunk is closed, complete, and readable after `reindex`."""
        storage = self.storage
        if isinstance(storage, McapWriter):
            if storage.chunk.msgs:
                storage.close_chunk()
            storage.bio.flush()
        elif isinstance(storage, Sqlite3Writer):
            storage.conn.commit()

    def split(self) -> None:
        """Close the file being written and start the next one, with every connection again."""
        self._finish_file()
        self.storage = self.STORAGE_PLUGINS[self.storage_plugin](self.path, self.compression_mode)
        types: set[str] = set()
        for conn in self.connections:
            if conn.msgtype not in types:
                types.add(conn.msgtype)
                self.storage.add_msgtype(conn)
            self.storage.add_connection(conn, self._qos_text[conn.id])

    def _finish_file(self) -> None:
        storage, self.storage = self.storage, None
        assert storage is not None
        name = split_file_name(self.path.name, len(self.files), storage.path.suffix)
        entry = file_entry(name, self._first, self._last, self._count)
        files = [*self.files, entry]
        # each storage file carries the bag's metadata as far as it goes, as rosbag2 does
        storage.close(self.version, yaml.safe_dump(self._metadata(files)["rosbag2_bagfile_information"]))
        storage.path.rename(self.path / name)
        self.files = files
        self._new_file_stats()

    def _metadata(self, files: list[dict]) -> dict:
        topics = [
            topic_entry(c, self.counts[c.id], dump_qos_v9(c.ext.offered_qos_profiles))
            for c in self.connections
        ]
        compression = ("zstd", "message") if self.compression_mode == CompressionMode.MESSAGE else ("", "")
        return bag_metadata(self.storage_name, files, topics, compression, self.distro)

    def close(self) -> None:
        """The last file closed and numbered, then metadata.yaml listing all files."""
        self._finish_file()
        write_metadata(self.path, self._metadata(self.files))

    def abort(self) -> None:
        """Close the file without its index (after a write error): the bag is left as a killed
        writer leaves it."""
        with suppress(OSError, sqlite3.Error):
            super().abort()


WRITE_ERRORS = (OSError, sqlite3.Error)


class BagSink:
    """The writer's thread: what the receive path `put`s is written in order; every `flush_period`
    seconds the writer flushes (0 = never: MCAP chunks then close at 1 MiB). The first write error
    stops it: `error` says why in one line, the writer is aborted (the bag up to the last flush
    stays on disk, readable after `reindex`), and later messages are dropped."""

    def __init__(self, writer: BagWriter, flush_period: float, clock: Callable[[], float] = time.monotonic):
        self.writer = writer
        self.flush_period = flush_period
        self.clock = clock
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.counts: dict[str, int] = {}
        self.error: str | None = None

    def put(self, connection: Connection, stamp: int, raw: bytes) -> None:
        self.queue.put((connection, stamp, raw))

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set and the queue is empty, or until a write fails."""
        last_flush = self.clock()
        while True:
            try:
                item = self.queue.get(timeout=0.1)
            except queue.Empty:
                if stop.is_set():
                    return
                item = None
            try:
                if item is not None:
                    self.writer.write(*item)
                    self.counts[item[0].topic] = self.counts.get(item[0].topic, 0) + 1
                if self.flush_period > 0 and self.clock() - last_flush >= self.flush_period:
                    self.writer.flush()
                    last_flush = self.clock()
            except WRITE_ERRORS as err:  # disk full, file too large, device gone
                path = self.writer.path
                self.error = (
                    f"recording stopped, writing {path} failed: {err}; the bag up to its last "
                    f"chunk is kept: `rt-rl bag reindex {path}` makes it readable"
                )
                self.writer.abort()
                return


# --- recovery ---------------------------------------------------------------------------------------


def open_bag(bag: Path, topics: dict[str, str], error: type[Exception]) -> tuple[Reader, dict[str, list]]:
    """An open rosbag2 Reader of `bag` and its connections per key of `topics` (key -> topic name);
    a bag that does not open raises `error` with one line naming it. The caller closes the reader."""
    try:
        reader = Reader(bag)
        reader.open()
    except Exception as e:  # rosbags raises several kinds for a damaged bag
        raise error(f"{bag}: not a readable rosbag2 bag: {' '.join(str(e).split())}") from None
    conns = {key: [c for c in reader.connections if c.topic == name] for key, name in topics.items()}
    return reader, conns


def bag_typestore(reader: Reader):
    """A typestore for reading `reader`'s messages: rt_rl's types as the bag itself defines them (each
    connection stores the definition it was recorded with), so a bag from an earlier version, before
    a message gained a field, still reads; the installed definitions where the bag stores none."""
    from rosbags.typesys import get_types_from_msg

    recorded = {}
    for conn in reader.connections:
        if conn.msgtype.startswith("rt_rl_interfaces/") and conn.msgdef and conn.msgdef.data:
            types = get_types_from_msg(conn.msgdef.data, conn.msgtype)
            recorded.update({k: v for k, v in types.items() if k.startswith("rt_rl_interfaces/")})
    return rt_rl_typestore(recorded)


def storage_files(bag: Path) -> list[Path]:
    """The bag's storage files in recording order: NAME_0, NAME_1, ..., then any other (the file a
    killed writer was writing, NAME.mcap)."""

    def order(path: Path) -> tuple[int, str]:
        m = re.fullmatch(re.escape(bag.name) + r"_(\d+)", path.stem)
        return (int(m.group(1)) if m else 2**62, path.name)

    return sorted((p for p in bag.iterdir() if p.suffix in SUFFIXES and p.is_file()), key=order)


def _opens(path: Path) -> bool:
    try:
        with Reader(path):
            return True
    except (ReaderError, OSError, ValueError, AssertionError):
        return False


def recover_mcap(path: Path) -> int:
    """Rewrite an MCAP file without summary or footer (a killed writer's) as a complete one: every
    schema, channel and message of its complete chunks, in the same chunk compression; the truncated
    record at its end is dropped. Returns the number of messages kept."""
    from mcap.exceptions import McapError
    from mcap.records import Channel, Chunk, DataEnd, Footer, Message, Schema
    from mcap.stream_reader import StreamReader, breakup_chunk
    from mcap.writer import CompressionType
    from mcap.writer import Writer as McapFileWriter

    tmp = path.with_name(path.name + ".recovering")
    kept = 0
    with path.open("rb") as src, tmp.open("wb") as dst:
        out: McapFileWriter | None = None
        schema_ids: dict[int, int] = {}
        channel_ids: dict[int, int] = {}

        def start(compression: str) -> McapFileWriter:
            kind = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4}.get(
                compression, CompressionType.NONE
            )
            writer = McapFileWriter(dst, compression=kind)
            writer.start(profile="ros2", library=f"rt_rl bag reindex (mcap {version('mcap')})")
            return writer

        try:
            for record in StreamReader(src, emit_chunks=True).records:
                if isinstance(record, (DataEnd, Footer)):
                    break
                if isinstance(record, Chunk):
                    if out is None:
                        out = start(record.compression)
                    inner = breakup_chunk(record)  # a chunk read whole: the truncated one never gets here
                elif isinstance(record, (Schema, Channel, Message)):
                    inner = [record]
                else:
                    continue
                if out is None:
                    out = start("")
                for r in inner:
                    if isinstance(r, Schema) and r.id not in schema_ids:
                        schema_ids[r.id] = out.register_schema(r.name, r.encoding, r.data)
                    elif isinstance(r, Channel) and r.id not in channel_ids:
                        schema = schema_ids.get(r.schema_id, 0)
                        channel_ids[r.id] = out.register_channel(
                            r.topic, r.message_encoding, schema, r.metadata
                        )
                    elif isinstance(r, Message) and r.channel_id in channel_ids:
                        out.add_message(
                            channel_ids[r.channel_id], r.log_time, r.data, r.publish_time, r.sequence
                        )
                        kept += 1
        except (McapError, struct.error, EOFError):  # the file ends inside a record (where the writer
            pass  # was stopped); mcap reports a cut-off length field as struct.error
        (out if out is not None else start("")).finish()
    tmp.replace(path)
    return kept


def _message_compressed(reader: Reader) -> bool:
    for _, _, raw in reader.messages():
        return bytes(raw[:4]) == ZSTD_MAGIC
    return False


def reindex(bag: Path, typestore=None, distro: str | None = None) -> tuple[dict, dict[str, int]]:
    """Rebuild `bag`/metadata.yaml from its storage files, first recovering any MCAP file that does
    not open (see `recover_mcap`). Type hashes come from the files (sqlite3) or `typestore`; the
    distro from the old metadata.yaml, else `distro`, else 'rosbags'.
    Returns the metadata and {recovered file name: messages kept}."""
    if not bag.is_dir():
        raise BagError(f"{bag}: not a directory (a rosbag2 bag is a directory)")
    files = storage_files(bag)
    kinds = {SUFFIXES[p.suffix] for p in files}
    if len(kinds) != 1:
        what = "no .mcap or .db3 file" if not kinds else "both .mcap and .db3 files"
        raise BagError(f"{bag}: {what}: not a rosbag2 bag")
    old_distro = None
    with suppress(OSError, yaml.YAMLError, TypeError, KeyError):
        old_distro = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"][
            "ros_distro"
        ]
    recovered: dict[str, int] = {}
    entries: list[dict] = []
    topics: dict[tuple[str, str], dict] = {}
    compressed = False
    for path in files:
        if path.suffix == ".mcap" and not _opens(path):
            recovered[path.name] = recover_mcap(path)
        try:
            with Reader(path) as reader:
                count = reader.message_count
                first = reader.start_time if count else None
                entries.append(file_entry(path.name, first, reader.end_time - 1, count))
                compressed = compressed or _message_compressed(reader)
                for conn in reader.connections:
                    entry = topics.get((conn.topic, conn.msgtype))
                    if entry is None:
                        digest = conn.digest
                        if not digest and typestore is not None and conn.msgtype in typestore.fielddefs:
                            digest = typestore.hash_rihs01(conn.msgtype)
                        entry = topic_entry(
                            conn._replace(digest=digest), 0, dump_qos_v9(conn.ext.offered_qos_profiles)
                        )
                        topics[(conn.topic, conn.msgtype)] = entry
                    entry["message_count"] += conn.msgcount
        except (ReaderError, OSError, sqlite3.Error) as err:
            raise BagError(f"{path}: not readable: {' '.join(str(err).split())}") from None
    compression = ("zstd", "message") if compressed else ("", "")
    meta = bag_metadata(
        kinds.pop(), entries, list(topics.values()), compression, old_distro or distro or "rosbags"
    )
    write_metadata(bag, meta)
    return meta, recovered


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rt-rl bag", description="Work on recorded rosbag2 bags.")
    sub = ap.add_subparsers(dest="command", required=True)
    re_ap = sub.add_parser(
        "reindex",
        help="make a bag a killed or failed recorder left readable",
        description="Recover each MCAP file without its summary up to its last complete chunk, then "
        "rebuild metadata.yaml from the bag's files (rosbags, mcap-ros2-support and ros2 bag read it).",
    )
    re_ap.add_argument("bag", type=Path, help="bag directory")
    a = ap.parse_args(argv)
    try:
        meta, recovered = reindex(a.bag, typestore=rt_rl_typestore(), distro="kilted")
    except BagError as err:
        print(f"rt-rl bag reindex: error: {err}", file=sys.stderr)
        return 2
    for name, kept in recovered.items():
        print(f"{a.bag / name}: recovered {kept} messages up to its last complete chunk")
    info = meta["rosbag2_bagfile_information"]
    counts = ", ".join(
        f"{t['topic_metadata']['name']} {t['message_count']}" for t in info["topics_with_message_count"]
    )
    print(
        f"{a.bag}: metadata.yaml rebuilt: {len(info['files'])} file(s), {info['message_count']} messages"
        f" ({counts or 'no topics'})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
