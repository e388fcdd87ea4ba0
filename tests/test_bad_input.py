"""Bad input: every process refuses to start with one line naming the parameter or file."""

from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_cli, run_node

pytestmark = pytest.mark.graph


@pytest.mark.parametrize(
    "module,ros_args,words",
    [
        ("rt_rl.nodes.mujoco_sim", ["-p", "task:=Ant-v9"], ["task", "Ant-v9", "Hopper-v5"]),
        ("rt_rl.nodes.mujoco_sim", ["-p", "sensor_rate_hz:=300.0"], ["sensor_rate_hz", "does not divide"]),
        ("rt_rl.nodes.actuator_arbiter", ["-p", "control_rate_hz:=0.0"], ["control_rate_hz", "range"]),
        ("rt_rl.nodes.actuator_arbiter", ["-p", "control_rate_hz:=-5.0"], ["control_rate_hz"]),
        ("rt_rl.nodes.actuator_arbiter", ["-p", "num_workers:=0"], ["num_workers"]),
        ("rt_rl.nodes.actuator_arbiter", ["-p", "fallback:=brake"], ["fallback", "brake", "hold"]),
        ("rt_rl.nodes.actuator_arbiter", ["-p", "command_lower:=[-1.0,-1.0]"], ["command_lower", "3 values"]),
        ("rt_rl.nodes.sensor_ingest", ["-p", "policy_checkpoint:=/nonexistent.pt"], ["/nonexistent.pt"]),
        ("rt_rl.nodes.inference_worker", ["-p", "policy_checkpoint:=/etc/hostname"], ["/etc/hostname"]),
        ("rt_rl.nodes.inference_worker", ["-p", "worker_id:=3", "-p", "num_workers:=2"], ["worker_id"]),
    ],
)
def test_node_refuses_bad_parameter_with_one_line(ros_env, module, ros_args, words):
    proc = run_node(module, ros_args, ros_env)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0]


def test_launcher_refuses_unparsable_params_file(ros_env, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("mujoco_sim:\n  ros__parameters: [unclosed\n")
    proc = run_cli(["launch", str(bad), "--duration", "1", "--run-dir", str(tmp_path / "run")], ros_env)
    assert proc.returncode == 2
    assert "does not parse" in proc.stderr and str(bad) in proc.stderr


def test_launcher_refuses_zero_workers(ros_env, tmp_path):
    proc = run_cli(
        ["launch", "config/bench_100hz.yaml", "--workers", "0", "--run-dir", str(tmp_path)], ros_env
    )
    assert proc.returncode == 2
    assert "--workers: an integer >= 1 or 'auto', got '0'" in proc.stderr


def test_launcher_refuses_an_auto_pool_without_a_sane_max(ros_env, tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text(
        Path("config/bench_100hz.yaml")
        .read_text()
        .replace("num_workers: 1", "num_workers: auto\n    max_workers: 0")
    )
    proc = run_cli(["launch", str(params), "--run-dir", str(tmp_path / "run")], ros_env)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip().splitlines()[-1]
        == "rt-rl launch: error: max_workers must be an integer >= 1, got 0"
    )


def test_launcher_relays_a_node_refusal_and_stops_everything(ros_env, tmp_path):
    params = yaml.safe_load((REPO / "config/bench_100hz.yaml").read_text())
    params["sensor_ingest"]["ros__parameters"]["policy_checkpoint"] = str(tmp_path / "missing.pt")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    proc = run_cli(["launch", str(path), "--duration", "5", "--run-dir", str(tmp_path / "run")], ros_env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "sensor_ingest refused to start" in proc.stderr and "missing.pt" in proc.stderr
    # nothing of this run is left running
    ps = __import__("subprocess").run(["pgrep", "-f", str(tmp_path / "run")], capture_output=True, text=True)
    assert ps.stdout.strip() == ""
