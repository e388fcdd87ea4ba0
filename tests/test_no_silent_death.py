"""No silent death: a node whose timing thread dies exits non-zero; the launcher respawns a worker."""

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO

pytestmark = pytest.mark.graph

DYING_NODE = """
import sys
from rt_rl.nodes.common import RtNode, run

class Dying(RtNode):
    def __init__(self):
        super().__init__("dying")
        self.start_thread(self.tick, "control")

    def tick(self):
        raise RuntimeError("clock lost")

sys.exit(run("dying", Dying, ["dying"]))
"""


def test_a_node_whose_timing_thread_dies_exits_non_zero_and_says_why(ros_env):
    proc = subprocess.run(
        [sys.executable, "-c", DYING_NODE], env=ros_env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert "dying: error: control thread died: RuntimeError: clock lost" in proc.stderr


def test_launcher_respawns_a_killed_worker_and_the_run_completes(ros_env, tmp_path):
    summary = tmp_path / "summary.json"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "rt_rl.cli", "launch", "config/bench_100hz.yaml", "--workers", "2",
            "--synthetic-latency", "0.015", "--duration", "8", "--summary", str(summary),
            "--run-dir", str(tmp_path / "run"),
        ],
        cwd=REPO, env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if "measuring" in line or time.monotonic() > deadline:
            break
    time.sleep(1.0)
    workers = json.loads((tmp_path / "run" / "timeline.jsonl").read_text().splitlines()[0])["rss_kb"]
    assert "inference_worker_1" in workers
    pid = subprocess.run(["pgrep", "-P", str(proc.pid), "rt_rl_worker_1"], capture_output=True, text=True)
    pid = pid.stdout.split()
    assert pid, "the forked worker is named rt_rl_worker_1 for ps/top"
    subprocess.run(["kill", "-KILL", pid[0]], check=True)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "inference_worker_1 exited (-9); respawn 1/3" in out
    assert json.loads(summary.read_text())["control"]["ticks"] > 500


def test_sigterm_to_the_launcher_stops_forked_workers_too(ros_env, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "rt_rl.cli", "launch", "config/bench_100hz.yaml", "--workers", "2",
         "--synthetic-latency", "0.015", "--run-dir", str(tmp_path / "run")],
        cwd=REPO, env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    for line in proc.stdout:
        if "measuring" in line:
            break
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", str(tmp_path / "run")], capture_output=True, text=True)
    assert left.stdout.strip() == ""
