"""The recorder's bag file features: zstd, split files, SIGKILL recovery (`rt-rl bag reindex`), and a
write failure (disk full) that stops the recorder with one line while the control loop goes on.

The writer tests run without ROS (rosbags writes, rosbags and mcap-ros2-support read); the real
failures are real: a SIGKILLed writer process, a write past RLIMIT_FSIZE (EFBIG, no root needed).
"""

import json
import resource
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from mcap.reader import make_reader
from mcap_ros2.reader import read_ros2_messages
from rosbags.rosbag2 import Reader, ReaderError
from rosbags.typesys import Stores, get_typestore

from rt_rl.bagfile import BagSink, BagWriter, SplitLimits, reindex, storage_files
from rt_rl.bagfile import main as bag_main

STORE = get_typestore(Stores.ROS2_KILTED)
INT64 = "std_msgs/msg/Int64"
T0 = 1_700_000_000_000_000_000


def cdr(i: int) -> bytes:
    return bytes(STORE.serialize_cdr(STORE.types[INT64](data=i), INT64))


def write_bag(path: Path, n: int, period_ns: int, flush_every: int = 100, **options) -> BagWriter:
    """n messages on /seq (data = index), one every period_ns, and every 10th on /tenth; a chunk
    every `flush_every` messages, as the recorder's chunk_period makes them."""
    writer = BagWriter(path, **options)
    writer.open()
    seq = writer.add_connection("/seq", INT64, typestore=STORE)
    tenth = writer.add_connection("/tenth", INT64, typestore=STORE)
    for i in range(n):
        writer.write(seq, T0 + i * period_ns, cdr(i))
        if i % 10 == 0:
            writer.write(tenth, T0 + i * period_ns, cdr(i))
        if i % flush_every == 0:
            writer.flush()
    writer.close()
    return writer


def read_all(bag: Path) -> dict[str, list[int]]:
    """Per topic, the data read by rosbags over the whole bag; also checks mcap-ros2-support, file
    by file in the metadata's order, reads exactly the same."""
    by_rosbags: dict[str, list[int]] = {}
    with Reader(bag) as reader:
        for conn, _, raw in reader.messages():
            by_rosbags.setdefault(conn.topic, []).append(STORE.deserialize_cdr(raw, conn.msgtype).data)
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    if info["storage_identifier"] == "mcap":
        by_mcap: dict[str, list[int]] = {}
        for name in info["relative_file_paths"]:
            for m in read_ros2_messages(str(bag / name)):
                by_mcap.setdefault(m.channel.topic, []).append(m.ros_msg.data)
        assert by_mcap == by_rosbags
    counts = {t["topic_metadata"]["name"]: t["message_count"] for t in info["topics_with_message_count"]}
    assert counts == {topic: len(v) for topic, v in by_rosbags.items()}
    assert info["message_count"] == sum(counts.values()) == sum(f["message_count"] for f in info["files"])
    return by_rosbags


def test_split_limits_start_a_new_file_by_size_or_by_duration():
    assert not SplitLimits().due(10**12, T0, T0 + 10**15)  # 0 = off
    by_size = SplitLimits(max_bytes=1000)
    assert not by_size.due(999, T0, T0) and by_size.due(1000, T0, T0)
    assert not by_size.due(5000, None, T0)  # a file without a message is never full
    by_time = SplitLimits(max_duration_ns=10**9)
    assert not by_time.due(10**9, T0, T0 + 10**9 - 1) and by_time.due(0, T0, T0 + 10**9)


def test_zstd_bag_split_by_duration_reads_back_whole_as_one_bag(tmp_path):
    bag = tmp_path / "bag"
    # 3.5 s of messages, 1 s per file: 4 files
    write_bag(
        bag, 3500, 10**6, compression="zstd", limits=SplitLimits(max_duration_ns=10**9), distro="kilted"
    )
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["relative_file_paths"] == ["bag_0.mcap", "bag_1.mcap", "bag_2.mcap", "bag_3.mcap"]
    assert sorted(p.name for p in bag.iterdir()) == [*info["relative_file_paths"], "metadata.yaml"]
    assert [f["message_count"] for f in info["files"]] == [1100, 1100, 1100, 550]
    assert (
        info["version"] == 9
        and info["ros_distro"] == "kilted"
        and info["duration"]["nanoseconds"] == 3499 * 10**6
    )
    data = read_all(bag)
    assert data["/seq"] == list(range(3500)) and data["/tenth"] == list(range(0, 3500, 10))
    with (bag / "bag_1.mcap").open("rb") as f:  # zstd per chunk, in the file itself
        chunks = make_reader(f).get_summary().chunk_indexes
    assert len(chunks) > 1 and {c.compression for c in chunks} == {"zstd"}
    plain = tmp_path / "plain"
    write_bag(plain, 3500, 10**6)
    assert (bag / "bag_1.mcap").stat().st_size < 0.5 * (plain / "plain_0.mcap").stat().st_size


def test_bag_split_by_size_keeps_each_file_near_the_limit(tmp_path):
    bag = tmp_path / "bag"
    writer = write_bag(bag, 4000, 10**6, flush_every=10, limits=SplitLimits(max_bytes=20_000))
    sizes = [(bag / f["path"]).stat().st_size for f in writer.files]
    assert len(sizes) >= 4
    # a file ends at the first chunk past the limit (chunks here: 10 messages, under 1 kB), then
    # its summary (an index entry per chunk) is appended
    assert all(20_000 <= s < 30_000 for s in sizes[:-1]), sizes
    assert read_all(bag)["/seq"] == list(range(4000))


def test_sqlite3_bag_with_zstd_messages_split_reads_back(tmp_path):
    bag = tmp_path / "bag"
    write_bag(
        bag, 300, 10**7, storage="sqlite3", compression="zstd", limits=SplitLimits(max_duration_ns=10**9)
    )
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["relative_file_paths"] == ["bag_0.db3", "bag_1.db3", "bag_2.db3"]
    assert (info["compression_format"], info["compression_mode"]) == ("zstd", "message")
    assert read_all(bag)["/seq"] == list(range(300))


KILLED_WRITER = """
import sys, time
from pathlib import Path
from rosbags.typesys import Stores, get_typestore
from rt_rl.bagfile import BagWriter, SplitLimits
store = get_typestore(Stores.ROS2_KILTED)
Int64 = store.types["std_msgs/msg/Int64"]
w = BagWriter(Path(sys.argv[1]), compression="zstd", limits=SplitLimits(max_bytes=int(sys.argv[2])))
w.open()
conn = w.add_connection("/seq", "std_msgs/msg/Int64", typestore=store)
i, last = 0, time.monotonic()
while True:  # about 2000 messages per second, a chunk every 50 ms, as the recorder's chunk_period
    w.write(conn, 1_700_000_000_000_000_000 + i * 1_000_000, bytes(store.serialize_cdr(Int64(data=i), "std_msgs/msg/Int64")))
    i += 1
    time.sleep(0.0005)
    if time.monotonic() - last >= 0.05:
        w.flush()
        last = time.monotonic()
        print(i, flush=True)
"""


@pytest.mark.parametrize("max_bytes", [0, 8_000], ids=["one_file", "split"])
def test_sigkilled_writer_bag_reads_up_to_its_last_chunk_after_reindex(tmp_path, max_bytes):
    bag = tmp_path / "bag"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(bag), str(max_bytes)], stdout=subprocess.PIPE, text=True
    )
    flushed = 0
    try:
        for line in proc.stdout:
            flushed = int(line)
            if flushed >= 1500:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert flushed >= 1500, "the writer stopped before it was killed"
    # what a killed writer leaves: no metadata.yaml, the file being written has no footer
    assert not (bag / "metadata.yaml").exists()
    assert (bag / "bag.mcap").is_file()
    with pytest.raises(ReaderError):
        Reader(bag / "bag.mcap").open()
    meta, recovered = reindex(bag, distro="kilted")
    assert list(recovered) == ["bag.mcap"]
    seqs = read_all(bag)["/seq"]
    # everything flushed before the kill, in order, nothing twice; at most what came after is lost
    assert len(seqs) >= flushed and seqs == list(range(len(seqs)))
    files = meta["rosbag2_bagfile_information"]["relative_file_paths"]
    assert files == [p.name for p in storage_files(bag)] and files[-1] == "bag.mcap"
    assert (len(files) > 2) == bool(max_bytes)
    assert reindex(bag)[1] == {}  # a second reindex finds nothing to recover and the same bag
    assert read_all(bag)["/seq"] == seqs


DISK_FULL_WRITER = """
import sys, threading
from pathlib import Path
from rosbags.typesys import Stores, get_typestore
from rt_rl.bagfile import BagSink, BagWriter
store = get_typestore(Stores.ROS2_KILTED)
Int64 = store.types["std_msgs/msg/Int64"]
w = BagWriter(Path(sys.argv[1]))
w.open()
conn = w.add_connection("/seq", "std_msgs/msg/Int64", typestore=store)
sink = BagSink(w, flush_period=0.02)
thread = threading.Thread(target=sink.run, args=(threading.Event(),))
thread.start()
i = 0
while thread.is_alive() and i < 10**6:
    sink.put(conn, 1_700_000_000_000_000_000 + i * 1_000_000, bytes(store.serialize_cdr(Int64(data=i), "std_msgs/msg/Int64")))
    i += 1
    if i % 50 == 0:
        thread.join(0.005)
print(sink.error, file=sys.stderr)
sys.exit(1 if sink.error else 0)
"""
LIMIT = 200_000  # bytes: RLIMIT_FSIZE, a write past it fails with EFBIG (SIGXFSZ is ignored by Python)


def file_size_limit(limit: int):
    """A preexec_fn: files of the process (and its children) cannot grow past `limit` bytes."""

    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    return preexec


def test_write_error_stops_the_sink_with_one_line_and_keeps_the_bag_up_to_its_last_chunk(tmp_path):
    bag = tmp_path / "bag"
    proc = subprocess.run(
        [sys.executable, "-c", DISK_FULL_WRITER, str(bag)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=file_size_limit(LIMIT),
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert "recording stopped" in lines[0] and "File too large" in lines[0]
    assert f"rt-rl bag reindex {bag}" in lines[0]
    assert (bag / "bag.mcap").stat().st_size <= LIMIT
    _, recovered = reindex(bag)
    seqs = read_all(bag)["/seq"]
    assert recovered == {"bag.mcap": len(seqs)} and len(seqs) > 100 and seqs == list(range(len(seqs)))


class FailingWriter(BagWriter):
    def __init__(self, path, fail_after: int) -> None:
        super().__init__(path)
        self.fail_after = fail_after

    def write(self, connection, timestamp, data) -> None:
        if sum(self.counts.values()) >= self.fail_after:
            raise OSError(28, "No space left on device")
        super().write(connection, timestamp, data)


def test_injected_disk_full_drops_later_messages_and_stops_the_writer_thread(tmp_path):
    writer = FailingWriter(tmp_path / "bag", fail_after=305)
    writer.open()
    conn = writer.add_connection("/seq", INT64, typestore=STORE)
    # a clock that counts messages written: a flush (a complete chunk) every 10 messages
    sink = BagSink(writer, flush_period=10, clock=lambda: sum(writer.counts.values()))
    for i in range(1000):
        sink.put(conn, T0 + i, cdr(i))
    stop = threading.Event()
    thread = threading.Thread(target=sink.run, args=(stop,))
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert "No space left on device" in sink.error and "\n" not in sink.error
    assert sink.counts == {"/seq": 305} and writer.storage is None  # aborted: nothing written after
    reindex(tmp_path / "bag")
    assert read_all(tmp_path / "bag")["/seq"] == list(range(300))  # up to the last complete chunk


def test_reindex_of_a_directory_without_storage_files_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert bag_main(["reindex", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no .mcap or .db3 file" in err[0] and str(tmp_path / "empty") in err[0]


# --- the live graph -----------------------------------------------------------------------------------


def launch(ros_env, tmp_path, recorder: dict, duration: str, preexec_fn=None):
    params = yaml.safe_load((REPO / "config/bench_100hz.yaml").read_text())
    params["bag_recorder"] = {"ros__parameters": recorder}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    summary = tmp_path / "summary.json"
    proc = subprocess.run(
        [sys.executable, "-m", "rt_rl.cli", "launch", str(path), "--duration", duration, "--workers", "2",
         "--synthetic-latency", "0.015", "--summary", str(summary), "--run-dir", str(tmp_path / "run")],
        env=ros_env, cwd=REPO, capture_output=True, text=True, timeout=240, preexec_fn=preexec_fn,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(summary.read_text()), proc


@pytest.mark.graph
def test_recording_zstd_split_by_duration_keeps_every_published_message(ros_env, tmp_path):
    from rt_rl.bench.record import check_bag, lossless

    s, _ = launch(ros_env, tmp_path, {"compression": "zstd", "max_bag_duration": 2}, "4")
    bag = Path(s["bag"])
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert len(info["relative_file_paths"]) >= 3  # > 4 s recorded (startup included), 2 s per file
    assert sorted(info["relative_file_paths"]) == sorted(p.name for p in bag.glob("*.mcap"))
    check = check_bag(s, bag)  # published = metadata = rosbags = mcap-ros2-support, no observation seq gap
    assert lossless(check), json.dumps(check)
    assert check["topics"]["/rt_rl/observation"]["rosbags"] > 300


GRAPH_LIMIT = 700_000  # bytes: the bag reaches it about 2 s into the 6 s run (about 250 kB/s)


@pytest.mark.graph
def test_disk_full_stops_the_recorder_with_one_line_and_the_control_loop_goes_on(ros_env, tmp_path):
    # the whole launch under RLIMIT_FSIZE: only the bag grows past it (logs and summary stay small)
    s, proc = launch(ros_env, tmp_path, {"chunk_period": 0.2}, "6", preexec_fn=file_size_limit(GRAPH_LIMIT))
    out = proc.stdout + proc.stderr
    said = [line for line in out.splitlines() if "bag_recorder exited (1)" in line]
    assert len(said) == 1 and "the graph goes on" in said[0], out[-3000:]
    assert "recording stopped" in said[0] and "File too large" in said[0]
    # the recorder's own word on it is one line (Fast DDS also says it cannot make its shared-memory
    # segments under this limit, in every process, and goes on over UDP)
    recorder_log = (tmp_path / "run" / "logs" / "bag_recorder.log").read_text().splitlines()
    own = [line for line in recorder_log if "bag_recorder" in line and "error" in line.lower()]
    assert len(own) == 1 and own[0].startswith("bag_recorder: error: recording stopped"), recorder_log
    assert not [line for line in recorder_log if "Traceback" in line or "[ERROR]" in line]
    # the control loop kept its rate for the whole run, after the recorder stopped
    assert s["exit_code"] == 0
    assert s["control"]["ticks"] >= 0.8 * 100 * s["measured_s"]
    assert s["control"]["rate_hz_achieved"] == pytest.approx(100, rel=0.05)
    assert s["fresh_action_ratio"] >= 0.8
    bag = Path(s["bag"])
    assert not (bag / "metadata.yaml").exists()
    assert bag_main(["reindex", str(bag)]) == 0
    with Reader(bag) as reader:
        stamps = [t for _, t, _ in reader.messages()]
    assert len(stamps) > 100
    end_of_run = s["window_start_wall"] + s["measured_s"]
    assert max(stamps) * 1e-9 < end_of_run - 2.0  # the recorder stopped well before the control loop


def test_an_mcap_file_cut_anywhere_is_recovered_without_error(tmp_path):
    """A killed writer can stop at any byte: every cut gives a readable file holding a prefix."""
    from rt_rl.bagfile import recover_mcap

    src = tmp_path / "whole"
    write_bag(src, 300, 10_000_000, flush_every=50)
    (whole,) = src.glob("*.mcap")
    data = whole.read_bytes()
    kept = []
    for cut in range(8, len(data), max(1, len(data) // 97)):
        part = tmp_path / f"cut_{cut}.mcap"
        part.write_bytes(data[:cut])
        kept.append(recover_mcap(part))
        with part.open("rb") as f:
            assert sum(1 for _ in make_reader(f).iter_messages()) == kept[-1]
    assert kept == sorted(kept) and kept[-1] >= 250  # longer prefixes keep at least as much
