"""One description of the graph for both front ends; params file expansion and checks."""

import ast
from pathlib import Path

import pytest
import yaml

from rt_rl.graph import ParamsFileError, describe_graph, expand_params, graph_setting, load_params

REPO = Path(__file__).resolve().parents[1]


def test_graph_order_and_worker_names():
    nodes = describe_graph(3)
    assert [n.name for n in nodes] == [
        "inference_worker_0",
        "inference_worker_1",
        "inference_worker_2",
        "mujoco_sim",
        "sensor_ingest",
        "actuator_arbiter",
    ]
    assert [n.stage for n in nodes] == sorted(n.stage for n in nodes)
    # the arbiter drives the others: it starts last, alone
    assert nodes[-1].stage > max(n.stage for n in nodes[:-1])
    assert describe_graph(1, record=True)[0].name == "bag_recorder"
    assert describe_graph(1, record=True)[0].stage < describe_graph(1)[0].stage
    assert all(n.respawn and not n.required for n in nodes if n.name.startswith("inference_worker"))
    assert all(n.required for n in nodes if not n.name.startswith("inference_worker"))
    # a failing recorder (disk full) stops alone; the control loop goes on
    assert not describe_graph(1, record=True)[0].required


def test_expand_gives_each_worker_its_section_and_one_num_workers():
    params = load_params(REPO / "config/bench_100hz.yaml")
    params["actuator_arbiter"]["ros__parameters"]["num_workers"] = 9  # stray: removed, /** wins
    out = expand_params(params, 2, {"synthetic_latency": 0.03})
    assert "inference_worker" not in out
    assert graph_setting(out, "num_workers", None) == 2
    assert "num_workers" not in out["actuator_arbiter"]["ros__parameters"]
    for i in range(2):
        section = out[f"inference_worker_{i}"]["ros__parameters"]
        assert section["worker_id"] == i and section["synthetic_latency"] == 0.03
        assert section["torch_threads"] == 1


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "config").glob("*.yaml")))
def test_shipped_configs_load(name):
    params = load_params(REPO / "config" / name)
    assert graph_setting(params, "num_workers", 0) >= 1


def test_a_config_runs_at_100_hz_or_faster():
    rates = [
        yaml.safe_load(p.read_text())["actuator_arbiter"]["ros__parameters"]["control_rate_hz"]
        for p in (REPO / "config").glob("*.yaml")
    ]
    assert max(rates) >= 100


@pytest.mark.parametrize(
    "text,match",
    [
        ("a: [1,\n", "does not parse at line"),
        ("- 1\n- 2\n", "must map"),
        ("node: {x: 1}\n", "ros__parameters"),
    ],
)
def test_bad_params_files(tmp_path, text, match):
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(ParamsFileError, match=match):
        load_params(f)
    with pytest.raises(ParamsFileError, match="not found"):
        load_params(tmp_path / "none.yaml")


def test_ros2_launch_file_is_built_from_the_same_description():
    """launch/ and launch_ros are not installable here; check the file compiles and uses rt_rl.graph."""
    tree = ast.parse((REPO / "launch/rt_rl.launch.py").read_text())
    imported = {
        a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module == "rt_rl.graph"
        for a in n.names
    }
    assert {"describe_graph", "expand_params", "load_params"} <= imported
    assert any(
        isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in ast.walk(tree)
    )


def test_every_node_names_its_topics_from_the_one_graph_description():
    import importlib

    from rt_rl.graph import TOPICS

    params_of = {
        spec.module: importlib.import_module(spec.module).PARAMS for spec in describe_graph(1, record=True)
    }
    seen = set()
    for module, params in params_of.items():
        for p in params:
            if p.name.endswith("_topic"):
                key = p.name[: -len("_topic")]
                assert key in TOPICS, (module, p.name)
                assert p.default == TOPICS[key].default, (module, p.name)
                seen.add(key)
    recorder = {p.name for p in params_of["rt_rl.nodes.bag_recorder"]}
    assert {t.param for t in TOPICS.values()} <= recorder  # the recorder records everything declared
    assert seen == set(TOPICS)


def test_uses_realtime_when_some_node_asks_for_a_fifo_priority():
    from rt_rl.graph import uses_realtime

    assert uses_realtime(load_params(str(REPO / "config" / "demo.yaml")))
    assert not uses_realtime({"/**": {"ros__parameters": {"task": "Hopper-v5"}}})
    assert not uses_realtime({"mujoco_sim": {"ros__parameters": {"realtime_priority": 0}}})
    assert uses_realtime({"x": None, "actuator_arbiter": {"ros__parameters": {"realtime_priority": 5}}})


def test_node_environment_picks_the_realtime_dds_profile_only_where_the_user_chose_nothing():
    from rt_rl.graph import DDS_PROFILE, DDS_PROFILE_REALTIME, node_environment

    assert node_environment({}, realtime=True)["FASTDDS_DEFAULT_PROFILES_FILE"] == str(DDS_PROFILE_REALTIME)
    assert node_environment({})["FASTDDS_DEFAULT_PROFILES_FILE"] == str(DDS_PROFILE)
    chosen = node_environment({"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4"}, realtime=True)
    assert chosen["FASTDDS_DEFAULT_PROFILES_FILE"] == str(DDS_PROFILE)
    assert "FASTDDS_DEFAULT_PROFILES_FILE" not in node_environment(
        {"FASTDDS_DEFAULT_PROFILES_FILE": "mine.xml"}, True
    )
    xml = DDS_PROFILE_REALTIME.read_text()
    assert "<scheduling_policy>1</scheduling_policy>" in xml and "<priority>40</priority>" in xml


def test_realtime_permitted_leaves_the_calling_thread_alone():
    import os

    from rt_rl.graph import realtime_permitted

    before = os.sched_getscheduler(0)
    assert realtime_permitted() in (True, False)
    assert os.sched_getscheduler(0) == before
