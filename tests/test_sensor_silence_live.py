"""A silent sensor on the live graph: the simulator (the robot's stand-in) frozen with SIGSTOP for 1 s.

Seen from an outside subscriber on the command and actuation topics: after the last joint state no
observation is built from it (no fresh action on a stale sample after `max_sample_age`), the arbiter
holds, then publishes its safe command within `max_action_age` of the last sample, says so once, and
says once that fresh actions came back after SIGCONT. Margins hold on a loaded 2-core machine.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from rt_rl.bench.faults import start_graph, start_recorder

pytestmark = pytest.mark.graph

SAFE = [0.1, -0.1, 0.05]
MAX_ACTION_AGE = 0.1
MAX_SAMPLE_AGE = 0.05
FROZEN_S = 1.0

PARAMS = f"""
/**:
  ros__parameters:
    task: Hopper-v5
    num_workers: 2
    policy_checkpoint: random

mujoco_sim:
  ros__parameters:
    sensor_rate_hz: 100.0
    episode_seconds: 60.0
    terminate_when_unhealthy: false

sensor_ingest:
  ros__parameters:
    max_sample_age: {MAX_SAMPLE_AGE}

inference_worker:
  ros__parameters:
    torch_threads: 1

actuator_arbiter:
  ros__parameters:
    control_rate_hz: 100.0
    safe_command: {SAFE}
    max_action_age: {MAX_ACTION_AGE}
"""


def _since(log: Path, wall: float) -> str:
    """The log's lines stamped at or after `wall` (ROS log lines: `[LEVEL] [seconds.nanos] [node]: ...`)."""
    out = []
    for line in log.read_text().splitlines():
        m = re.match(r"\[\w+\] \[(\d+\.\d+)\]", line)
        if m and float(m.group(1)) >= wall - 0.05:
            out.append(line)
    return "\n".join(out)


def _child_pid(parent: int, pattern: str) -> int:
    out = subprocess.run(["pgrep", "-P", str(parent), "-f", pattern], capture_output=True, text=True)
    return int(out.stdout.split()[0])


def test_a_silent_sensor_pauses_the_policy_and_the_arbiter_goes_safe(ros_env, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    received = tmp_path / "received.json"
    run_dir, summary = tmp_path / "run", tmp_path / "summary.json"
    sub = start_recorder(received, ros_env)
    args = ["launch", str(params), "--workers", "2", "--synthetic-latency", "0.01", "--run-dir", str(run_dir),
            "--summary", str(summary)]  # fmt: skip
    proc, _ = start_graph(args, ros_env)
    try:
        deadline = time.monotonic() + 180
        while not (tmp_path / "received.json.receiving").exists():
            assert time.monotonic() < deadline + 30, "the outside subscriber received no command"
            time.sleep(0.05)
        time.sleep(2.0)
        sim = _child_pid(proc.pid, "rt_rl.nodes.mujoco_sim")
        t_stop, wall_stop = time.monotonic(), time.time()
        subprocess.run(["kill", "-STOP", str(sim)])
        time.sleep(FROZEN_S)
        t_cont = time.monotonic()
        subprocess.run(["kill", "-CONT", str(sim)])
        time.sleep(3.0)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.send_signal(signal.SIGTERM)
        sub.wait(timeout=30)
    assert proc.returncode == 130, out[-3000:]
    records = json.loads(received.read_text())["records"]  # (arrival, kind, stamp, tick, age, seq, worker)
    frozen = [r for r in records if t_stop <= r[0] <= t_cont]
    # no fresh action built on a stale sample: the last fresh one within the sample age and an action's
    # flight (a slot started just before the freeze) of the freeze
    fresh = [r[0] - t_stop for r in frozen if r[1] == "fresh"]
    assert not fresh or max(fresh) <= MAX_SAMPLE_AGE + 0.06, fresh[-5:]
    # the safe command within max_action_age (+ a period and the stamp's delivery) of the freeze
    first_safe = next(r[0] - t_stop for r in frozen if r[1] == "watchdog")
    assert first_safe <= MAX_ACTION_AGE + 0.05, first_safe
    assert all(r[1] == "watchdog" for r in frozen if r[0] - t_stop > first_safe)
    back = next(r[0] - t_cont for r in records if r[0] > t_cont and r[1] == "fresh")
    assert back <= 1.0, back
    ingest = _since(run_dir / "logs" / "sensor_ingest.log", wall_stop)
    arbiter = _since(run_dir / "logs" / "actuator_arbiter.log", wall_stop)
    # from the freeze on: once on entry, once on recovery (the graph's own stop may add one more entry,
    # the simulator stopping before the ingest; start-up transients before the freeze are not counted)
    assert ingest.count("sensor back") == 1 and 1 <= ingest.count("sensor silent") <= 2, ingest[-2000:]
    assert ingest.index("sensor silent") < ingest.index("sensor back")
    assert arbiter.count("watchdog: no action") == 1, arbiter[-2000:]
    assert arbiter.count("watchdog: fresh actions again") == 1, arbiter[-2000:]
    print(f"\nsafe command {first_safe * 1e3:.0f} ms after the freeze, fresh again {back * 1e3:.0f} ms after")
