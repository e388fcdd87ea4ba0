"""`rt-rl bench faults`: every fault the graph is built to survive, on the live graph, seen from outside.

Each scenario starts the real graph (`rt-rl launch`, random policy, N = 3, T = 10 ms of synthetic
latency, 100 Hz, a distinct non-zero safe command) beside an outside rclpy recorder on the command and
actuation topics, injects its fault, and checks what a robot would have received:

| scenario | fault | expected |
|---|---|---|
| worker_kill | SIGKILL to worker 0 | respawned; no gap over 3 periods between ticks; fresh ratio >= 0.95 over the last 2 s (its slots fall back until it is counted lost, 1.5 s) |
| sensor_silence | the simulator frozen (SIGSTOP) for 1 s | safe command within max_action_age + 50 ms; one log line on entry, one on recovery; fresh again within 1 s |
| sim_kill | SIGKILL to the simulator (the robot side) | the graph stops (exit 3); the last command is the safe one |
| cpu_overload | two busy loops at normal priority (both cores) for 3 s | no gap over 3 periods between the arbiter's ticks (its clock is real-time); the overload is logged while it happens |
| respawn_after_reload | `rt-rl reload` of another checkpoint, then SIGKILL to worker 0 | the respawned worker runs the reloaded policy, not the params file's |
| full_disk | the run directory and the bag on a 1 MB tmpfs that fills up | the graph goes on (no gap over 3 periods); the recorder and the launcher say so in one line each; no traceback |
| bad_limits | `command_lower` with a NaN | refused at start: exit 2, one line |
| bad_checkpoint | a corrupt checkpoint file | refused at start: exit 2, one line |

Columns: commands lost (ticks of the window without a command at the outside recorder), worst gap
between two commands (ms, arrival times at the recorder, monotonic clock), non-finite or out-of-limit
values. `--repeat` runs everything that many times; `--out` writes the table (.md) and the data (.json).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rt_rl.bench.graph import BUSY_LOOP, bench_env
from rt_rl.policy.runtime import read_policy_info

REPO = Path(__file__).resolve().parents[3]
SAFE = [0.1, -0.1, 0.05]
LIMITS = (-1.0, 1.0)
PERIOD = 0.01
MAX_ACTION_AGE = 0.1
WORKERS = 3  # one more than T = 10 ms needs at 100 Hz: a killed worker costs no fresh tick

PARAMS = f"""
/**:
  ros__parameters:
    task: Hopper-v5
    num_workers: 2
    policy_checkpoint: {{checkpoint}}

mujoco_sim:
  ros__parameters:
    sensor_rate_hz: 100.0
    episode_seconds: 60.0
    terminate_when_unhealthy: false

sensor_ingest:
  ros__parameters:
    max_sample_age: 0.05

inference_worker:
  ros__parameters:
    torch_threads: 1

actuator_arbiter:
  ros__parameters:
    control_rate_hz: {1 / PERIOD}
    safe_command: {SAFE}
    max_action_age: {MAX_ACTION_AGE}
    command_lower: {{lower}}
"""

RECORDER = r"""
import json, signal, sys, time
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray
from rt_rl_interfaces.msg import Actuation

rclpy.init(signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
stop = []
for s in (signal.SIGINT, signal.SIGTERM):
    signal.signal(s, lambda *_: stop.append(1))
node = rclpy.create_node("outside_recorder")
commands, records = [], []
qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)  # a controller's QoS


def on_command(m):
    commands.append((time.monotonic(), list(m.data)))
    if len(commands) == 1:
        open(sys.argv[1] + ".receiving", "w").close()


def on_record(m):
    stamp = m.header.stamp.sec + m.header.stamp.nanosec * 1e-9
    records.append((time.monotonic(), m.kind, stamp, m.tick, m.action_age, m.observation_seq, m.worker_id))


node.create_subscription(Float64MultiArray, "/rt_rl/command", on_command, qos)
node.create_subscription(Actuation, "/rt_rl/actuation", on_record, qos)
executor = rclpy.executors.SingleThreadedExecutor()
executor.add_node(node)
open(sys.argv[1] + ".ready", "w").close()
while not stop:
    executor.spin_once(timeout_sec=0.02)
json.dump({"commands": commands, "records": records}, open(sys.argv[1], "w"))
node.destroy_node()
rclpy.try_shutdown()
"""


@dataclass
class Run:
    """One launch with the outside recorder: what the fault function needs and what it leaves."""

    out: str = ""
    code: int | None = None
    commands: list = field(default_factory=list)  # (arrival monotonic, data)
    records: list = field(default_factory=list)  # (arrival, kind, wall stamp, tick, age, seq, worker)
    marks: dict = field(default_factory=dict)  # monotonic times the fault set
    run_dir: Path = Path()
    env: dict = field(default_factory=dict)  # the launch's environment (its ROS domain, its key)


def outside_view(commands: list, records: list, since: float, until: float, period: float = PERIOD) -> dict:
    """What the outside recorder saw between `since` and `until`: commands lost (window ticks without
    a command), worst gap (ms), values not finite or outside the limits, fresh ratio. Pure: tested."""
    times = np.array([t for t, _ in commands if since <= t <= until])
    data = [d for t, d in commands if since <= t <= until]
    flat = np.array([v for d in data for v in d], dtype=float) if data else np.zeros(0)
    gaps = np.diff(times) if len(times) > 1 else np.zeros(0)
    expected = int((until - since) / period)
    kinds = [r[1] for r in records if since <= r[0] <= until]
    stamps = np.array([r[2] for r in records if since <= r[0] <= until and len(r) > 2])
    tick_gaps = np.diff(np.sort(stamps)) if len(stamps) > 1 else np.zeros(0)
    return {
        "worst_tick_gap_ms": round(float(tick_gaps.max()) * 1e3, 1) if len(tick_gaps) else math.inf,
        "commands": len(times),
        "commands_lost": max(0, expected - len(times)),
        "worst_gap_ms": round(float(gaps.max()) * 1e3, 1) if len(gaps) else math.inf,
        "non_finite": int(np.sum(~np.isfinite(flat))),
        "out_of_limits": int(np.sum((flat < LIMITS[0] - 1e-9) | (flat > LIMITS[1] + 1e-9))),
        "fresh_ratio": round(sum(k == "fresh" for k in kinds) / len(kinds), 4) if kinds else 0.0,
    }


def _child(parent: int, pattern: str) -> int:
    """A node process of the launcher: by its process name (a forked worker: rt_rl_worker_<i>) or
    command line (the other nodes: python -m rt_rl.nodes.<node>)."""
    by_name = ["pgrep", "-P", str(parent), pattern]
    out = subprocess.run(by_name, capture_output=True, text=True)
    if not out.stdout.split():
        out = subprocess.run(["pgrep", "-P", str(parent), "-f", pattern], capture_output=True, text=True)
    if not out.stdout.split():
        raise RuntimeError(f"no process {pattern} under the launcher")
    return int(out.stdout.split()[0])


def start_recorder(out: Path, env: dict, timeout: float = 60.0) -> subprocess.Popen:
    """The outside recorder (RECORDER) writing to `out`, once its subscriptions exist (the graph's
    first commands are then recorded)."""
    rec = subprocess.Popen([sys.executable, "-c", RECORDER, str(out)], env=env, cwd=out.parent)
    deadline = time.monotonic() + timeout
    while not Path(f"{out}.ready").exists():
        if rec.poll() is not None or time.monotonic() > deadline:
            rec.kill()
            raise RuntimeError("the outside recorder did not start")
        time.sleep(0.05)
    return rec


def start_graph(args: list[str], env: dict, timeout: float = 240.0) -> tuple[subprocess.Popen, list[str]]:
    """`rt-rl args...` until it says it is measuring (or it ends, or `timeout`): the process and its
    output so far."""
    proc = subprocess.Popen([sys.executable, "-m", "rt_rl.cli", *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        lines.append(line)
        if "measuring" in line or time.monotonic() > deadline:
            break
    return proc, lines


def launch(tmp: Path, fault: Callable[[subprocess.Popen, Run], None] | None, lower: str = "[-1.0]",
           checkpoint: str = "random", seconds: float = 6.0, run_dir: Path | None = None,
           extra: tuple[str, ...] = ()) -> Run:  # fmt: skip
    """The graph and the recorder; `fault(launcher, run)` once the graph measures (None: a start
    that must fail); then `seconds` more and SIGINT."""
    env = bench_env()
    params = tmp / "params.yaml"
    params.write_text(PARAMS.format(checkpoint=checkpoint, lower=lower))
    received = tmp / "received.json"
    rec = start_recorder(received, env)
    run = Run(run_dir=run_dir or tmp / "run", env=env)
    args = ["launch", str(params), "--workers", str(WORKERS), "--synthetic-latency", "0.01", "--run-dir",
            str(run.run_dir), "--summary", str(tmp / "summary.json"), *extra]  # fmt: skip
    proc, lines = start_graph(args, env)
    try:
        if fault is not None and proc.poll() is None:
            time.sleep(1.0)
            run.marks["start"] = time.monotonic()
            fault(proc, run)
            end = time.monotonic() + seconds
            while proc.poll() is None and time.monotonic() < end:
                time.sleep(0.05)
            if proc.poll() is None:
                run.marks["end"] = time.monotonic()
                proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=120)
        run.out, run.code = "".join(lines) + rest, proc.returncode
        run.marks.setdefault("end", time.monotonic())
    finally:
        if proc.poll() is None:
            proc.kill()
        rec.send_signal(signal.SIGTERM)
        rec.wait(timeout=30)
    got = json.loads(received.read_text()) if received.exists() else {"commands": [], "records": []}
    run.commands, run.records = got["commands"], got["records"]
    return run


def _log(run: Run, node: str) -> str:
    path = run.run_dir / "logs" / f"{node}.log"
    return path.read_text(errors="replace") if path.exists() else ""


# --- scenarios: (observed dict, passed) ---------------------------------------------------------------
def worker_kill(tmp: Path) -> tuple[dict, bool]:
    run = launch(tmp, lambda p, r: subprocess.run(["kill", "-KILL", str(_child(p.pid, "rt_rl_worker_0"))]))
    view = outside_view(run.commands, run.records, run.marks["start"], run.marks["end"])
    # until the arbiter counts the worker lost (worker_lost_after, 1.5 s) its slots fall back; then the
    # grid is re-laid without it, and again when the respawned one joins: fresh again by the end
    end = outside_view(run.commands, run.records, run.marks["end"] - 2.0, run.marks["end"])["fresh_ratio"]
    respawned = "respawn 1/" in run.out
    ok = respawned and view["worst_tick_gap_ms"] <= 3 * PERIOD * 1e3 and end >= 0.95
    return {**view, "fresh_last_2s": end, "respawned": respawned, "exit": run.code}, ok and not view[
        "non_finite"
    ]


def sensor_silence(tmp: Path) -> tuple[dict, bool]:
    def freeze(proc: subprocess.Popen, run: Run) -> None:
        sim = _child(proc.pid, "mujoco_sim")
        run.marks["stop"] = time.monotonic()
        subprocess.run(["kill", "-STOP", str(sim)])
        time.sleep(1.0)
        run.marks["cont"] = time.monotonic()
        subprocess.run(["kill", "-CONT", str(sim)])

    run = launch(tmp, freeze)
    view = outside_view(run.commands, run.records, run.marks["start"], run.marks["end"])
    stop, cont = run.marks["stop"], run.marks["cont"]
    safe_at = next(
        (r[0] - stop for r in run.records if stop <= r[0] <= cont and r[1] == "watchdog"), math.inf
    )
    back = next((r[0] - cont for r in run.records if r[0] > cont and r[1] == "fresh"), math.inf)
    ingest, arbiter = _log(run, "sensor_ingest"), _log(run, "actuator_arbiter")
    # once on entry, once on recovery (per silence: the frozen simulator's catch-up may add one)
    said = ingest.count("sensor back") >= 1 and ingest.count("sensor silent") - ingest.count(
        "sensor back"
    ) in (0, 1)
    said = said and 1 <= arbiter.count("watchdog: no action") == arbiter.count("fresh actions again") <= 2
    ok = safe_at <= MAX_ACTION_AGE + 0.05 and back <= 1.0 and said and not view["non_finite"]
    return {
        **view,
        "safe_after_ms": round(safe_at * 1e3),
        "fresh_again_ms": round(back * 1e3),
        "logged": said,
    }, ok


def sim_kill(tmp: Path) -> tuple[dict, bool]:
    run = launch(tmp, lambda p, r: subprocess.run(["kill", "-KILL", str(_child(p.pid, "mujoco_sim"))]))
    view = outside_view(run.commands, run.records, run.marks["start"], run.marks["end"])
    last = run.commands[-1][1] if run.commands else None
    ok = run.code == 3 and last is not None and np.allclose(last, SAFE)
    return {**view, "exit": run.code, "last_command": last}, ok and not view["non_finite"]


def cpu_overload(tmp: Path) -> tuple[dict, bool]:
    hogs: list[subprocess.Popen] = []

    def overload(proc: subprocess.Popen, run: Run) -> None:
        hogs.extend(subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(2))
        time.sleep(3.0)
        for h in hogs:
            h.kill()
            h.wait()

    try:
        run = launch(tmp, overload)
    finally:
        for h in hogs:
            if h.poll() is None:
                h.kill()
    view = outside_view(run.commands, run.records, run.marks["start"], run.marks["end"])
    said = "overload" in _log(run, "actuator_arbiter") or "overload" in run.out
    # the clock's own ticks (the arbiter's stamps): the outside recorder runs at normal priority and
    # waits behind the busy loops, as a robot's real-time controller would not
    ok = view["worst_tick_gap_ms"] <= 3 * PERIOD * 1e3 and not view["non_finite"] and said
    return {**view, "overload_logged": said}, ok


def respawn_after_reload(tmp: Path) -> tuple[dict, bool]:
    first, second = (
        "checkpoints/hopper_pipelined_skip_robust.pt",
        "checkpoints/hopper_pipelined_skip_robot.pt",
    )

    def reload_then_kill(proc: subprocess.Popen, run: Run) -> None:
        done = subprocess.run([sys.executable, "-m", "rt_rl.cli", "reload", second], env=run.env,
                              capture_output=True, text=True, timeout=180)  # fmt: skip
        run.marks["reload_exit"] = done.returncode
        subprocess.run(["kill", "-KILL", str(_child(proc.pid, "rt_rl_worker_0"))])

    run = launch(tmp, reload_then_kill, checkpoint=first, seconds=12.0)
    summary = json.loads((tmp / "summary.json").read_text()) if (tmp / "summary.json").exists() else {}
    versions = {w["id"]: w.get("policy_version", "") for w in summary.get("workers", [])}
    said = "with the policy the others run" in run.out
    ok = run.marks.get("reload_exit") == 0 and said and versions.get(0) == read_policy_info(second).version
    return {
        "reload_exit": run.marks.get("reload_exit"),
        "respawn_said": said,
        "worker_0_policy": versions.get(0),
    }, ok


def full_disk(tmp: Path) -> tuple[dict, bool]:
    disk = tmp / "small_disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        return {"error": f"cannot mount a tmpfs (root needed): {mounted.stderr.strip()}"}, False
    try:
        run = launch(tmp, lambda p, r: time.sleep(0.1), seconds=10.0, run_dir=disk / "run",
                     extra=("--record", str(disk / "bag")))  # fmt: skip
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
    view = outside_view(run.commands, run.records, run.marks["start"], run.marks["end"])
    said = [line for line in run.out.splitlines() if "No space" in line or "no space" in line.lower()]
    ok = (
        run.code == 130
        and "Traceback" not in run.out
        and bool(said)
        and view["worst_tick_gap_ms"] <= 3 * PERIOD * 1e3
        and not view["non_finite"]
    )
    return {**view, "exit": run.code, "said": [x.strip()[:120] for x in said[:3]]}, ok


def bad_limits(tmp: Path) -> tuple[dict, bool]:
    run = launch(tmp, None, lower="[-1.0, .nan, -1.0]")
    line = next((x for x in run.out.splitlines() if "error" in x), "")
    ok = run.code == 2 and "finite" in line and "Traceback" not in run.out and not run.commands
    return {"exit": run.code, "line": line.strip()[:160], "commands": len(run.commands)}, ok


def bad_checkpoint(tmp: Path) -> tuple[dict, bool]:
    bad = tmp / "corrupt.pt"
    bad.write_bytes(b"\x80\x04 not a checkpoint")
    run = launch(tmp, None, checkpoint=str(bad))
    line = next((x for x in run.out.splitlines() if "error" in x), "")
    ok = run.code == 2 and "corrupt.pt" in line and "Traceback" not in run.out and not run.commands
    return {"exit": run.code, "line": line.strip()[:160], "commands": len(run.commands)}, ok


SCENARIOS: dict[str, Callable[[Path], tuple[dict, bool]]] = {
    "worker_kill": worker_kill,
    "sensor_silence": sensor_silence,
    "sim_kill": sim_kill,
    "cpu_overload": cpu_overload,
    "respawn_after_reload": respawn_after_reload,
    "full_disk": full_disk,
    "bad_limits": bad_limits,
    "bad_checkpoint": bad_checkpoint,
}
EXPECTED = {line.split("|")[1].strip(): line.split("|")[3].strip() for line in __doc__.splitlines() if line.startswith("| ") and "---" not in line and "scenario" not in line}  # fmt: skip


def table(results: list[dict]) -> str:
    rows = ["| scenario | expected | observed | pass | commands lost | worst gap (ms) | non-finite |",
            "|---|---|---|---|---:|---:|---:|"]  # fmt: skip
    for r in results:
        o = r["observed"]
        shown = {
            k: v for k, v in o.items() if k not in ("commands_lost", "worst_gap_ms", "non_finite", "commands")
        }
        rows.append(
            f"| {r['scenario']} (run {r['run']}) | {EXPECTED.get(r['scenario'], '')} | {json.dumps(shown)} "
            f"| {'pass' if r['passed'] else 'FAIL'} | {o.get('commands_lost', '-')} | {o.get('worst_gap_ms', '-')} "
            f"| {o.get('non_finite', '-')} |"
        )
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rt-rl bench faults", description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="write OUT.md (table) and OUT.json")
    ap.add_argument("--keep", type=Path, default=None, help="keep each scenario's run directory under KEEP")
    a = ap.parse_args(argv)
    results = []
    for i in range(a.repeat):
        for name in a.scenarios:
            with tempfile.TemporaryDirectory(prefix=f"rt_rl_fault_{name}_") as tmp:
                where = Path(tmp) if a.keep is None else a.keep / f"{name}_{i + 1}"
                where.mkdir(parents=True, exist_ok=True)
                try:
                    observed, passed = SCENARIOS[name](where)
                except (RuntimeError, OSError, subprocess.TimeoutExpired, KeyError) as err:
                    observed, passed = {"error": f"{type(err).__name__}: {err}"}, False
            results.append({"scenario": name, "run": i + 1, "observed": observed, "passed": passed})
            print(f"{name} run {i + 1}: {'pass' if passed else 'FAIL'} {json.dumps(observed)}", flush=True)
    text = table(results)
    print("\n" + text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        head = f"# Faults on the live graph\n\n`rt-rl bench faults --repeat {a.repeat}`\n\n"
        a.out.with_suffix(".md").write_text(head + __doc__.split("\n\n", 1)[1] + "\n## Results\n\n" + text)
        a.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    return 0 if all(r["passed"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
