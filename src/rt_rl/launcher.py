"""`rt-rl launch`: the project's own supervisor of the graph (ros2 launch is not installable here).

It starts the nodes of `rt_rl.graph.describe_graph` stage by stage, each as its own process with
`--ros-args --params-file`, waits for each to report on /diagnostics (ready), waits for the arbiter's
first schedule (warm-up done), then measures for `--duration` seconds. It stops every child in order
(arbiter first, so its final statistics cover the whole window) on Ctrl-C, at the end of the duration,
or when a required child dies, and exits with a code that says what happened:

    0 ok   2 bad configuration   3 a required node died   4 startup timed out   130 interrupted
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rt_rl.core.auth import graph_key_env
from rt_rl.core.measurement import CpuWindow
from rt_rl.core.pool import pool_processes
from rt_rl.discovery import Discovery, DiscoveryError
from rt_rl.discovery import choose as choose_discovery
from rt_rl.discovery import settings_from_params as discovery_settings
from rt_rl.graph import (
    RECORDER,
    SIM_NODE,
    WORKER,
    NodeSpec,
    ParamsFileError,
    WorkerPool,
    describe_graph,
    expand_params,
    load_params,
    node_environment,
    node_settings,
    priority_notes,
    realtime_permitted,
    robot_mode,
    uses_realtime,
    wants_recording,
    worker_pool,
)
from rt_rl.graph import write_params as write_params_file
from rt_rl.prefork import PreforkedProcess

EXIT_OK, EXIT_CONFIG, EXIT_CHILD_DIED, EXIT_STARTUP, EXIT_INTERRUPTED = 0, 2, 3, 4, 130
MAX_RESPAWNS = 3
POOL_PERIOD = 0.5  # s between auto-pool checks
TIMELINE_PERIOD = 5.0  # s between timeline.jsonl records
STOP_TIMEOUT = 5.0
ARBITER = "actuator_arbiter"
ROBOT_STAGE = -2  # a simulated robot (--robot) starts before the recorder and stops after everything
PROBLEM_GRACE = 10.0  # s a node may report a problem during startup before the launch ends


class LaunchError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _die_with_parent() -> None:
    """Child side: SIGTERM when the launcher dies, even by SIGKILL, so nothing is left running."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _start_in_background() -> None:
    _die_with_parent()
    os.nice(10)


@dataclass
class Child:
    spec: NodeSpec
    args: list[str]
    log_path: Path
    echo: bool
    proc: subprocess.Popen | PreforkedProcess | None = None
    respawns: int = 0
    tail: deque = field(default_factory=lambda: deque(maxlen=20))
    preforked: PreforkedProcess | None = None  # forked early, released at its stage (first start only)
    gone: bool = False  # an optional node that exited and is not coming back
    retired: bool = False  # a worker the auto pool stopped (not a failure; may be started again)

    def prefork(self) -> None:
        for module in self.spec.preload:
            importlib.import_module(module)
        ros_args = self.args[self.args.index("--ros-args") :]
        title = self.spec.name.replace("inference_worker", "rt_rl_worker")
        self.preforked = PreforkedProcess(self.spec.module, [self.spec.executable, *ros_args], title)

    def start(self, background: bool = False) -> None:
        """Start (or restart) the node; `background`: at nice 10 while it imports and loads (a worker
        added to a running graph: torch's import must not take CPU from the running nodes; the worker
        returns to nice 0 once warm, rt_rl.nodes.inference_worker)."""
        log = self.log_path.open("a")
        if self.preforked is not None:
            self.proc, self.preforked = self.preforked, None
            self.proc.release()
        else:
            self.proc = subprocess.Popen(
                self.args,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches the launcher only; it stops children in order
                preexec_fn=_start_in_background if background else _die_with_parent,
                text=True,
                bufsize=1,
            )
        threading.Thread(target=self._pump, args=(self.proc, log), daemon=True).start()

    def discard(self) -> None:
        """A preforked child whose stage never started: let it go."""
        if self.preforked is not None:
            self.preforked.discard()
            self.preforked = None

    def _pump(self, proc, log) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if log is not None:
                try:
                    log.write(line)
                    log.flush()
                except OSError as err:  # a full disk: keep reading (a child must never block on its
                    # output), stop writing, say so once
                    print(
                        f"rt-rl launch: {self.spec.name}'s log stopped: {err.strerror or err}",
                        file=sys.stderr,
                    )
                    log = None
            self.tail.append(line.rstrip())
            if self.echo:
                print(f"[{self.spec.name}] {line.rstrip()}", flush=True)
        if log is not None:
            _close_quietly(log)

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the child so far (Linux /proc), for the per-node CPU budget."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, AttributeError, IndexError, ValueError):
            return None

    def rss_kb(self) -> int | None:
        """Resident memory of the child (Linux /proc), for the soak run's growth check."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except (OSError, AttributeError, ValueError):
            pass
        return None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def reason(self) -> str:
        """The child's own one-line error if it printed one, else its last line."""
        for line in reversed(self.tail):
            if ": error: " in line:
                return line
        return self.tail[-1] if self.tail else "(no output)"


class Monitor:
    """Listens to /diagnostics inside the launcher: readiness and the statistics for the summary."""

    def __init__(self) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray

        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
        self.node = rclpy.create_node("rt_rl_launcher", context=self.context)
        self.latest: dict[str, tuple[str, dict]] = {}
        self._lock = threading.Lock()
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._running = True
        self._thread.start()

    def _spin(self) -> None:
        while self._running and self.context.ok():
            self.executor.spin_once(timeout_sec=0.1)

    def _on_diag(self, msg) -> None:
        for status in msg.status:
            if not status.name.startswith("rt_rl/"):
                continue
            values = next((kv.value for kv in status.values if kv.key == "json"), "{}")
            with self._lock:
                self.latest[status.name[len("rt_rl/") :]] = (status.message, json.loads(values))

    def get(self, node: str) -> tuple[str, dict] | None:
        with self._lock:
            return self.latest.get(node)

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=1.0)
        self.node.destroy_node()
        self._rclpy.shutdown(context=self.context)


@dataclass
class LaunchOptions:
    params_file: str
    duration: float | None = None
    summary_path: str | None = None
    workers: int | str | None = None  # a count or "auto"
    synthetic_latency: float | None = None
    run_dir: str | None = None
    startup_timeout: float = 90.0
    echo_logs: bool = False
    quiet: bool = False
    record: str | None = None  # directory: record a bag there whatever the params file says
    robot: str | None = None  # params file of a simulated robot started beside the graph (robot mode)


class Launcher:
    def __init__(self, options: LaunchOptions) -> None:
        self.o = options
        self._stop = threading.Event()
        self._interrupted = False
        self.children: list[Child] = []
        self.cpu: dict[str, float | None] = {}
        self.cpu_window = CpuWindow()
        self.cpu_percent: dict[str, float | None] = {}
        self.record = False
        self.realtime = False  # the DDS profile with SCHED_FIFO receive threads (graph.node_environment)
        self.discovery: Discovery | None = None  # rt_rl.discovery: who can find the graph
        self.window_start_wall = float("inf")
        self.window_end_wall = float("inf")
        self.startup_s: float | None = None
        self.startup_times: dict[str, float] = {}  # s from its stage's start to a node's first report
        self.pool = WorkerPool(1)
        self.timing_notes: list[str] = []  # the params file against its checkpoint's training timing
        self._params_in: dict = {}
        self.pool_events: list[dict] = []  # auto pool: workers started and retired, when
        self._next_resize = 0.0
        self.with_sim = True  # robot mode (a `robot` section): the graph has no simulator
        self.robot_params: Path | None = None
        self._problem_since: dict[str, float] = {}

    def log(self, text: str) -> None:
        if not self.o.quiet:
            print(f"rt-rl launch: {text}", flush=True)

    # --- configuration ------------------------------------------------------------------------------
    def _prepare(self) -> tuple[Path, Path, int]:
        try:
            params = load_params(self.o.params_file)
        except ParamsFileError as err:
            raise LaunchError(str(err), EXIT_CONFIG) from None
        try:
            self.pool = worker_pool(params, self.o.workers)
        except ParamsFileError as err:
            raise LaunchError(str(err), EXIT_CONFIG) from None
        n = self.pool.processes
        self.with_sim = not robot_mode(params)
        if self.o.robot is not None:
            if self.with_sim:
                raise LaunchError(
                    f"--robot: params file '{self.o.params_file}' has no robot section (robot mode)",
                    EXIT_CONFIG,
                )
            try:
                robot_params = load_params(self.o.robot)
            except ParamsFileError as err:
                raise LaunchError(f"--robot: {err}", EXIT_CONFIG) from None
        if self.o.duration is not None and self.o.duration <= 0:
            raise LaunchError(f"--duration must be > 0 s, got {self.o.duration}", EXIT_CONFIG)
        worker_overrides = {}
        if self.o.synthetic_latency is not None:
            if self.o.synthetic_latency < 0:
                raise LaunchError(
                    f"--synthetic-latency must be >= 0 s, got {self.o.synthetic_latency}", EXIT_CONFIG
                )
            worker_overrides["synthetic_latency"] = float(self.o.synthetic_latency)
        run_dir = Path(self.o.run_dir or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)
        try:
            expanded = expand_params(params, n, worker_overrides, self.pool.auto)
        except ParamsFileError as err:
            raise LaunchError(f"params file '{self.o.params_file}': {err}", EXIT_CONFIG) from None
        if self.o.robot is not None:
            self.robot_params = write_params_file(robot_params, run_dir / "robot_params.yaml")
        self._params_in = params  # checked against the checkpoint once the children are forked
        self.record = wants_recording(params) or self.o.record is not None
        if self.record:  # the bag goes into the run directory unless the file or --record says otherwise
            rec = expanded.setdefault(RECORDER, {"ros__parameters": {}})["ros__parameters"]
            if self.o.record is not None:
                target = Path(self.o.record)
                try:
                    target.mkdir(parents=True, exist_ok=True)
                except OSError as err:
                    raise LaunchError(f"--record {self.o.record}: {err.strerror}", EXIT_CONFIG) from None
                if not os.access(target, os.W_OK):
                    raise LaunchError(f"--record {self.o.record}: directory is not writable", EXIT_CONFIG)
                rec["output_dir"] = str((target / "bag").resolve())
            rec.setdefault("output_dir", str((run_dir / "bag").resolve()))
            rec.setdefault("params_snapshot", str((run_dir / "params.yaml").resolve()))
        self.realtime = uses_realtime(expanded) and realtime_permitted()  # DDS receive threads too
        try:  # who can discover the graph: this host only unless `/**` says discovery_range: subnet
            self.discovery = choose_discovery(os.environ, *discovery_settings(params))
        except DiscoveryError as err:
            raise LaunchError(f"params file '{self.o.params_file}': {err}", EXIT_CONFIG) from None
        return run_dir, write_params_file(expanded, run_dir / "params.yaml"), n

    # --- main ---------------------------------------------------------------------------------------
    def run(self) -> int:
        try:
            run_dir, params_path, n = self._prepare()
            self.params_path = params_path  # the expanded file every node is started with
        except LaunchError as err:
            print(f"rt-rl launch: error: {err}", file=sys.stderr)
            return err.code
        t_launch = time.monotonic()
        # before any fork, Popen or participant
        os.environ.update(node_environment(dict(os.environ), self.realtime, self.discovery))
        os.environ.update(graph_key_env(os.environ))  # the run's identity (rt_rl.core.auth): never printed
        self.children = [
            Child(
                spec,
                self._command(spec, params_path),
                run_dir / "logs" / f"{spec.name}.log",
                self.o.echo_logs,
            )
            for spec in describe_graph(n, self.record, self.with_sim)
        ]
        if self.robot_params is not None:  # the robot first and last: it is there before the graph
            spec = replace(SIM_NODE, stage=ROBOT_STAGE)
            log = run_dir / "logs" / f"{spec.name}.log"
            self.children.insert(
                0, Child(spec, self._command(spec, self.robot_params), log, self.o.echo_logs)
            )
        # Fork the nodes that preload heavy modules now, while this process is single-threaded
        # (no DDS, no log pumps yet): torch is imported once instead of once per worker.
        for child in self.children:
            if child.spec.preload:
                child.prefork()
        # Only now: loading a checkpoint starts torch's thread pools, and a child forked after that
        # spins in them (measured: each demo worker at 46 % of a core instead of 6 %).
        self.timing_notes = trained_timing_notes(self._params_in)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        monitor = Monitor()
        self._monitor = monitor  # a respawn reads the other workers' running policy from it
        code, message = EXIT_OK, ""
        t_measure = None
        try:
            self.log(
                f"{len(self.children)} nodes, {n} worker(s), ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0')}, "
                f"logs in {run_dir}/logs"
            )
            self.log(self.discovery.note)
            for line in self.timing_notes:  # before anything runs: the user may stop here
                self.log(f"not as trained: {line}")
            for line in priority_notes(self._params_in):
                self.log(f"priorities: {line}")
            self._start_stages(monitor)
            t_sched = time.monotonic()
            self._wait_for(monitor, ["actuator_arbiter"], lambda st: st[0] == "scheduled", "first schedule")
            self.log(f"first schedule {time.monotonic() - t_sched:.1f} s after the arbiter was ready")
            t_measure = time.monotonic()
            self.startup_s = t_measure - t_launch
            self.window_start_wall = time.time()
            self.cpu_window.open(t_measure, self._cpu_now())
            self.log(
                "graph ready and scheduled; measuring"
                + (f" for {self.o.duration:g} s" if self.o.duration else " until Ctrl-C")
            )
            self._supervise(monitor, t_measure, run_dir / "timeline.jsonl")
        except LaunchError as err:
            code, message = err.code, str(err)
        finally:
            measured = time.monotonic() - t_measure if t_measure else 0.0
            self.window_end_wall = time.time()  # before the arbiter stops: the policy is in control
            self.cpu = self._cpu_now()
            self.cpu_percent = self.cpu_window.percent(time.monotonic(), self.cpu)
            self._stop_all(monitor)
            for s, handler in previous.items():
                signal.signal(s, handler)
        if self._interrupted and code == EXIT_OK:
            code = EXIT_INTERRUPTED
        summary = self._summary(monitor, n, run_dir, measured, code, message)
        monitor.close()
        if message:
            print(f"rt-rl launch: error: {message}", file=sys.stderr)
        if t_measure is not None:
            print_summary(summary)
            path = Path(self.o.summary_path) if self.o.summary_path else run_dir / "summary.json"
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(summary, indent=2))
                self.log(f"summary written to {path}")
            except OSError as err:  # a full disk: the table above is the summary
                print(f"rt-rl launch: summary not written to {path}: {err.strerror or err}", file=sys.stderr)
        return code

    def _timeline_record(self, monitor: Monitor, elapsed: float) -> dict:
        arbiter = (monitor.get("actuator_arbiter") or ("", {}))[1]
        return {
            "t": round(elapsed, 2),
            "fresh_action_ratio": arbiter.get("fresh_action_ratio"),
            "recent_period_ms": arbiter.get("control", {}).get("recent_period_ms"),
            "ticks": arbiter.get("control", {}).get("ticks"),
            "rss_kb": {c.spec.name: c.rss_kb() for c in self.children},
            "cpu_s": {k: (round(v, 3) if v is not None else None) for k, v in self._cpu_now().items()},
        }

    def _cpu_now(self) -> dict[str, float | None]:
        return {c.spec.name: c.cpu_seconds() for c in self.children}

    def _on_signal(self, signum, _frame) -> None:
        if self._stop.is_set():
            return
        self._interrupted = True
        self.log(f"{signal.Signals(signum).name}: stopping the graph")
        self._stop.set()

    def _command(self, spec: NodeSpec, params_path: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            spec.module,
            "--ros-args",
            "-r",
            f"__node:={spec.name}",
            "--params-file",
            str(params_path),
        ]

    def _start_stages(self, monitor: Monitor) -> None:
        """Start stage by stage; say when each node became ready (where the startup time goes)."""
        t0 = time.monotonic()
        for stage in sorted({c.spec.stage for c in self.children}):
            group = [c for c in self.children if c.spec.stage == stage]
            started = time.monotonic()
            for child in group:
                child.start()
            waiting = list(group)
            while waiting:
                self._wait_for(monitor, [c.spec.name for c in waiting], lambda st: True, "ready")
                done = [c for c in waiting if monitor.get(c.spec.name) is not None]
                for c in done:
                    self.startup_times[c.spec.name] = round(time.monotonic() - started, 2)
                    waiting.remove(c)
                names = ", ".join(f"{c.spec.name} ({time.monotonic() - started:.1f} s)" for c in done)
                self.log(f"ready at {time.monotonic() - t0:.1f} s: {names}")

    def _wait_for(self, monitor: Monitor, names: list[str], ok, what: str) -> None:
        """Until any of the nodes `names` reports a status that satisfies `ok`."""
        deadline = time.monotonic() + self.o.startup_timeout
        while time.monotonic() < deadline:
            if self._stop.is_set():
                raise LaunchError("interrupted during startup", EXIT_INTERRUPTED)
            self._check_children()
            self._check_problems(monitor)
            for name in names:
                status = monitor.get(name)
                if status is not None and ok(status):
                    return
            time.sleep(0.02)
        raise LaunchError(f"{names[0]}: no {what} within {self.o.startup_timeout:g} s", EXIT_STARTUP)

    def _configured(self, node: str, name: str) -> Any:
        """A node's parameter as the expanded params file sets it (None if it does not)."""
        try:
            return node_settings(load_params(getattr(self, "params_path", "")), node).get(name)
        except (OSError, ValueError, AttributeError):
            return None

    def _statuses(self) -> dict[str, dict]:
        """Each node's newest diagnostics values (empty before the monitor runs)."""
        monitor = getattr(self, "_monitor", None)
        if monitor is None:
            return {}
        return {c.spec.name: (monitor.get(c.spec.name) or ("", {}))[1] for c in self.children}

    def _check_problems(self, monitor: Monitor) -> None:
        """A node that reports a `problem` (e.g. the ingest: no joint state on its topic, a joint
        missing) for PROBLEM_GRACE seconds while the graph starts ends the launch with that one line."""
        now = time.monotonic()
        for child in self.children:
            problem = ((monitor.get(child.spec.name) or ("", {}))[1]).get("problem")
            if not problem:
                self._problem_since.pop(child.spec.name, None)
                continue
            since = self._problem_since.setdefault(child.spec.name, now)
            if now - since > PROBLEM_GRACE:
                raise LaunchError(f"{child.spec.name}: {problem}", EXIT_CONFIG)

    def _check_children(self) -> None:
        for child in self.children:
            if child.proc is None or child.gone or child.retired or child.alive():
                continue
            rc = child.proc.returncode
            time.sleep(0.2)  # let the pump thread read the child's last words
            if rc == EXIT_CONFIG:
                raise LaunchError(f"{child.spec.name} refused to start: {child.reason()}", EXIT_CONFIG)
            if child.spec.respawn and child.respawns < MAX_RESPAWNS and not self._stop.is_set():
                child.respawns += 1
                running = respawn_policy(self._statuses(), child.spec.name)
                note = ""
                key = f"{child.spec.name}:policy_checkpoint"  # node-specific: beats the params file's section
                started_with = _override(child.args, key) or self._configured(
                    child.spec.name, "policy_checkpoint"
                )
                if running is not None and running != started_with:
                    child.args = [*child.args, "-p", f"{key}:={running}"]
                    note = f" with the policy the others run ({running})"
                self.log(f"{child.spec.name} exited ({rc}); respawn {child.respawns}/{MAX_RESPAWNS}{note}")
                child.start()
                continue
            if not child.spec.required and not child.spec.respawn:
                if not child.gone:
                    child.gone = True
                    self.log(f"{child.spec.name} exited ({rc}): {child.reason()}; the graph goes on")
                continue
            raise LaunchError(f"{child.spec.name} died (exit code {rc}): {child.reason()}", EXIT_CHILD_DIED)

    def _supervise(self, monitor: Monitor, t0: float, timeline_path: Path) -> None:
        """Watch the children until the end; every TIMELINE_PERIOD append the arbiter's rolling
        statistics and each node's CPU and resident memory to timeline.jsonl (soak runs read it)."""
        from tqdm import tqdm

        next_record = t0

        show = self.o.duration is not None and sys.stdout.isatty() and not self.o.quiet
        timeline = timeline_path.open("a")
        with (
            contextlib.ExitStack() as closing,
            tqdm(
                total=self.o.duration or 0,
                disable=not show,
                unit="s",
                desc="measuring",
                bar_format="{desc} {bar} {n:.0f}/{total:.0f} s {postfix}",
                leave=False,
            ) as bar,
        ):
            # a full disk fails the last buffered write again at close: that says nothing new
            closing.callback(_close_quietly, timeline)
            while not self._stop.is_set():
                self._check_children()
                elapsed = time.monotonic() - t0
                if show and elapsed - bar.n >= 1.0:
                    status = monitor.get("actuator_arbiter")
                    ratio = status[1].get("fresh_action_ratio") if status else None
                    bar.set_postfix_str(f"fresh ratio {ratio}" if ratio is not None else "", refresh=False)
                    bar.update(int(elapsed - bar.n))
                if self.pool.auto and time.monotonic() >= self._next_resize:
                    self._next_resize = time.monotonic() + POOL_PERIOD
                    self._resize_pool(monitor, elapsed)
                if time.monotonic() >= next_record and timeline is not None:
                    next_record += TIMELINE_PERIOD
                    try:
                        timeline.write(json.dumps(self._timeline_record(monitor, elapsed)) + "\n")
                        timeline.flush()
                    except OSError as err:  # a full disk: the graph goes on, the timeline stops
                        print(f"rt-rl launch: timeline.jsonl stopped: {err.strerror or err}; the graph goes on",
                              file=sys.stderr, flush=True)  # fmt: skip
                        timeline = None
                if self.o.duration is not None and elapsed >= self.o.duration:
                    return
                time.sleep(0.05)

    def _resize_pool(self, monitor: Monitor, elapsed: float) -> None:
        """Auto pool: keep `warm_spares` idle workers beside the arbiter's active ones (rt_rl.core.pool.
        pool_processes decides; starting one costs a process start, so spares take the jumps in T)."""
        pool = (monitor.get("actuator_arbiter") or ("", {}))[1].get("pool") or {}
        if pool.get("wanted") is None:
            return
        workers = {
            c.spec.parameters["worker_id"]: c
            for c in self.children
            if c.spec.name.startswith("inference_worker_")
        }
        alive = sorted(w for w, c in workers.items() if c.alive() and not c.retired)
        start, retire = pool_processes(
            alive, pool.get("active", []), pool["wanted"], self.pool.warm_spares, self.pool.processes
        )
        for w in retire:
            workers[w].retired = True
            workers[w].proc.send_signal(signal.SIGINT)
            self.pool_events.append({"t": round(elapsed, 2), "retire": w})
            self.log(f"auto pool: {pool['wanted']} active, retiring spare inference_worker_{w}")
        for w in start:
            child = workers[w]
            if child.alive():
                continue  # a retired one still shutting down: next round
            child.retired, child.respawns = False, 0
            child.start(background=True)
            self.pool_events.append({"t": round(elapsed, 2), "start": w})
            self.log(f"auto pool: {pool['wanted']} active, starting inference_worker_{w} as a spare")

    def _stop_all(self, monitor: Monitor) -> None:
        """Stage by stage in reverse start order, each stage's nodes together, the next stage once they
        have exited. The arbiter first and alone (it drives the rest): its stop ends with the safe command
        (rt_rl.core.safe_stop) and nothing publishes a command after it; if it ended without one
        (killed, crashed, or hung and killed here) the launcher publishes it (`_guard_safe_command`)
        before anything else stops, so the sim or robot receives it. The recorder after every
        publisher it records: the bag holds all they published (and the safe command)."""
        for child in self.children:
            child.discard()
        arbiter = [c for c in self.children if c.spec.name == ARBITER]
        rest = [c for c in self.children if c not in arbiter]
        groups = [arbiter] + [
            [c for c in rest if c.spec.stage == stage]
            for stage in sorted({c.spec.stage for c in rest}, reverse=True)
        ]
        for group in groups:
            if any(c.spec.name == RECORDER and c.alive() for c in group):
                time.sleep(0.2)  # the publishers' last messages in flight
            for child in group:
                if child.alive():
                    child.proc.send_signal(signal.SIGINT)
            for child in group:
                self._reap(child)
            if group is not arbiter:
                continue
            for child in arbiter:  # exit 0: its own safe stop ran; 2: it never started
                if child.proc is not None and child.proc.returncode not in (0, EXIT_CONFIG):
                    self._guard_safe_command(monitor, child)

    def _guard_safe_command(self, monitor: Monitor, arbiter: Child) -> None:
        """The arbiter ended without its own safe stop (killed, crashed, or a hang this launcher ended):
        publish its safe command on its command topic from here, read from the params file the arbiter
        was started with (robot section applied) by the arbiter's own rule
        (rt_rl.core.safe_stop.safe_stop_plan), with a fresh publisher that first matches the
        subscribers the graph knows, then waits for their acknowledgement. Until then the robot holds
        the arbiter's last command (the launcher notices a death within about 0.3 s). Failures are
        printed even with --quiet.

        What no process here can cover: the launcher killed together with the arbiter (SIGKILL to both,
        the host losing power, a kernel panic) or the link to the robot cut. Only the robot can stop
        itself then: its controller needs a command timeout that applies a safe command (or stops)
        when commands stop coming, like joint_trajectory_controller's `cmd_timeout` or a hardware
        interface's own watchdog; a forward_command_controller has none and holds the last command."""
        from rt_rl.nodes.safe_stop_guard import arbiter_settings, publish_safe_command

        returncode = arbiter.proc.returncode
        try:
            settings = arbiter_settings(arbiter.args[arbiter.args.index("--params-file") + 1])
            line = publish_safe_command(monitor.node, settings)
        except (ValueError, TypeError, IndexError) as err:  # ParamsFileError is a ValueError
            print(f"rt-rl launch: {ARBITER} exited ({returncode}); no safe command: {err}", file=sys.stderr)
            return
        except Exception as err:  # the launcher's own DDS is gone: say so, stop the rest anyway
            print(
                f"rt-rl launch: {ARBITER} exited ({returncode}); publishing its safe command failed: {err}",
                file=sys.stderr,
            )
            return
        self.log(f"{ARBITER} exited ({returncode}) without its safe stop: the launcher published its {line}")

    def _reap(self, child: Child) -> None:
        if child.proc is None:
            return
        try:
            child.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.log(f"{child.spec.name} did not stop in {STOP_TIMEOUT:g} s; killing it")
            child.proc.kill()
            child.proc.wait()

    # --- summary ------------------------------------------------------------------------------------
    def _summary(self, monitor: Monitor, n: int, run_dir: Path, measured: float, code: int, msg: str) -> dict:
        time.sleep(0.2)  # final diagnostics in flight
        arbiter = (monitor.get("actuator_arbiter") or ("", {}))[1]
        sim = (monitor.get("mujoco_sim") or ("", {}))[1]
        window = episodes_in_window(
            sim.get("recent_episodes", []), self.window_start_wall, self.window_end_wall
        )
        window_returns = [e[1] for e in window]
        window_steps = [e[2] for e in window]
        workers = {w["id"]: w for w in arbiter.get("workers", [])}
        for i in range(n):
            extra = (monitor.get(f"inference_worker_{i}") or ("", {}))[1]
            workers.setdefault(i, {"id": i, "actions": 0, "inference_ms": {"p50": None, "p99": None}})
            workers[i]["policy_version"] = extra.get("policy_version")
            workers[i]["compute_ms_p50"] = extra.get("compute_ms_p50")
            for key in (
                "late_observations",
                "missing_observations",
                "leftover_observations",
                "observation_wait_ms",
                "timing_differences",
                "pipeline_resets",
            ):  # since start
                workers[i][key] = extra.get(key)
        published: dict[str, int] = {}  # topic -> messages, summed over the nodes' final reports
        for child in self.children:
            for topic, count in (
                (monitor.get(child.spec.name) or ("", {}))[1].get("published") or {}
            ).items():
                published[topic] = published.get(topic, 0) + count
        return {
            "published": dict(sorted(published.items())),
            "params_file": self.o.params_file,
            "run_dir": str(run_dir),
            "exit_code": code,
            "error": msg or None,
            "num_workers": n,
            "pool": {
                "auto": self.pool.auto,
                "warm_spares": self.pool.warm_spares,
                "events": self.pool_events,
                **(arbiter.get("pool") or {}),
            },
            "synthetic_latency_s": self.o.synthetic_latency,
            "measured_s": round(measured, 2),
            "startup_s": round(self.startup_s, 2) if self.startup_s is not None else None,
            "window_start_wall": self.window_start_wall if self.startup_s is not None else None,
            "startup_by_node_s": self.startup_times,
            "control": arbiter.get("control", {}),
            "fresh_action_ratio": arbiter.get("fresh_action_ratio"),
            "predicted_fresh_action_ratio": arbiter.get("predicted_fresh_action_ratio"),
            "inference_ms_mean": arbiter.get("inference_ms_mean"),
            "fallback_ticks": arbiter.get("fallback_ticks"),
            "superseded_actions": arbiter.get("superseded_actions"),
            "pacer": arbiter.get("pacer"),
            "tick_grace": arbiter.get("tick_grace"),
            "watchdog_ticks": arbiter.get("watchdog_ticks"),
            "rejected_actions": arbiter.get("rejected_actions"),
            "rejected_by_reason": arbiter.get("rejected_by_reason"),
            # per node: messages whose tag verified, forged ones by kind, unauthenticated (rt_rl.core.auth)
            "auth": {
                c.spec.name: (monitor.get(c.spec.name) or ("", {}))[1].get("auth") for c in self.children
            },
            "action_age_ms": arbiter.get("action_age_ms", {}),
            "schedule": arbiter.get("schedule"),
            "engagement": arbiter.get("engagement"),
            "rates_hz": arbiter.get("rates_hz"),
            "watchdog_spells": arbiter.get("watchdog_spells"),
            "workers": [workers[k] for k in sorted(workers)],
            "not_as_trained": self.timing_notes,  # the params file against the checkpoint, at start
            "sim": {
                "task": sim.get("task"),
                "env_dt_ms": sim.get("env_dt_ms"),
                "real_time_factor": sim.get("real_time_factor"),
                "overruns": sim.get("overruns"),
                # episodes that started and ended inside the measurement window (policy in control)
                "episodes": len(window_returns),
                "mean_episode_return": round(sum(window_returns) / len(window_returns), 2)
                if window_returns
                else None,
                "mean_episode_steps": round(sum(window_steps) / len(window_steps), 1)
                if window_steps
                else None,
                "episode_returns": [round(r, 2) for r in window_returns],
                "episodes_since_start": sim.get("episodes"),
            },
            "ingest": {
                k: ((monitor.get("sensor_ingest") or ("", {}))[1]).get(k)
                for k in ("observations", "episode", "resets_seen", "bad_joint_states", "repeated_samples")
            },
            "bag": (monitor.get(RECORDER) or ("", {}))[1].get("path"),
            "cpu_seconds": {k: (round(v, 2) if v is not None else None) for k, v in self.cpu.items()},
            # steady state: CPU used inside the measurement window (startup excluded), % of one core
            "cpu_percent": self.cpu_percent,
            "dds_profile": Path(os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE", "")).name or None,
            "discovery": self.discovery.range if self.discovery else None,  # loopback: this host only
            "cpu_percent_total": round(sum(v for v in self.cpu_percent.values() if v is not None), 1)
            if self.cpu_percent
            else None,
            "measurement": (
                "arbiter: control period = difference of consecutive command publish times (monotonic clock, "
                "taken right after publish); action age = tick wall time minus the JointState stamp of the "
                "observation behind the actuated action (fresh ticks only); inference = worker's "
                "inference_end - inference_start (worker clock, includes synthetic latency). Window: from "
                "the first fresh action once every worker follows the first schedule, to shutdown; counts "
                "(fallbacks, rejections) are inside the window."
            ),
        }


def episodes_in_window(episodes: list, start: float, end: float) -> list:
    """The sim's finished episodes ([start wall, return, steps, end wall]) that started and ended inside
    the measurement window [start, end]: the policy was in control for all of it. On stop the arbiter
    goes first and the sim steps on with the last command, so the episode it was in falls and the
    next ones end within steps; counting them put episodes of return 2-30 into the live mean."""
    return [e for e in episodes if e[0] >= start and (e[3] if len(e) > 3 else e[0]) <= end]


def trained_timing_notes(params: dict) -> list[str]:
    """How the params file's timing differs from the one its checkpoint was trained for (empty for
    'random', or a checkpoint without a training timing; a checkpoint that does not load is the
    worker's error to report)."""
    from rt_rl.policy.runtime import read_policy_info
    from rt_rl.policy.timing_check import configured_differences

    checkpoint = str(node_settings(params, WORKER).get("policy_checkpoint", "random"))
    if checkpoint == "random":
        return []
    try:
        trained = dict(read_policy_info(checkpoint).timing)
    except (OSError, ValueError):
        return []
    return configured_differences(trained, params) if trained else []


def _close_quietly(f) -> None:
    with contextlib.suppress(OSError):
        f.close()


def respawn_policy(statuses: dict[str, dict], dead: str) -> str | None:
    """The policy a respawned worker should start with: the one the other workers report running
    (after a hot reload it is not the params file's), the most common if they differ; None if no other
    worker has reported one."""
    running = [
        v.get("policy_checkpoint")
        for name, v in statuses.items()
        if name.startswith("inference_worker") and name != dead and v.get("policy_checkpoint")
    ]
    return max(set(running), key=running.count) if running else None


def _override(args: list[str], name: str) -> str | None:
    """The value of the last `-p name:=value` in a node's arguments."""
    found = None
    for a, b in itertools.pairwise(args):
        if a == "-p" and b.startswith(f"{name}:="):
            found = b.split(":=", 1)[1]
    return found


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def print_summary(s: dict) -> None:
    c = s.get("control", {})
    period = c.get("period_ms", {}) or {}
    age = s.get("action_age_ms", {}) or {}
    sim = s.get("sim", {})
    rows = [
        (
            "control rate target / achieved (Hz)",
            f"{_fmt(c.get('rate_hz_target'))} / {_fmt(c.get('rate_hz_achieved'))}",
        ),
        (
            "control period p50 / p99 / max (ms)",
            f"{_fmt(period.get('p50'))} / {_fmt(period.get('p99'))} / {_fmt(period.get('max'))}",
        ),
        (
            "fresh action ratio (measured / predicted)",
            f"{_fmt(s.get('fresh_action_ratio'))} / {_fmt(s.get('predicted_fresh_action_ratio'))}",
        ),
        (
            "fallback ticks / watchdog / rejected",
            f"{_fmt(s.get('fallback_ticks'))} / {_fmt(s.get('watchdog_ticks'))} / {_fmt(s.get('rejected_actions'))}",
        ),
        (
            "action age p50 / p99 / max (ms)",
            f"{_fmt(age.get('p50'))} / {_fmt(age.get('p99'))} / {_fmt(age.get('max'))}",
        ),
        ("inference time mean (ms)", _fmt(s.get("inference_ms_mean"))),
        ("sim real-time factor", _fmt(sim.get("real_time_factor"))),
        ("superseded actions", _fmt(s.get("superseded_actions"))),
        (
            "sim episodes / mean return",
            f"{_fmt(sim.get('episodes'))} / {_fmt(sim.get('mean_episode_return'))}",
        ),
    ]
    rates = s.get("rates_hz") or {}
    if len(rates) > 1:  # the rate was changed while running: each rate's ticks and fresh ones
        rows.append(
            (
                "ticks (fresh) per control rate",
                ", ".join(f"{hz} Hz: {r['ticks']} ({r['fresh']})" for hz, r in rates.items()),
            )
        )
    ticks = (s.get("engagement") or {}).get("ticks") or {}
    if ticks.get("engaging", 0) > 0 and any(ticks.get(k) for k in ("disengaging", "inactive")):
        rows.append(
            (
                "ticks engaging / active / disengaging / inactive",
                " / ".join(str(ticks.get(k, 0)) for k in ("engaging", "active", "disengaging", "inactive")),
            )
        )
    pool = s.get("pool") or {}
    if pool.get("auto"):
        spares = [w for w in pool.get("alive", []) if w not in pool.get("active", [])]
        rows.append(
            (
                "auto pool: active / warm spares",
                f"{len(pool.get('active', []))} {pool.get('active')} / {len(spares)} {spares} "
                f"(started {sum('start' in e for e in pool.get('events', []))}, "
                f"retired {sum('retire' in e for e in pool.get('events', []))})",
            )
        )
    for w in s.get("workers", []):
        inf = w.get("inference_ms", {}) or {}
        rows.append(
            (
                f"worker {w['id']} actions, inference p50/p99 (ms)",
                f"{_fmt(w.get('actions'))}, {_fmt(inf.get('p50'))} / {_fmt(inf.get('p99'))}",
            )
        )
    width = max(len(r[0]) for r in rows)
    print(
        f"\nrt_rl summary ({s.get('measured_s')} s measured, {s.get('num_workers')} worker(s), {sim.get('task')}, "
        f"ready and scheduled {_fmt(s.get('startup_s'))} s after launch)"
    )
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    cpu = s.get("cpu_percent") or {}
    if cpu:
        short = {"mujoco_sim": "sim", "sensor_ingest": "ingest", "actuator_arbiter": "arbiter"}
        parts = ", ".join(
            f"{short.get(k, k.replace('inference_worker_', 'w'))} {_fmt(v)}" for k, v in cpu.items()
        )
        print(
            f"  {'CPU, % of one core (steady state)':<{width}}  {_fmt(s.get('cpu_percent_total'))}: {parts}"
        )
    if s.get("bag"):
        print(f"  {'bag':<{width}}  {s['bag']}")
    differences = sorted({d for w in s.get("workers", []) for d in (w.get("timing_differences") or [])})
    for line in differences:
        print(f"  {'not as trained':<{width}}  {line}")
    print()
