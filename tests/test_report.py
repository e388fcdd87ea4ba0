"""rt-rl report: one self-contained HTML page from a run's bag; the extraction against hand-computed values.

A tiny synthetic bag (2 s at 100 Hz, 2 staggered workers) is written with rosbags; no ROS graph starts.
"""

import base64
import io
import json
from html.parser import HTMLParser

import conftest
import matplotlib.image
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from rt_rl import cli
from rt_rl.report import main
from rt_rl.report.load import find_summary, recorded_topics
from rt_rl.report.stats import (
    ActionTiming,
    EpisodeEnd,
    action_ages_ms,
    episode_returns,
    inter_arrival_ms,
    middle_window,
    ratio_from_timeline,
    ratio_over_time,
    worker_spans,
)
from rt_rl.typestore import rt_rl_typestore

T0 = 1_795_500_000_000_000_000  # ns, wall clock
MS = 1_000_000
PARAMS_YAML = """\
/**:
  ros__parameters:
    task: Hopper-v5
    num_workers: 2
actuator_arbiter:
  ros__parameters:
    control_rate_hz: 100.0
inference_worker_0:
  ros__parameters:
    synthetic_latency: 0.00517
"""


def write_bag(path, store, topics=("command", "action", "diagnostics", "episode_end")):
    """2 s at 100 Hz: a command every 10 ms, worker k % 2 computes from tick - 7 ms to tick - 2 ms on an
    observation 30 ms old, the arbiter reports every 0.5 s (one tick in ten not fresh after 1 s)."""
    t = store.types

    def stamp(ns):
        return t["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)

    def header(ns):
        return t["std_msgs/msg/Header"](stamp=stamp(ns), frame_id="")

    types = {
        "command": ("/rt_rl/command", "std_msgs/msg/Float64MultiArray"),
        "action": ("/rt_rl/action", "rt_rl_interfaces/msg/Action"),
        "diagnostics": ("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray"),
        "episode_end": ("/rt_rl/episode_end", "rt_rl_interfaces/msg/Reward"),
    }
    messages = []  # (log time, key, message)
    for k in range(1, 201):
        tick = T0 + k * 10 * MS
        messages.append(
            (
                tick + MS // 10,
                "command",
                t["std_msgs/msg/Float64MultiArray"](
                    layout=t["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0), data=np.zeros(3)
                ),
            )
        )
        messages.append(
            (
                tick - 2 * MS + MS // 10,
                "action",
                t["rt_rl_interfaces/msg/Action"](
                    header=header(tick - 2 * MS),
                    observation_stamp=stamp(tick - 30 * MS),
                    input_stamp=stamp(tick - 10 * MS),
                    observation_seq=k,
                    episode=0,
                    worker_id=k % 2,
                    inference_start=stamp(tick - 7 * MS),
                    inference_end=stamp(tick - 2 * MS),
                    inference_time=0.005,
                    turnaround=0.0003,
                    policy_version="test",
                    schedule_revision=1,
                    slot_end=stamp(tick - 2 * MS),
                    data=np.zeros(3),
                    auth_tag=np.zeros(16, dtype=np.uint8),
                ),
            )
        )
    for i in range(5):  # t = 0, 0.5, 1.0, 1.5, 2.0 s: ticks 0, 50, 100, 150, 200
        ticks = 50 * i
        fresh = ticks if i <= 2 else 100 + (ticks - 100) * 9 // 10
        stats = {
            "control": {"ticks": ticks, "period_ms": {"p50": 10.0, "p99": 10.2, "max": 10.5}},
            "fresh_ticks": fresh,
            "fresh_action_ratio": fresh / ticks if ticks else None,
            "predicted_fresh_action_ratio": 1.0,
            "action_age_ms": {"p50": 31.0, "p99": 33.0, "max": 35.0},
        }
        status = t["diagnostic_msgs/msg/DiagnosticStatus"](
            level=0,
            name="rt_rl/actuator_arbiter",
            message="scheduled",
            hardware_id="/actuator_arbiter",
            values=[t["diagnostic_msgs/msg/KeyValue"](key="json", value=json.dumps(stats))],
        )
        ns = T0 + i * 500 * MS + 5 * MS
        messages.append(
            (ns, "diagnostics", t["diagnostic_msgs/msg/DiagnosticArray"](header=header(ns), status=[status]))
        )
    for episode, (step, ret, terminated) in enumerate([(80, 123.4, True), (100, 567.8, False)]):
        ns = T0 + (episode + 1) * 900 * MS
        reward = t["rt_rl_interfaces/msg/Reward"](
            header=header(ns),
            episode=episode,
            step=step,
            reward=1.0,
            terminated=terminated,
            truncated=not terminated,
            episode_return=ret,
            auth_tag=np.zeros(16, dtype=np.uint8),
        )
        messages.append((ns, "episode_end", reward))
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    conns = {key: writer.add_connection(*types[key], typestore=store) for key in topics}
    for ns, key, msg in sorted(messages, key=lambda m: m[0]):
        if key in conns:
            writer.write(conns[key], ns, store.serialize_cdr(msg, types[key][1]))
    writer.close()
    (path / "params.yaml").write_text(PARAMS_YAML)
    return path


@pytest.fixture(scope="module")
def store():
    return rt_rl_typestore()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, store):
    run = tmp_path_factory.mktemp("runs") / "20261124-000000-1"
    run.mkdir()
    write_bag(run / "bag_20261124-000001", store)
    (run / "params.yaml").write_text(PARAMS_YAML)
    return run


class PageParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.urls, self.headings, self.styles = [], [], [], []
        self._in = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for name in ("src", "href", "action", "data", "poster"):
            if name in attrs:
                self.urls.append(attrs[name])
        if tag in ("h1", "h2", "style"):
            self._in = tag

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "style":
            self.styles.append(data)
        elif self._in in ("h1", "h2"):
            self.headings.append(data)


def assert_self_contained(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    assert parser.images
    for src in parser.images:
        assert src.startswith("data:image/png;base64,"), src[:80]
        image = matplotlib.image.imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])), format="png")
        assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    for url in parser.urls:
        assert url.startswith("data:"), url[:80]
    for css in parser.styles:
        assert "url(" not in css and "@import" not in css
    assert "<script" not in page.lower() and "<link" not in page.lower()
    return parser


def test_report_of_a_bag_is_one_self_contained_page(run_dir, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main([str(run_dir / "bag_20261124-000001"), "-o", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    page = out.read_text()
    parser = assert_self_contained(page)
    assert len(parser.images) == 5
    headings = " ".join(parser.headings)
    for title in ("Control period", "Fresh-action ratio", "Action age", "Staggering", "Episode returns"):
        assert title in headings
    assert "Parameters" in headings
    assert "command inter-arrival at the recorder" in page
    assert "at actuation" in page  # the arbiter's action age beside the recorder's
    assert "synthetic_latency" in page and "0.00517" in page
    assert "567.8" in page  # the second episode's return, in the table


def test_report_of_a_run_dir_reads_its_bag_and_finds_the_demo_summary(run_dir, tmp_path):
    summary = {"run_dir": f"runs/{run_dir.name}", "fresh_action_ratio": 0.9123, "control": {}}
    demo = run_dir.parent / "demo"
    demo.mkdir()
    (demo / "summary.json").write_text(json.dumps(summary))
    try:
        out = tmp_path / "r.html"
        assert cli.main(["report", str(run_dir), "-o", str(out)]) == 0
        page = out.read_text()
        assert_self_contained(page)
        assert "0.9123" in page and "Summary" in page
    finally:
        (demo / "summary.json").unlink()
        demo.rmdir()


def test_report_of_a_run_dir_without_bag_uses_the_timeline(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    records = [{"t": 5.0 * i, "fresh_action_ratio": 1.0, "ticks": 500 * i} for i in range(4)]
    (run / "timeline.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "params.yaml").write_text(PARAMS_YAML)
    out = tmp_path / "r.html"
    assert main([str(run), "-o", str(out)]) == 0
    page = out.read_text()
    assert_self_contained(page)
    assert "timeline.jsonl" in page and "no bag" in page.lower()


def assert_one_line_error(capsys, path) -> str:
    return conftest.assert_one_line_error(capsys, path, "rt-rl report")


def test_missing_path_is_one_line_error(tmp_path, capsys):
    missing = tmp_path / "no_such_run"
    assert main([str(missing), "-o", str(tmp_path / "r.html")]) == 2
    assert_one_line_error(capsys, missing)
    assert not (tmp_path / "r.html").exists()


def test_directory_without_bag_or_run_files_is_one_line_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    assert main([str(empty), "-o", str(tmp_path / "r.html")]) == 2
    assert_one_line_error(capsys, empty)


def test_bag_without_commands_is_one_line_error(tmp_path, store, capsys):
    bag = write_bag(tmp_path / "bag_nocmd", store, topics=("action", "diagnostics"))
    assert main([str(bag), "-o", str(tmp_path / "r.html")]) == 2
    assert "/rt_rl/command" in assert_one_line_error(capsys, bag)


def test_ratio_over_time_uses_deltas_over_intervals_of_about_a_second():
    records = [
        (0, {"control": {"ticks": 0}, "fresh_ticks": 0}),
        (500 * MS, {"control": {"ticks": 50}, "fresh_ticks": 50}),  # too short: merged
        (1000 * MS, {"control": {"ticks": 100}, "fresh_ticks": 95}),
        (2000 * MS, {"control": {"ticks": 200}, "fresh_ticks": 195}),
        (3000 * MS, {"control": {"ticks": 10}, "fresh_ticks": 10}),  # a new window: start over
        (4000 * MS, {"control": {"ticks": 110}, "fresh_ticks": 100}),
        (4500 * MS, {"status": "warming up"}),  # no counts: skipped
    ]
    assert ratio_over_time(records) == [
        (0, 1000 * MS, 0.95),
        (1000 * MS, 2000 * MS, 1.0),
        (3000 * MS, 4000 * MS, 0.9),
    ]


def test_ratio_from_timeline_undoes_the_cumulative_ratio():
    records = [
        {"t": 0.0, "fresh_action_ratio": 1.0, "ticks": 6},
        {"t": 5.0, "fresh_action_ratio": 1.0, "ticks": 506},
        {"t": 7.0, "fresh_action_ratio": None, "ticks": None},
        {"t": 10.0, "fresh_action_ratio": 0.99, "ticks": 1006},
    ]
    first, second = ratio_from_timeline(records)
    assert first == (0.0, 5.0, 1.0)
    assert second[:2] == (5.0, 10.0) and second[2] == pytest.approx((0.99 * 1006 - 506) / 500)  # 0.97988


def test_inter_arrival_and_action_ages_in_ms():
    assert inter_arrival_ms([0, 10 * MS, 21 * MS]).tolist() == [10.0, 11.0]
    actions = [ActionTiming(40 * MS, 0, 10 * MS, 0, 0), ActionTiming(55 * MS, 1, 20 * MS, 0, 0)]
    assert action_ages_ms(actions).tolist() == [30.0, 35.0]


def test_middle_window_is_centred_between_first_and_last():
    assert middle_window([0, 3 * MS, 1000 * MS], 0.2) == (400 * MS, 600 * MS)


def test_worker_spans_keeps_spans_overlapping_the_window_per_worker():
    actions = [
        ActionTiming(0, 1, 0, 95 * MS, 102 * MS),  # overlaps the start
        ActionTiming(0, 0, 0, 120 * MS, 125 * MS),
        ActionTiming(0, 0, 0, 105 * MS, 110 * MS),
        ActionTiming(0, 1, 0, 10 * MS, 20 * MS),  # before
        ActionTiming(0, 0, 0, 201 * MS, 205 * MS),  # after
    ]
    assert worker_spans(actions, 100 * MS, 200 * MS) == {
        0: [(105 * MS, 110 * MS), (120 * MS, 125 * MS)],
        1: [(95 * MS, 102 * MS)],
    }


def test_episode_returns_one_per_episode_in_order():
    ends = [
        EpisodeEnd(2, 50, 20.0, True, False),
        EpisodeEnd(1, 80, 10.0, False, True),
        EpisodeEnd(2, 50, 20.0, True, False),  # latched repeat
    ]
    assert [e.episode for e in episode_returns(ends)] == [1, 2]


def test_recorded_topics_follow_the_recorders_params():
    params = {"bag_recorder": {"ros__parameters": {"command_topic": "/robot/commands"}}}
    topics = recorded_topics(params)
    assert topics["command"] == "/robot/commands" and topics["action"] == "/rt_rl/action"


def test_find_summary_takes_runs_demo_only_for_the_same_run(tmp_path):
    run = tmp_path / "runs" / "20261124-000000-1"
    (run / "bag_x").mkdir(parents=True)
    (tmp_path / "runs" / "demo").mkdir()
    demo = tmp_path / "runs" / "demo" / "summary.json"
    demo.write_text(json.dumps({"run_dir": "runs/20261124-999999-2", "bag": "/elsewhere/bag_y"}))
    assert find_summary(run / "bag_x", run) is None
    demo.write_text(json.dumps({"run_dir": "runs/other", "bag": str(run / "bag_x")}))
    assert find_summary(run / "bag_x", run) == demo
    (run / "summary.json").write_text("{}")
    assert find_summary(run / "bag_x", run) == run / "summary.json"


def test_episodes_ended_after_the_last_command_are_not_the_policys():
    ends = [
        EpisodeEnd(1, 1000, 3200.0, False, True, log_ns=10 * MS),
        EpisodeEnd(2, 753, 2411.9, True, False, log_ns=60 * MS),  # fell on the held command after the stop
        EpisodeEnd(3, 18, 30.2, True, False, log_ns=240 * MS),
    ]
    assert [e.episode for e in episode_returns(ends, until_ns=5 * MS)] == []
    assert [e.episode for e in episode_returns(ends, until_ns=55 * MS)] == [1]
    assert [e.episode for e in episode_returns(ends)] == [1, 2, 3]
