"""The real graph under forged actions from a process outside it: nothing forged is actuated, the real
workers keep a fresh action at (nearly) every tick, and every forgery is counted by reason.

Here the outsider has the run's graph key (the same user can read it) and signs its forgeries: the
arbiter's plausibility checks still refuse each one. Without the key every forgery is refused as
`forged` before these checks (tests/test_graph_identity_live.py).

Margins are for a loaded 2-core machine."""

import json
import subprocess
import sys
import time

import pytest
from conftest import REPO, run_cli

from rt_rl.core.auth import KEY_ENV, new_key

pytestmark = pytest.mark.graph

# An rclpy process that is not one of the graph's nodes. It follows the real observations and schedule
# (so each forgery is plausible in every field but one) and publishes, every 50 ms, four Actions:
# seq near 2**63, a worker id not in the schedule, a stamp 10 s in the future, NaN data. It also
# records every actuated tick seen on /rt_rl/actuation and writes what it saw to argv[1] on SIGTERM.
FORGER = r"""
import json, math, signal, sys, time
import rclpy
from rt_rl.core.auth import Authenticator, action_fields
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rt_rl_interfaces.msg import Action, Actuation, Observation, Schedule

FAR = 2**63 - 7
OUTSIDER = 7
rclpy.init()
node = rclpy.create_node("not_a_worker")
signer = Authenticator.from_env()  # the run's key, given to this test's outsider
volatile = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
last = {"obs": None, "revision": 0}
seen = {"sent": 0, "ticks": 0, "fresh": 0, "forged_actuated": [], "nan_commands": 0}

def on_obs(msg):
    last["obs"] = msg

def on_schedule(msg):
    last["revision"] = msg.revision

def on_actuation(msg):
    seen["ticks"] += 1
    if any(not math.isfinite(x) for x in msg.command):
        seen["nan_commands"] += 1
    if msg.kind != "fresh":
        return
    seen["fresh"] += 1
    tick_time = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
    obs_time = msg.observation_stamp.sec + msg.observation_stamp.nanosec * 1e-9
    if msg.worker_id == OUTSIDER or msg.observation_seq >= 2**62 or obs_time > tick_time + 1.0:
        seen["forged_actuated"].append([msg.worker_id, msg.observation_seq, obs_time, tick_time])

node.create_subscription(Observation, "/rt_rl/observation", on_obs, volatile)
node.create_subscription(Schedule, "/rt_rl/schedule", on_schedule, latched)
node.create_subscription(Actuation, "/rt_rl/actuation", on_actuation, QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
pub = node.create_publisher(Action, "/rt_rl/action", volatile)

def forge():
    obs = last["obs"]
    if obs is None:
        return
    now = time.time()
    for kind in ("seq", "worker", "future", "nan"):
        a = Action()
        a.header.stamp = node.get_clock().now().to_msg()
        a.observation_stamp.sec, a.observation_stamp.nanosec = obs.header.stamp.sec, obs.header.stamp.nanosec
        a.input_stamp.sec, a.input_stamp.nanosec = obs.header.stamp.sec, obs.header.stamp.nanosec
        a.observation_seq = obs.seq
        a.episode = obs.episode
        a.worker_id = 0
        a.inference_time = 0.001
        a.schedule_revision = last["revision"]
        a.data = [0.9, -0.9, 0.9]
        if kind == "seq":
            a.observation_seq = FAR
        elif kind == "worker":
            a.worker_id = OUTSIDER
        elif kind == "future":
            future = now + 10.0
            a.worker_id = 1
            a.observation_stamp.sec, a.observation_stamp.nanosec = int(future), int(future % 1 * 1e9)
            a.input_stamp.sec, a.input_stamp.nanosec = a.observation_stamp.sec, a.observation_stamp.nanosec
        else:
            a.data = [math.nan, 0.0, math.nan]
        a.auth_tag = signer.sign(action_fields(a))
        pub.publish(a)
        seen["sent"] += 1

node.create_timer(0.05, forge)
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
while not stop:
    rclpy.spin_once(node, timeout_sec=0.05)
with open(sys.argv[1], "w") as f:
    json.dump(seen, f)
"""


def test_forged_actions_from_outside_are_refused_and_counted(ros_env, tmp_path):
    ros_env[KEY_ENV] = new_key()  # the launcher keeps a key the user set: the outsider has it too
    seen_file = tmp_path / "forger.json"
    forger = subprocess.Popen(
        [sys.executable, "-c", FORGER, str(seen_file)],
        env=ros_env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        summary = tmp_path / "summary.json"
        proc = run_cli(
            ["launch", "config/bench_100hz.yaml", "--duration", "8", "--workers", "2",
             # T about 11-15 ms: two workers give a fresh action every 10 ms tick (predicted 1.0; the
             # config's own 40 ms would predict 0.5 with two workers, forged messages or not)
             "--synthetic-latency", "0.01",
             "--summary", str(summary), "--run-dir", str(tmp_path / "run")],
            ros_env,
        )  # fmt: skip
    finally:
        time.sleep(0.2)
        forger.terminate()
        out, _ = forger.communicate(timeout=30)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert forger.returncode == 0, out[-3000:]
    seen = json.loads(seen_file.read_text())
    s = json.loads(summary.read_text())
    assert seen["sent"] > 100, seen  # the forger followed the graph and published all along
    assert seen["fresh"] > 300, seen  # it saw the actuation stream
    assert seen["forged_actuated"] == [], seen
    assert seen["nan_commands"] == 0
    assert s["predicted_fresh_action_ratio"] == 1.0, s
    assert s["fresh_action_ratio"] >= 0.9, s
    reasons = s["rejected_by_reason"]
    for reason in ("seq_jump", "unknown_worker", "future_stamp", "not_finite"):
        assert reasons[reason] >= 20, reasons
    assert reasons["forged"] == 0, reasons  # signed with the run's key: nothing counted as forged
