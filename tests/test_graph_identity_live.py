"""The run's identity on the live graph (rt_rl.core.auth): a process on the domain without the run's
key forges every input of the graph's decisions, with everything that can be copied from the bus
copied (a real worker's id, the current revision, real sequences and stamps, real messages with one
field changed, real messages replayed later). Nothing forged is actuated, the real workers keep a fresh
action at (nearly) every tick, no node dies, and each forgery is counted by the node it was sent to.

Margins are for a loaded 2-core machine."""

import json
import subprocess
import sys
import time

import pytest
from conftest import REPO, run_cli

from rt_rl.core.auth import KEY_ENV

pytestmark = pytest.mark.graph

MARK = [0.777, -0.777, 0.777]  # the forged command: never a real one (checked at the actuation)

# An rclpy process that is not one of the graph's nodes and has no key. Every 50 ms it publishes:
#  - an Action with a real worker's id, the current revision, the newest observation's seq and stamps
#    and a random tag ("copied_id");
#  - the newest real Action with its command changed and its slot cleared, its real tag kept
#    ("modified"), and one with its seq moved on ("bumped");
#  - a real Action of half a second ago, verbatim (its tag verifies: the order checks refuse it);
#  - a Schedule naming a worker that does not exist, one revision and a thousand revisions ahead;
#  - an episode boundary five episodes ahead (it would end the real episode);
#  - an Observation for each worker, seq far ahead.
# It records the actuation stream and writes what it saw to argv[1] on SIGTERM.
FORGER = r"""
import collections, copy, json, math, os, signal, sys, time
import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rt_rl_interfaces.msg import Action, Actuation, Observation, Reward, Schedule
from rt_rl.nodes.common import LatestReader

MARK = @MARK@
assert "RT_RL_GRAPH_KEY" not in os.environ
rclpy.init()
node = rclpy.create_node("not_in_the_graph")
volatile = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
last = {"obs": None, "schedule": None, "action": None, "episode": 0}
history = collections.deque()  # (time received, real action)
seen = {"sent": collections.Counter(), "ticks": 0, "fresh": 0, "forged_actuated": [], "seq_regressions": 0,
        "nan_commands": 0, "real_actions": 0}
newest_seq = [-1]

# Readers taken every 50 ms (no callback per message), best effort where the rate is high (the graph's
# writers then keep no acknowledgement state for this reader): on a loaded 2-core machine an outside
# process that merely subscribes costs the graph some of its fresh ticks, forging or not (measured with
# this forger publishing nothing: 0.92 against 0.96 without it, in the same minute).
def best_effort(depth):
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.BEST_EFFORT)

observations = LatestReader(node, Observation, "/rt_rl/observation", best_effort(1))
schedules = LatestReader(node, Schedule, "/rt_rl/schedule", latched)
actions = LatestReader(node, Action, "/rt_rl/action", best_effort(2))
episode_ends = LatestReader(node, Reward, "/rt_rl/episode_end", latched)
actuations = LatestReader(node, Actuation, "/rt_rl/actuation", best_effort(1000))
act_pub = node.create_publisher(Action, "/rt_rl/action", volatile)
# transient local, as the graph's readers of these topics ask (a volatile writer would not match them)
sched_pub = node.create_publisher(Schedule, "/rt_rl/schedule", latched)
ep_pub = node.create_publisher(Reward, "/rt_rl/episode_end", latched)
obs_pubs = [node.create_publisher(Observation, f"/rt_rl/observation/worker_{i}", volatile) for i in range(5)]

def follow():
    obs = observations.take_newest()
    if obs is not None:
        last["obs"] = obs
    for msg in schedules.take_all():
        if last["schedule"] is None or msg.revision >= last["schedule"].revision:
            last["schedule"] = msg
    for msg in actions.take_all():
        if msg.schedule_revision and list(msg.data) != MARK:
            seen["real_actions"] += 1
            last["action"] = msg
            history.append((time.monotonic(), msg))
    for msg in episode_ends.take_all():
        last["episode"] = max(last["episode"], msg.episode)
    for msg in actuations.take_all():
        seen["ticks"] += 1
        if any(not math.isfinite(x) for x in msg.command):
            seen["nan_commands"] += 1
        if msg.kind != "fresh":
            continue
        seen["fresh"] += 1
        if all(abs(c - m) < 1e-9 for c, m in zip(msg.command, MARK)):
            seen["forged_actuated"].append([msg.worker_id, msg.observation_seq, list(msg.command)])
        if msg.observation_seq < newest_seq[0]:
            seen["seq_regressions"] += 1
        newest_seq[0] = max(newest_seq[0], msg.observation_seq)

def tag():
    return list(os.urandom(16))

def publish(pub, msg, kind):
    pub.publish(msg)
    seen["sent"][kind] += 1

def forge():
    obs, sched, real = last["obs"], last["schedule"], last["action"]
    if obs is None or sched is None or real is None:
        return
    now = time.time()
    # a real worker's identity, copied
    a = Action()
    a.header.stamp = node.get_clock().now().to_msg()
    a.observation_stamp = obs.header.stamp
    a.input_stamp = obs.header.stamp
    a.observation_seq = obs.seq
    a.episode = obs.episode
    a.worker_id = int(sched.workers[0])
    a.inference_time = real.inference_time
    a.schedule_revision = sched.revision
    a.data = MARK
    a.auth_tag = tag()
    publish(act_pub, a, "copied_id")
    # a real message, modified (its tag kept)
    m = copy.deepcopy(real)
    m.data = MARK
    m.slot_end.sec, m.slot_end.nanosec = 0, 0
    publish(act_pub, m, "modified")
    m = copy.deepcopy(real)
    m.observation_seq += 3
    m.observation_stamp = obs.header.stamp
    publish(act_pub, m, "bumped")
    # a real message replayed half a second later, verbatim
    while len(history) > 1 and history[1][0] < time.monotonic() - 0.5:
        history.popleft()
    if history and history[0][0] < time.monotonic() - 0.5:
        publish(act_pub, history[0][1], "replay")
    # schedules naming a worker that does not exist
    for ahead in (1, 1000):
        s = copy.deepcopy(sched)
        s.revision = sched.revision + ahead
        s.num_workers = 1
        s.workers = [7]
        s.epoch.sec, s.epoch.nanosec = int(now + 0.1), int((now + 0.1) % 1 * 1e9)
        s.auth_tag = tag()
        publish(sched_pub, s, "schedule")
    # an episode boundary five episodes ahead
    r = Reward(episode=max(last["episode"], obs.episode) + 5, terminated=True)
    r.header.stamp = node.get_clock().now().to_msg()
    r.auth_tag = tag()
    publish(ep_pub, r, "episode_end")
    # observations far ahead, for every worker's slot
    for i, pub in enumerate(obs_pubs):
        o = copy.deepcopy(obs)
        o.seq = obs.seq + 2**40
        o.auth_tag = tag()
        publish(pub, o, "observation")

stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
while not stop:
    time.sleep(0.05)
    follow()
    forge()
follow()
seen["sent"] = dict(seen["sent"])
with open(sys.argv[1], "w") as f:
    json.dump(seen, f)
""".replace("@MARK@", repr(MARK))


def test_forgeries_without_the_key_are_refused_and_counted(ros_env, tmp_path):
    ros_env.pop(KEY_ENV, None)  # the launcher makes the run's key; the outsider has none
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
            # the measurement: N = 5, T = 40 ms (the config's synthetic latency), 100 Hz
            ["launch", "config/bench_100hz.yaml", "--duration", "8", "--workers", "5",
             "--summary", str(summary), "--run-dir", str(tmp_path / "run")],
            ros_env,
        )  # fmt: skip
    finally:
        time.sleep(0.2)
        forger.terminate()
        out, _ = forger.communicate(timeout=30)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "respawn" not in proc.stdout + proc.stderr, proc.stdout[-3000:]  # no node died
    assert ros_env.get(KEY_ENV) is None
    assert forger.returncode == 0, out[-3000:]
    seen = json.loads(seen_file.read_text())
    s = json.loads(summary.read_text())
    sent = seen["sent"]
    for kind in ("copied_id", "modified", "bumped", "replay", "schedule", "episode_end", "observation"):
        assert sent.get(kind, 0) >= 40, seen  # the forger followed the graph and forged all along
    assert seen["fresh"] > 300, seen  # it saw the actuation stream
    assert seen["forged_actuated"] == [], seen
    assert seen["seq_regressions"] == 0, seen  # no replayed (older) action actuated
    assert seen["nan_commands"] == 0
    assert s["predicted_fresh_action_ratio"] == 1.0, s
    assert s["fresh_action_ratio"] >= 0.95, s
    reasons = s["rejected_by_reason"]
    assert reasons["forged"] >= 100, reasons  # copied_id, modified, bumped: three per 50 ms
    assert reasons["seq_jump"] == 0, reasons  # no forged observation reached a worker's action
    assert reasons["ended_episode"] <= 10, reasons  # no forged boundary ended the real episode
    auth = s["auth"]
    arbiter, ingest = auth["actuator_arbiter"], auth["sensor_ingest"]
    workers = [auth[f"inference_worker_{i}"] for i in range(5)]
    for counts in (arbiter, ingest, *workers, auth["mujoco_sim"]):
        assert counts["authenticated"] and counts["unauthenticated"] == 0, auth
    assert arbiter["forged"].get("action", 0) >= 100 and arbiter["forged"].get("episode_end", 0) >= 20, auth
    assert arbiter["verified"] > 300, auth  # the real actions and boundaries
    assert ingest["forged"].get("schedule", 0) >= 20 and ingest["forged"].get("episode_end", 0) >= 20, auth
    for w in workers:
        assert w["forged"].get("schedule", 0) >= 20, auth
        assert w["forged"].get("observation", 0) >= 20, auth  # and none reached an action (seq_jump)
        assert w["verified"] > 100, auth
