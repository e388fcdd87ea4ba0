"""The real graph: separate processes over real DDS, started by the launcher, checked on its summary.

Margins are for a loaded 2-core machine; the tight numbers come from `rt-rl bench graph`.
"""

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, run_cli

pytestmark = pytest.mark.graph


def launch(ros_env, tmp_path, *args):
    summary = tmp_path / "summary.json"
    proc = run_cli(
        [
            "launch",
            "config/bench_100hz.yaml",
            "--summary",
            str(summary),
            "--run-dir",
            str(tmp_path / "run"),
            *args,
        ],
        ros_env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(summary.read_text()), proc


def test_staggered_workers_give_a_fresh_action_every_tick(ros_env, tmp_path):
    from rt_rl.graph import realtime_permitted

    env = {k: v for k, v in ros_env.items() if k != "FASTDDS_BUILTIN_TRANSPORTS"}  # the graph's own profile
    s, proc = launch(env, tmp_path, "--duration", "6", "--workers", "3", "--synthetic-latency", "0.02")
    assert s["dds_profile"] == ("fast_realtime.xml" if realtime_permitted() else "fast_discovery.xml")
    assert "rt_rl summary" in proc.stdout
    assert s["control"]["rate_hz_target"] == 100
    assert s["control"]["rate_hz_achieved"] == pytest.approx(100, rel=0.03)
    assert s["control"]["ticks"] > 400
    assert s["predicted_fresh_action_ratio"] == 1.0  # N * period / T = 3 * 10 / 20
    assert s["fresh_action_ratio"] >= 0.8
    # staggering removes inaction, not delay: actions are about T old when applied
    assert 20 <= s["action_age_ms"]["p50"] <= 50
    assert [w["id"] for w in s["workers"]] == [0, 1, 2]
    assert all(w["actions"] > 50 for w in s["workers"])
    assert all(19 <= w["inference_ms"]["p50"] <= 30 for w in s["workers"])
    assert 0.9 <= s["sim"]["real_time_factor"] <= 1.1
    assert s["sim"]["task"] == "Hopper-v5"
    assert s["schedule"]["num_workers"] == 3 and s["schedule"]["spacing_ms"] == pytest.approx(10.0)


def test_one_slow_worker_misses_ticks_as_predicted(ros_env, tmp_path):
    s, _ = launch(ros_env, tmp_path, "--duration", "6", "--workers", "1", "--synthetic-latency", "0.04")
    assert s["predicted_fresh_action_ratio"] == pytest.approx(0.25, abs=0.03)
    assert s["fresh_action_ratio"] == pytest.approx(s["predicted_fresh_action_ratio"], abs=0.08)
    assert s["fallback_ticks"] > s["control"]["ticks"] * 0.5


def test_ctrl_c_stops_every_child_and_still_writes_the_summary(ros_env, tmp_path):
    run_dir = tmp_path / "run"
    summary = tmp_path / "summary.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rt_rl.cli",
            "launch",
            "config/bench_100hz.yaml",
            "--workers",
            "2",
            "--synthetic-latency",
            "0.01",
            "--summary",
            str(summary),
            "--run-dir",
            str(run_dir),
        ],
        cwd=REPO,
        env=ros_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 180
    for line in proc.stdout:
        if "measuring" in line or time.monotonic() > deadline:
            break
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    s = json.loads(summary.read_text())
    assert s["control"]["ticks"] > 50
    left = subprocess.run(["pgrep", "-f", str(run_dir)], capture_output=True, text=True)
    assert left.stdout.strip() == ""


def test_auto_pool_activates_what_t_needs_and_keeps_warm_spares(ros_env, tmp_path):
    params = tmp_path / "auto.yaml"
    text = (REPO / "config/bench_100hz.yaml").read_text()
    params.write_text(
        text.replace("num_workers: 1", "num_workers: auto\n    max_workers: 7\n    warm_spares: 1")
    )
    summary = tmp_path / "summary.json"
    proc = run_cli(
        ["launch", str(params), "--synthetic-latency", "0.02", "--duration", "6",
         "--summary", str(summary), "--run-dir", str(tmp_path / "run")],
        ros_env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    s = json.loads(summary.read_text())
    pool = s["pool"]
    # T = 20 ms + compute at P = 10 ms: ceil(T/P) + 1 = 4 active, one warm spare kept, two retired
    assert pool["auto"] and pool["wanted"] == 4 and len(pool["active"]) == 4
    assert sorted(e["retire"] for e in pool["events"] if "retire" in e) == [5, 6]
    assert len(pool["alive"]) == 5
    assert s["schedule"]["workers"] == pool["active"]
    assert pool["heartbeats"] > 0  # the spare reports and is never actuated
    assert s["fresh_action_ratio"] >= 0.8
