"""The arbiter as a managed node on the live graph, driven the way a ROS user drives it.

`ros2 lifecycle set /actuator_arbiter deactivate` then `activate`, and `ros2 param set /actuator_arbiter
control_rate_hz 50` then `100`, on a running graph (random policy, N = 2, T = 10 ms of synthetic
latency), with an outside rclpy subscriber on the command topic and on the actuation records. Asserted
from outside:

- deactivate: every tick's change is at most `ramp_max_rate` x period, the last command is the safe
  command, then nothing is published while inactive;
- activate: the ramp bounds each tick's change for the ramp time, then the policy drives again;
- the rate: after each switch the commands come at the new period, no tick is lost beyond the switch,
  and the fresh ratio of the two seconds after it is >= 0.98;
- the summary counts the ticks in each state and at each rate.

The upstream `ros2` command line is used where it is installed (`make ros2-tools`); without it the same
services are called with rclpy. Margins hold on a loaded 2-core machine.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rt_rl.bench.faults import start_graph, start_recorder  # the outside recorder, the launch

pytestmark = pytest.mark.graph

SAFE = [0.1, -0.1, 0.05]
RATE = 20.0  # ramp_max_rate: command units per second
RAMP_S = 0.3

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

inference_worker:
  ros__parameters:
    torch_threads: 1

actuator_arbiter:
  ros__parameters:
    control_rate_hz: 100.0
    safe_command: {SAFE}
    engage_ramp_time: {RAMP_S}
    ramp_max_rate: {RATE}
"""

# The same services without the ros2 command line: lifecycle transition or a double parameter.
CLIENT = r"""
import sys
import rclpy
from lifecycle_msgs.srv import ChangeState
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters

rclpy.init()
node = rclpy.create_node("outside_lifecycle_client")
what, arg = sys.argv[1], sys.argv[2]
if what == "lifecycle":
    cli = node.create_client(ChangeState, "/actuator_arbiter/change_state")
    req = ChangeState.Request()
    req.transition.label = arg
else:
    cli = node.create_client(SetParameters, "/actuator_arbiter/set_parameters")
    req = SetParameters.Request(parameters=[Parameter(name="control_rate_hz", value=ParameterValue(
        type=ParameterType.PARAMETER_DOUBLE, double_value=float(arg)))])
assert cli.wait_for_service(timeout_sec=30), "service not found"
future = cli.call_async(req)
rclpy.spin_until_future_complete(node, future, timeout_sec=30)
res = future.result()
ok = res.success if what == "lifecycle" else res.results[0].successful
print("Transitioning successful" if what == "lifecycle" and ok else "Set parameter successful" if ok else "failed")
sys.exit(0 if ok else 1)
"""


def ros2(args: list[str], env: dict) -> str:
    exe = shutil.which("ros2", path=str(Path(sys.executable).parent))
    if exe:
        cmd = [exe, *args]
    elif args[0] == "lifecycle":
        cmd = [sys.executable, "-c", CLIENT, "lifecycle", args[3]]
    else:
        cmd = [sys.executable, "-c", CLIENT, "param", args[4]]
    for _ in range(5):  # the command line discovers the node first: on a busy machine it may miss it
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=90)
        if "Node not found" not in out.stderr:
            break
        time.sleep(1.0)
    assert out.returncode == 0, f"{cmd}: {out.stdout}{out.stderr}"
    return out.stdout


def steps_within(commands: list, since: float, until: float) -> np.ndarray:
    data = np.array([d for t, d in commands if since <= t <= until])
    return np.abs(np.diff(data, axis=0)).max(axis=1) if len(data) > 1 else np.zeros(0)


def fresh_after(records: list, since: float, seconds: float = 2.0) -> tuple[float, int]:
    kinds = [r[1] for r in records if since <= r[0] < since + seconds]
    return sum(k == "fresh" for k in kinds) / max(1, len(kinds)), len(kinds)


def test_lifecycle_and_live_rate_change_seen_from_outside(ros_env, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    received = tmp_path / "received.json"
    run_dir = tmp_path / "run"
    summary = tmp_path / "summary.json"
    sub = start_recorder(received, ros_env)
    args = ["launch", str(params), "--workers", "2", "--synthetic-latency", "0.01", "--run-dir", str(run_dir),
            "--summary", str(summary)]  # fmt: skip
    marks = {}
    proc, _ = start_graph(args, ros_env)
    try:
        deadline = time.monotonic() + 180
        while not (tmp_path / "received.json.receiving").exists():
            assert time.monotonic() < deadline + 30, "the outside subscriber received no command"
            time.sleep(0.05)
        time.sleep(2.0)
        marks["deactivate"] = time.monotonic()
        assert "successful" in ros2(["lifecycle", "set", "/actuator_arbiter", "deactivate"], ros_env)
        marks["deactivated"] = time.monotonic()
        time.sleep(1.5)
        marks["activate"] = time.monotonic()
        assert "successful" in ros2(["lifecycle", "set", "/actuator_arbiter", "activate"], ros_env)
        time.sleep(3.0)
        assert "successful" in ros2(["param", "set", "/actuator_arbiter", "control_rate_hz", "50.0"], ros_env)
        marks["rate50"] = time.monotonic()  # the set returns once the switch is laid (<= 0.2 s ahead)
        time.sleep(4.0)
        assert "successful" in ros2(
            ["param", "set", "/actuator_arbiter", "control_rate_hz", "100.0"], ros_env
        )
        marks["rate100"] = time.monotonic()
        time.sleep(4.0)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.send_signal(signal.SIGTERM)
        sub.wait(timeout=30)
    assert proc.returncode == 130, out[-3000:]
    got = json.loads(received.read_text())
    commands, records = got["commands"], got["records"]
    times = np.array([t for t, _ in commands])
    bound = RATE * 0.01 + 1e-9

    # deactivate: bounded ramp down to the safe command, then silence while inactive
    hand_back = [(t, d) for t, d in commands if marks["deactivate"] <= t <= marks["activate"]]
    assert hand_back and hand_back[-1][1] == pytest.approx(SAFE), hand_back[-3:]
    # the ramp lasts at least RAMP_S: its last RAMP_S before the safe command (the call itself starts a
    # process that takes a while, during which the policy still drives)
    assert steps_within(commands, hand_back[-1][0] - RAMP_S, hand_back[-1][0]).max() <= bound
    assert hand_back[-1][0] <= marks["deactivated"] + 0.1  # the transition returned once it was out
    silent = times[(times > hand_back[-1][0]) & (times < marks["activate"])]
    assert len(silent) == 0, f"{len(silent)} commands while inactive"

    # activate: the first RAMP_S of commands change by at most the bound per tick, then the policy
    engaged = [t for t in times if t > marks["activate"]]
    assert len(engaged) > 100
    ramp = steps_within(commands, engaged[0], engaged[0] + RAMP_S)
    assert len(ramp) >= 0.5 * RAMP_S / 0.01 and ramp.max() <= bound, ramp.max()

    # the rate: commands at the new period after each switch, fresh ratio >= 0.98, no tick lost
    for mark, period in (("rate50", 0.02), ("rate100", 0.01)):
        window = times[(times > marks[mark] + 0.5) & (times < marks[mark] + 2.5)]
        gaps = np.diff(window)
        assert np.median(gaps) == pytest.approx(period, rel=0.1), (mark, np.median(gaps))
        assert gaps.max() < 2.5 * period, (mark, gaps.max())
        ratio, n = fresh_after(records, marks[mark])
        assert n >= 0.8 * 2.0 / period and ratio >= 0.98, (mark, ratio, n)
        print(f"\n{mark}: period median {np.median(gaps) * 1e3:.2f} ms, max gap {gaps.max() * 1e3:.2f} ms, "
              f"fresh {ratio:.3f} over {n} ticks")  # fmt: skip

    s = json.loads(summary.read_text())
    ticks = s["engagement"]["ticks"]
    assert ticks["disengaging"] > 0 and ticks["engaging"] > 0 and ticks["inactive"] >= 100, ticks
    assert set(s["rates_hz"]) == {"100", "50"}, s["rates_hz"]
    assert s["engagement"]["largest_ramp_step"] <= bound
    assert "ticks engaging / active / disengaging / inactive" in out
    print(f"engagement ticks {ticks}, rates {s['rates_hz']}")
