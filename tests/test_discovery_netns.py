"""`make demo` is private by default: another network namespace on this machine (another host, as far as
DDS can tell) neither receives its commands nor discovers its nodes, even when it names the graph's
address as a static peer; with `discovery_range: subnet` in the params file it does.

Two network namespaces joined by a veth pair (10.231.0.1/24 and 10.231.0.2/24), made by this test and
deleted afterwards. The graph is `make demo`'s (config/demo_robot.yaml with the simulated Hopper robot),
started by `rt-rl launch` in namespace A with nothing in its environment about discovery: what the
launcher chooses is what is tested. Outside listeners are plain rclpy subscribers on the command topic in
namespace B with a user's default environment; a listener in namespace A (same host) is the control
that shows the graph was publishing meanwhile. Needs root and `ip netns`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml

from rt_rl.graph import TOPICS, apply_robot_section, load_params, node_settings

pytestmark = pytest.mark.graph

REPO = Path(__file__).resolve().parents[1]
ADDR_A, ADDR_B = "10.231.0.1", "10.231.0.2"
READY_TIMEOUT = 150.0  # s for the graph to be ready and scheduled (a loaded 2-core machine)
QUIET_WINDOW = 8.0  # s the outside listeners hear nothing (discovery announces for 3 s, then every 3 s)
LAN_TIMEOUT = 40.0  # s for an outside listener to hear the LAN graph
GRAPH_NODES = ("actuator_arbiter", "sensor_ingest", "mujoco_sim", "inference_worker_0")

# An outside subscriber: the command topic, volatile reliable (matches the graph's publishers), until
# `want` messages or `seconds`; then what it heard and which nodes it discovered, as JSON.
LISTENER = """
import json, sys, time
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray
topic, seconds, want, node_wanted = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rclpy.init()
node = rclpy.create_node("outside_listener")
got = []
node.create_subscription(Float64MultiArray, topic, lambda m: got.append(list(m.data)),
                         QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
print("listening", flush=True)
end = time.monotonic() + seconds
names = []
while time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.1)
    if len(got) >= want:
        names = node.get_node_names()
        if not node_wanted or node_wanted in names:
            break
names = node.get_node_names()
print(json.dumps({"received": len(got), "nodes": sorted(set(names) - {"outside_listener"})}), flush=True)
node.destroy_node()
rclpy.shutdown()
"""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


@pytest.fixture
def namespaces():
    """Namespaces A and B joined by a veth pair with their own addresses, loopback up in each."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces (ip netns)")
    if shutil.which("ip") is None:
        pytest.skip("the `ip` command (iproute2) is not installed")
    pid = os.getpid()
    a, b, va, vb = f"rtrl{pid}a", f"rtrl{pid}b", f"rtrl{pid}x", f"rtrl{pid}y"
    probe = _ip("netns", "add", a, check=False)
    if probe.returncode != 0:
        pytest.skip(f"ip netns is not available here: {probe.stderr.strip()}")
    try:
        _ip("netns", "add", b)
        _ip("link", "add", va, "type", "veth", "peer", "name", vb)
        for ns, dev, addr in ((a, va, ADDR_A), (b, vb, ADDR_B)):
            _ip("link", "set", dev, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", dev)  # as a LAN host's default route
        yield a, b
    finally:
        for ns in (a, b):  # deleting a namespace deletes its end of the veth pair, and so the pair
            _ip("netns", "del", ns, check=False)
        _ip("link", "del", va, check=False)


class Procs:
    """Every process the test starts, each in its own session; all stopped at the end, whatever happens."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, ns: str, args: list[str], env: dict, **kw) -> subprocess.Popen:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            cwd=REPO,
            **kw,
        )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        deadline = time.monotonic() + 20
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture
def procs():
    p = Procs()
    try:
        yield p
    finally:
        p.stop_all()


def _clean_env(tmp: Path) -> dict:
    """A user's environment: nothing about discovery or Fast DDS profiles, a domain of its own."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ROS_", "FASTDDS_", "FASTRTPS_", "RMW_")) or k == "ROS_HOME"
    }
    env.update(ROS_DOMAIN_ID=str(random.randint(120, 220)), ROS_LOG_DIR=str(tmp / "ros_log"))
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Lines:
    """A process's output, read on a thread (a launcher blocked on a full pipe would stop the graph)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._t.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float, proc: subprocess.Popen) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(text in line for line in self.lines):
                return True
            if proc.poll() is not None:
                time.sleep(0.5)  # the rest of its output
                return any(text in line for line in self.lines)
            time.sleep(0.2)
        return False

    def text(self) -> str:
        return "\n".join(self.lines[-60:])


def _launch_demo(procs: Procs, ns: str, env: dict, tmp: Path, lan: bool) -> tuple[subprocess.Popen, Lines]:
    params = REPO / "config" / "demo_robot.yaml"
    if lan:  # the switch: the params file's graph-wide section
        data = yaml.safe_load(params.read_text())
        data.setdefault("/**", {"ros__parameters": {}})["ros__parameters"]["discovery_range"] = "subnet"
        params = tmp / "demo_robot_lan.yaml"
        params.write_text(yaml.safe_dump(data, sort_keys=False))
    cmd = [sys.executable, "-m", "rt_rl.cli", "launch", str(params), "--robot", "config/robots/hopper.yaml"]
    # not --quiet: the discovery line and readiness are read from the progress lines
    cmd += ["--duration", "300", "--run-dir", str(tmp / ("run_lan" if lan else "run"))]
    launcher = procs.start(ns, cmd, env)
    out = Lines(launcher)
    if not out.wait_for("graph ready and scheduled", READY_TIMEOUT, launcher):
        pytest.fail(f"the demo graph did not start in namespace {ns}:\n{out.text()}")
    return launcher, out


def _command_topic() -> str:
    """Where `make demo` publishes its commands: the robot section's forward command controller."""
    params = load_params(REPO / "config" / "demo_robot.yaml")
    return node_settings(apply_robot_section(params), "actuator_arbiter").get(
        "command_topic", TOPICS["command"].default
    )


def _listen(procs: Procs, ns: str, env: dict, seconds: float, want: int, node_wanted: str = ""):
    topic = _command_topic()
    args = [sys.executable, "-c", LISTENER, topic, str(seconds), str(want), node_wanted]
    return procs.start(ns, args, env)


def _result(proc: subprocess.Popen, timeout: float) -> dict:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=10)
        pytest.fail(f"listener did not finish: {out[-2000:]}")
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, out[-2000:]
    return json.loads(lines[-1])


def _stop(launcher: subprocess.Popen, out: Lines) -> int:
    os.kill(launcher.pid, signal.SIGINT)  # the launcher stops its children in order
    try:
        return launcher.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the launcher did not stop on SIGINT:\n{out.text()}")


def test_demo_is_private_by_default_and_reachable_with_the_lan_switch(namespaces, procs):
    ns_a, ns_b = namespaces
    tmp = Path(tempfile.mkdtemp(prefix="rt_rl_netns_"))
    try:
        env = _clean_env(tmp)

        # --- default: this host only ------------------------------------------------------------------
        launcher, out = _launch_demo(procs, ns_a, env, tmp, lan=False)
        assert any("discovery: this host only" in line for line in out.lines), out.text()
        # outside: a user's default range (multicast), and one that names the graph's address
        plain = _listen(procs, ns_b, env, QUIET_WINDOW, 10**9)
        named = _listen(procs, ns_b, {**env, "ROS_STATIC_PEERS": ADDR_A}, QUIET_WINDOW, 10**9)
        # the control: a process on the graph's own host hears it meanwhile
        local = _listen(procs, ns_a, env, QUIET_WINDOW + 30, 20, "actuator_arbiter")
        seen_plain, seen_named, seen_local = (_result(p, QUIET_WINDOW + 60) for p in (plain, named, local))
        print(f"default: outside {seen_plain}, outside naming {ADDR_A} {seen_named}, same host {seen_local}")
        assert seen_local["received"] >= 20 and "actuator_arbiter" in seen_local["nodes"], seen_local
        for seen in (seen_plain, seen_named):
            assert seen["received"] == 0, seen
            assert not set(GRAPH_NODES) & set(seen["nodes"]), seen
        assert _stop(launcher, out) == 130, out.text()  # interrupted, cleanly

        # --- the LAN switch: discovery_range: subnet --------------------------------------------------
        launcher, out = _launch_demo(procs, ns_a, env, tmp, lan=True)
        assert any("discovery: subnet" in line for line in out.lines), out.text()
        outside = _listen(procs, ns_b, env, LAN_TIMEOUT, 20, "actuator_arbiter")
        seen = _result(outside, LAN_TIMEOUT + 60)
        print(f"discovery_range: subnet: outside {seen}")
        assert seen["received"] >= 20, seen
        assert "actuator_arbiter" in seen["nodes"], seen
        assert _stop(launcher, out) == 130, out.text()
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
