"""The bag recorder writes a rosbag2 bag that rosbags reads back, with timing fields intact."""

import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_cli
from rosbags.rosbag2 import Reader

from rt_rl.typestore import rt_rl_typestore

pytestmark = pytest.mark.graph


def test_demo_run_records_a_readable_bag(ros_env, tmp_path):
    params = yaml.safe_load((REPO / "config/bench_100hz.yaml").read_text())
    params["bag_recorder"] = {"ros__parameters": {"storage": "mcap"}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    summary = tmp_path / "summary.json"
    proc = run_cli(
        [
            "launch",
            str(path),
            "--duration",
            "4",
            "--workers",
            "2",
            "--synthetic-latency",
            "0.015",
            "--summary",
            str(summary),
            "--run-dir",
            str(tmp_path / "run"),
        ],
        ros_env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    bag = json.loads(summary.read_text())["bag"]
    assert bag and (tmp_path / "run").resolve() in Path(bag).resolve().parents
    store = rt_rl_typestore()
    counts, actions = {}, []
    with Reader(bag) as reader:
        for conn, _, raw in reader.messages():
            counts[conn.topic] = counts.get(conn.topic, 0) + 1
            if conn.topic == "/rt_rl/action":
                actions.append(store.deserialize_cdr(raw, conn.msgtype))
    for topic in (
        "/joint_states",
        "/rt_rl/observation",
        "/rt_rl/action",
        "/rt_rl/command",
        "/rt_rl/reward",
        "/rt_rl/schedule",
    ):
        assert counts.get(topic, 0) > 0, (topic, counts)
    assert counts["/joint_states"] > 4 * 250 * 0.8  # 250 Hz sensor for >= 4 s
    a = actions[-1]
    assert len(a.data) == 3 and a.worker_id in (0, 1) and a.schedule_revision >= 1
    durations = [
        (a.inference_end.sec - a.inference_start.sec)
        + (a.inference_end.nanosec - a.inference_start.nanosec) * 1e-9
        for a in actions
    ]
    # every action ran its synthetic latency, the ones in flight at Ctrl-C too (none is sent cut short)
    assert min(durations) >= 0.015 and durations[-1] < 0.05
    assert (tmp_path / "run").joinpath("params.yaml").is_file()
    assert (Path(bag) / "params.yaml").is_file()


def test_record_flag_records_every_graph_topic_without_losing_an_observation(ros_env, tmp_path):
    from rt_rl.graph import TOPICS

    summary = tmp_path / "summary.json"
    proc = run_cli(
        ["launch", "config/bench_100hz.yaml", "--duration", "4", "--workers", "2", "--synthetic-latency",
         "0.015", "--summary", str(summary), "--run-dir", str(tmp_path / "run"), "--record", str(tmp_path / "rec")],
        ros_env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    bag = Path(json.loads(summary.read_text())["bag"])
    assert (tmp_path / "rec").resolve() in bag.resolve().parents
    store = rt_rl_typestore()
    with Reader(bag) as reader:
        recorded = {c.topic: c.msgtype for c in reader.connections}
        obs = [c for c in reader.connections if c.topic == "/rt_rl/observation"]
        seqs = [store.deserialize_cdr(raw, c.msgtype).seq for c, _, raw in reader.messages(connections=obs)]
    assert recorded == {t.default: t.msg_type for t in TOPICS.values()}
    assert len(seqs) > 100 and seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap
    # what `ros2 bag play` needs to recreate the publishers: the distro and each topic's offered QoS
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["ros_distro"] == "kilted"
    qos = {
        t["topic_metadata"]["name"]: t["topic_metadata"]["offered_qos_profiles"]
        for t in info["topics_with_message_count"]
    }
    assert all(qos.values()), qos
    assert qos["/rt_rl/schedule"][0]["durability"] == "transient_local"
    assert qos["/rt_rl/command"][0]["reliability"] == "reliable"


def test_record_into_an_unwritable_place_is_refused_with_one_line(ros_env, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = run_cli(["launch", "config/bench_100hz.yaml", "--duration", "2", "--record", str(blocker / "bags"),
                    "--run-dir", str(tmp_path / "run")], ros_env)  # fmt: skip
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--record" in lines[0] and str(blocker) in lines[0]
