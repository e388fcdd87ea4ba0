"""A safe stop on every stop path, seen from outside: the last command a robot receives is the safe one.

A ros2_control forward_command_controller has no timeout: it applies the last command it received
until another one comes. For each way the graph can stop, the real graph runs (`rt-rl launch`, random
policy) with an outside rclpy subscriber on the command topic (reliable, like the controller's) that
records every command with its arrival time; the test asserts that the policy was in control, that
the last command received is the configured safe command (non-zero, so it cannot be taken for a zero
policy output), that the stop sent it (the arbiter's log, or the launcher's for its guard), and that
nothing at all arrived after it: the subscriber listens on for a second after the launcher exited.

Margins are for a loaded 2-core machine (startup up to minutes, a stop within seconds).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO

pytestmark = pytest.mark.graph

SAFE = [0.1, -0.1, 0.05]
COMMAND_TOPIC = "/rt_rl/command"
RUN_S = 2.0  # policy in control before the stop (at 100 Hz: ~200 commands)
DURATION_S = 5.0  # the duration path: RUN_S plus the subscriber's discovery of the arbiter
QUIET_S = 1.0  # listened for after the launcher exited: nothing may arrive

PARAMS = f"""
/**:
  ros__parameters:
    task: Hopper-v5
    num_workers: 1
    policy_checkpoint: random

mujoco_sim:
  ros__parameters:
    sensor_rate_hz: 100.0
    episode_seconds: 20.0
    terminate_when_unhealthy: false

inference_worker:
  ros__parameters:
    torch_threads: 1

actuator_arbiter:
  ros__parameters:
    control_rate_hz: 100.0
    fallback: hold
    max_action_age: 0.25
    safe_command: {SAFE}
"""

# An outside subscriber, like a forward_command_controller's (reliable, volatile), with a deep queue so
# that every command is recorded: (monotonic arrival time, data). Written on SIGTERM.
SUBSCRIBER = r"""
import json, signal, sys, time
import rclpy
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray

rclpy.init(signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
stop = []
for s in (signal.SIGINT, signal.SIGTERM):
    signal.signal(s, lambda *_: stop.append(1))
node = rclpy.create_node("outside_command_subscriber")
got = []
qos = QoSProfile(depth=1000, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                 durability=DurabilityPolicy.VOLATILE)


def on_command(msg):
    got.append((time.monotonic(), list(msg.data)))
    if len(got) == 1:
        open(sys.argv[1] + ".receiving", "w").close()


node.create_subscription(Float64MultiArray, sys.argv[2], on_command, qos)
executor = rclpy.executors.SingleThreadedExecutor()
executor.add_node(node)
open(sys.argv[1] + ".ready", "w").close()
while not stop:
    executor.spin_once(timeout_sec=0.02)
with open(sys.argv[1], "w") as f:
    json.dump(got, f)
node.destroy_node()
rclpy.try_shutdown()
"""

# path -> exit code of the launcher
PATHS = {
    "sigint_launcher": 130,
    "sigterm_launcher": 130,
    "duration_end": 0,
    "arbiter_sigkill": 3,  # a required node died: the launcher's guard publishes the safe command
    "arbiter_sigterm": 3,  # the arbiter stops itself (exit 0), the launcher then stops the graph
    "sim_sigkill": 3,  # another required node died: the launcher stops the graph, arbiter first
}


def _is_safe(data: list[float]) -> bool:
    return len(data) == len(SAFE) and all(abs(a - b) < 1e-12 for a, b in zip(data, SAFE, strict=True))


def _child_pid(parent: int, pattern: str) -> int:
    out = subprocess.run(["pgrep", "-P", str(parent), "-f", pattern], capture_output=True, text=True)
    pids = out.stdout.split()
    assert pids, f"no child of {parent} matching {pattern}"
    return int(pids[0])


@pytest.mark.parametrize("path", list(PATHS))
def test_the_last_command_is_the_safe_command(path, ros_env, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    received = tmp_path / "received.json"
    run_dir = tmp_path / "run"
    sub = subprocess.Popen(
        [sys.executable, "-c", SUBSCRIBER, str(received), COMMAND_TOPIC], env=ros_env, cwd=tmp_path
    )
    # its participant first, then the graph's (seen once when both started together: an outside
    # subscriber that received nothing in 30 s)
    deadline = time.monotonic() + 60
    while not (tmp_path / "received.json.ready").exists():
        assert sub.poll() is None and time.monotonic() < deadline, "the outside subscriber did not start"
        time.sleep(0.05)
    args = ["launch", str(params), "--workers", "1", "--synthetic-latency", "0.01", "--run-dir", str(run_dir)]
    if path == "duration_end":
        args += ["--duration", str(DURATION_S)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "rt_rl.cli", *args],
        cwd=REPO, env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        lines = []
        deadline = time.monotonic() + 180
        for line in proc.stdout:
            lines.append(line)
            if "measuring" in line or time.monotonic() > deadline:
                break
        t_measuring = time.monotonic()
        # discovery of the arbiter by the outside subscriber can take a participant announcement period
        while not (tmp_path / "received.json.receiving").exists():
            assert time.monotonic() < t_measuring + 30, "the outside subscriber received no command"
            time.sleep(0.05)
        if path != "duration_end":
            time.sleep(RUN_S)
        t_stop = time.monotonic()
        if path == "sigint_launcher":
            proc.send_signal(signal.SIGINT)
        elif path == "sigterm_launcher":
            proc.send_signal(signal.SIGTERM)
        elif path == "arbiter_sigkill":
            subprocess.run(["kill", "-KILL", str(_child_pid(proc.pid, "rt_rl.nodes.actuator_arbiter"))])
        elif path == "arbiter_sigterm":
            subprocess.run(["kill", "-TERM", str(_child_pid(proc.pid, "rt_rl.nodes.actuator_arbiter"))])
        elif path == "sim_sigkill":
            subprocess.run(["kill", "-KILL", str(_child_pid(proc.pid, "rt_rl.nodes.mujoco_sim"))])
        out, _ = proc.communicate(timeout=90)
        t_exit = time.monotonic()
        out = "".join(lines) + out
        time.sleep(QUIET_S)  # a command still in flight, or one published late, would arrive now
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.send_signal(signal.SIGTERM)
        sub.wait(timeout=30)
    assert proc.returncode == PATHS[path], out[-4000:]
    got = json.loads(received.read_text())
    times = [t for t, _ in got]
    data = [d for _, d in got]

    # the last command received is the safe command ...
    assert data, "no command received"
    last = data[-1]
    assert _is_safe(last), f"last command {last}, expected {SAFE} ({path})\n{out[-3000:]}"
    tail = len(data)
    while tail > 0 and _is_safe(data[tail - 1]):
        tail -= 1
    # ... the policy was in control before it
    policy = [t for t, d in got[:tail] if not _is_safe(d) and t >= t_measuring]
    assert len(policy) > 50, f"{len(policy)} policy commands before the stop\n{out[-3000:]}"
    # ... the stop sent it (the tail can begin earlier when the watchdog was on: a stalled worker)
    start = t_measuring if path == "duration_end" else t_stop
    after_stop = [t for t, d in got if t >= start and _is_safe(d)]
    assert len(after_stop) >= 3, f"{len(after_stop)} safe commands after the stop"
    if path == "arbiter_sigkill":  # by the launcher's guard
        said = "without its safe stop: the launcher published its safe command"
        assert said in out, out[-3000:]
        stop_line = next(line for line in out.splitlines() if said in line)
    else:  # by the arbiter's own stop
        log = (run_dir / "logs" / "actuator_arbiter.log").read_text()
        assert f"safe stop: {SAFE} on {COMMAND_TOPIC}, 3x" in log, log[-3000:]
        stop_line = next(line for line in log.splitlines() if "safe stop: " in line)
    # ... and nothing came after it: the graph had stopped when the launcher exited
    assert times[-1] <= t_exit, f"a command arrived {times[-1] - t_exit:.3f} s after the launcher exited"
    # nothing of the run is left
    left = subprocess.run(["pgrep", "-f", str(run_dir)], capture_output=True, text=True)
    assert left.stdout.strip() == ""
    print(
        f"\n{path}: rc {proc.returncode}, {len(data)} commands, last policy command "
        f"{times[tail - 1] - t_stop:+.3f} s, first safe {times[tail] - t_stop:+.3f} s, "
        f"last {times[-1] - t_stop:+.3f} s after the stop ({len(data) - tail} safe), "
        f"launcher exit {t_exit - t_stop:+.3f} s\n  {stop_line.strip()}"
    )
