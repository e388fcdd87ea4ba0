"""`ros2 launch rt_rl rt_rl.launch.py` for real: a colcon build of rt_rl_ws, the upstream launch system.

The workspace is built with colcon into a temporary directory (build, install and log there, nothing in
the repository); each test then starts `ros2 launch` through `bash -c 'source install/setup.bash &&
ros2 launch ...'`, as a user would, with an outside rclpy subscriber on /rt_rl/command, measures the
command rate and inter-arrival times, sends SIGINT to ros2 launch and checks that it exits 0 and leaves
no node process behind.

Needs `ros2` (with launch_ros) and colcon: `make ros2-tools` (part of `make test`) installs them into
the venv from ../shared/tools/ros2_cli and PyPI; on a ROS 2 install with colcon they come from PATH.
Without them the tests skip. Margins are for a loaded 2-core machine (rate 90-110 Hz, p99 <= 15 ms); the
tight number (p99 <= 12 ms) is a benchmark's, docs/ros2_launch.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

from rt_rl.bench.probe import inter_arrival_ms

pytestmark = pytest.mark.graph

VENV_BIN = Path(sys.executable).parent
WORKERS = 2  # given as num_workers:=2 over the params file's 1
STARTUP_S = 180.0  # until every worker follows the first schedule (each imports torch: slow when loaded)
STOP_S = 60.0  # ros2 launch escalates to SIGTERM after 5 s and SIGKILL after 10 s more
# The test's margins; as a benchmark on a quiet machine (docs/ros2_launch.md):
# RT_RL_ROS2_LAUNCH_P99_MS=12 RT_RL_ROS2_LAUNCH_SECONDS=30 pytest tests/test_ros2_launch.py -k 100_hz -s
P99_MS = float(os.environ.get("RT_RL_ROS2_LAUNCH_P99_MS", "15"))
MEASURE_S = float(os.environ.get("RT_RL_ROS2_LAUNCH_SECONDS", "6"))

# config/bench_100hz.yaml with 10 ms of synthetic inference
PARAMS = """
/**:
  ros__parameters:
    task: Hopper-v5
    num_workers: 1
    policy_checkpoint: random

mujoco_sim:
  ros__parameters:
    sensor_rate_hz: 500.0
    episode_seconds: 20.0
    terminate_when_unhealthy: false
    realtime_priority: 50

sensor_ingest:
  ros__parameters:
    observation_lead: 0.0005
    realtime_priority: 40

inference_worker:
  ros__parameters:
    synthetic_latency: 0.01
    torch_threads: 1
    realtime_priority: 0

actuator_arbiter:
  ros__parameters:
    control_rate_hz: 100.0
    fallback: hold
    max_action_age: 0.25
    sensor_rate_hz: 500.0
    sensor_offset: 0.001
    realtime_priority: 45
"""


def _tool(name: str) -> str | None:
    """The venv's own (make ros2-tools), else a ROS 2 install's on PATH."""
    local = VENV_BIN / name
    return str(local) if local.exists() else shutil.which(name)


def _missing_tools() -> str | None:
    missing = [name for name in ("ros2", "colcon", "cmake") if _tool(name) is None]
    if missing:
        return (
            f"{', '.join(missing)} not found: `make ros2-tools` installs ros2 launch and colcon into the venv "
            "(needs ../shared/tools/ros2_cli), or use a ROS 2 install with colcon"
        )
    if _tool("ros2") == str(VENV_BIN / "ros2"):
        found = subprocess.run([sys.executable, "-c", "import launch_ros"], capture_output=True)
        if found.returncode != 0:
            return "launch_ros is not importable in the venv: run `make ros2-tools`"
    return None


@pytest.fixture(scope="session")
def colcon_install(tmp_path_factory):
    """`colcon build` of rt_rl_ws (rt_rl_interfaces + this package) into a temporary install space."""
    reason = _missing_tools()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("colcon")
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    if (Path(sys.prefix) / "share" / "ament_index").is_dir():  # a venv with the ROS 2 wheels is the underlay
        for var in ("AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH"):
            env[var] = os.pathsep.join(p for p in (sys.prefix, env.get(var)) if p)
    cmd = [
        _tool("colcon"),
        "--log-base", str(root / "log"),
        "build",
        "--base-paths", "src",
        "--build-base", str(root / "build"),
        "--install-base", str(root / "install"),
        "--event-handlers", "console_direct-",
        "--cmake-args", "-DBUILD_TESTING=OFF", f"-DPython3_EXECUTABLE={sys.executable}",
    ]  # fmt: skip
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=REPO / "rt_rl_ws", env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    install = root / "install"
    print(f"colcon build of rt_rl_ws: {time.monotonic() - t0:.1f} s into {install}")
    # an ament_python package: node executables under lib/<package>, where ros2 run and launch_ros look
    for exe in ("mujoco_sim", "sensor_ingest", "inference_worker", "actuator_arbiter", "bag_recorder"):
        assert os.access(install / "rt_rl" / "lib" / "rt_rl" / exe, os.X_OK), exe
    assert (install / "rt_rl" / "share" / "rt_rl" / "launch" / "rt_rl.launch.py").is_file()
    return install


class Graph:
    """`ros2 launch` of the colcon-installed package, its output in a file, and an outside subscriber."""

    def __init__(
        self, install: Path, env: dict, tmp_path: Path, *launch_args: str, reliable: bool = False
    ) -> None:
        self.tmp_path = tmp_path
        self.domain = env.get("ROS_DOMAIN_ID", "0")
        self.log_dir = Path(env["ROS_LOG_DIR"])
        self.out_path = tmp_path / "ros2_launch.out"
        self.probe_path = tmp_path / "commands.json"
        env = dict(env, PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}")
        # the subscriber first: it is matched before the first command
        self.probe = subprocess.Popen(
            [sys.executable, "-m", "rt_rl.bench.probe", str(self.probe_path), "--topic", "/rt_rl/command"]
            + (["--reliable"] if reliable else []),
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        script = 'source "$1/setup.bash" && shift && exec ros2 launch rt_rl rt_rl.launch.py "$@"'
        with self.out_path.open("w") as out:
            self.launch = subprocess.Popen(
                ["bash", "-c", script, "bash", str(install), *launch_args],
                env=env,
                cwd=tmp_path,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own group: cleaned up as one if the test fails
            )

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def node_pids(self) -> dict[str, int]:
        """`[INFO] [mujoco_sim-4]: process started with pid [1234]` -> {"mujoco_sim-4": 1234}"""
        return {
            name: int(pid)
            for name, pid in re.findall(r"\[([\w-]+)\]: process started with pid \[(\d+)\]", self.output())
        }

    def wait_for(self, patterns: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.output()
            if all(re.search(p, text) for p in patterns):
                return
            assert self.launch.poll() is None, (
                f"ros2 launch exited ({self.launch.returncode}):\n{text[-4000:]}"
            )
            time.sleep(0.2)
        missing = [p for p in patterns if not re.search(p, self.output())]
        pytest.fail(
            f"no {missing} within {timeout:g} s (ROS_DOMAIN_ID {self.domain}):\n{self.output()[-4000:]}"
        )

    def wait_scheduled(self, workers: int) -> None:
        """Every worker follows the arbiter's first schedule: the graph is in steady state."""
        self.wait_for(
            [r"\[actuator_arbiter\]: schedule r1"]
            + [rf"\[inference_worker_{i}\]: schedule r1: active" for i in range(workers)],
            STARTUP_S,
        )

    def measure(self, seconds: float) -> tuple[float, float]:
        start = time.time()
        time.sleep(seconds)
        return start, time.time()

    def interrupt(self) -> int:
        """SIGINT to ros2 launch alone (it stops its nodes); its exit code."""
        self.launch.send_signal(signal.SIGINT)
        return self.launch.wait(timeout=STOP_S)

    def commands(self, start: float, end: float) -> dict:
        self.probe.send_signal(signal.SIGINT)
        assert self.probe.wait(timeout=30) == 0
        stamps = json.loads(self.probe_path.read_text())
        self.last_command = stamps["last"]
        return inter_arrival_ms(stamps["wall"], stamps["mono"], start, end)

    def leftovers(self, pids: dict[str, int]) -> list[str]:
        """Node processes still there: any started pid, or any process given a params file of this launch
        (they live in the launch's log directory under ROS_LOG_DIR)."""
        alive = [f"{name} (pid {pid})" for name, pid in pids.items() if _running(pid)]
        found = subprocess.run(
            ["pgrep", "-af", "--", f"--params-file {self.log_dir}"], capture_output=True, text=True
        )
        return alive + found.stdout.splitlines()

    def close(self) -> None:
        for proc in (self.launch, self.probe):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _executable(pid: int) -> str:
    """The script a node process runs (`python SCRIPT --ros-args ...`)."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return argv[1].decode() if len(argv) > 1 else argv[0].decode()


@pytest.fixture
def params_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS)
    return path


def test_ros2_launch_runs_the_graph_at_100_hz_and_stops_on_sigint(
    colcon_install, ros_env, tmp_path, params_file
):
    graph = Graph(colcon_install, ros_env, tmp_path, f"params_file:={params_file}", f"num_workers:={WORKERS}")
    try:
        graph.wait_scheduled(WORKERS)
        pids = graph.node_pids()
        names = sorted(re.sub(r"-\d+$", "", n) for n in pids)
        assert names == sorted(
            ["mujoco_sim", "sensor_ingest", "actuator_arbiter"] + ["inference_worker"] * WORKERS
        )
        for name, pid in pids.items():  # the colcon-installed executables, from lib/rt_rl
            script = _executable(pid)
            assert script.startswith(str(colcon_install / "rt_rl" / "lib" / "rt_rl")), (name, script)
        time.sleep(1.0)  # past the first schedule's re-lays
        start, end = graph.measure(MEASURE_S)
        code = graph.interrupt()
        out = graph.output()
        stats = graph.commands(start, end)
        left = graph.leftovers(pids)
    finally:
        graph.close()
    print(f"ros2 launch, outside subscriber on /rt_rl/command over {MEASURE_S:g} s: {stats}")
    assert code == 0, out[-4000:]
    assert "process has died" not in out, out[-4000:]  # every node exits 0 on SIGINT
    assert out.count("process has finished cleanly") == len(pids), out[-4000:]
    assert left == []
    assert stats["messages"] >= 0.9 * 100 * MEASURE_S - 10, (
        stats,
        f"ROS_DOMAIN_ID {graph.domain}",
        out[-4000:],
    )
    assert 90 <= stats["rate_hz"] <= 110, stats
    assert stats["p99"] <= P99_MS, stats
    # the expanded params file (num_workers:=2 over the file's 1) beside the launch's logs
    expanded = [p for p in graph.log_dir.glob("*/params.yaml") if p.parent.name != "latest"]
    assert len(expanded) == 1 and "inference_worker_1:" in expanded[0].read_text()


@pytest.mark.parametrize("how", ["with_sim:=false", "robot section"])
def test_ros2_launch_robot_mode_without_the_sim(colcon_install, ros_env, tmp_path, params_file, how):
    """Robot mode, by `with_sim:=false` or by a params file with a `robot` section (the launch file's
    default `with_sim:=auto`): the graph drives a robot that is not part of it (here the sim node,
    started apart as a stand-in), starts and stops cleanly, and leaves the robot running."""
    graph_params, launch_args = params_file, ["with_sim:=false"]
    if how == "robot section":  # the robot's interface in one place; here the graph's default topics
        graph_params, launch_args = tmp_path / "robot_mode.yaml", []
        graph_params.write_text(PARAMS + "\nrobot:\n  ros__parameters:\n    sensor_rate_hz: 500.0\n")
    robot = subprocess.Popen(
        [sys.executable, "-m", "rt_rl.nodes.mujoco_sim", "--ros-args", "-r", "__node:=mujoco_sim",
         "--params-file", str(params_file)],
        env=ros_env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    graph = Graph(
        colcon_install,
        ros_env,
        tmp_path,
        f"params_file:={graph_params}",
        f"num_workers:={WORKERS}",
        *launch_args,
    )
    try:
        graph.wait_scheduled(WORKERS)
        pids = graph.node_pids()
        assert not any(n.startswith("mujoco_sim") for n in pids), pids
        assert len(pids) == 2 + WORKERS
        time.sleep(1.0)
        start, end = graph.measure(3.0)
        code = graph.interrupt()
        out = graph.output()
        stats = graph.commands(start, end)
        left = graph.leftovers(pids)
        assert robot.poll() is None, "the robot is not the graph's: it keeps running"
        robot.send_signal(signal.SIGINT)
        robot_code = robot.wait(timeout=30)
    finally:
        graph.close()
        if robot.poll() is None:
            robot.kill()
            robot.wait()
    print(f"ros2 launch in robot mode ({how}), commands to the robot over 3 s: {stats}")
    assert code == 0, out[-4000:]
    assert "process has died" not in out, out[-4000:]
    assert out.count("process has finished cleanly") == len(pids), out[-4000:]
    assert left == []
    # the graph's 100 Hz at the robot (an outside subscriber on a loaded machine can stall for a while:
    # seen: 0.33 s, its queue of 5 then delivered at once)
    assert stats["messages"] >= 0.7 * 100 * 3.0, (stats, f"ROS_DOMAIN_ID {graph.domain}", out[-4000:])
    assert 9.5 <= stats["p50"] <= 10.5, stats
    assert robot_code == 0


def test_ros2_launch_arbiter_killed_the_guard_publishes_the_safe_command(
    colcon_install, ros_env, tmp_path, params_file
):
    """SIGKILL to the arbiter under ros2 launch: it cannot publish its safe command, so the launch file
    runs safe_stop_guard (as `rt-rl launch` does in its own process), then the launch ends. The last
    command at an outside subscriber is the safe command (the default: zero)."""
    graph = Graph(  # reliable, as a controller's subscription: the guard waits for its acknowledgement
        colcon_install,
        ros_env,
        tmp_path,
        f"params_file:={params_file}",
        f"num_workers:={WORKERS}",
        reliable=True,
    )
    try:
        graph.wait_scheduled(WORKERS)
        pids = graph.node_pids()
        arbiter = next(pid for name, pid in pids.items() if name.startswith("actuator_arbiter"))
        start, end = graph.measure(3.0)  # the reliable probe may match a second or two after the first schedule
        os.kill(arbiter, signal.SIGKILL)
        code = graph.launch.wait(timeout=STOP_S)
        out = graph.output()
        time.sleep(0.5)  # a command still in flight
        stats = graph.commands(start, end)
        left = graph.leftovers(pids)
    finally:
        graph.close()
    assert stats["messages"] > 50, stats  # the policy was in control
    assert "safe_stop_guard: actuator_arbiter exited (-9) without its safe stop: published" in out, out[
        -3000:
    ]
    assert graph.last_command == [0.0, 0.0, 0.0], (graph.last_command, out[-3000:])
    assert code == 0, out[-3000:]  # ros2 launch ends by the Shutdown action after the guard
    assert left == []
