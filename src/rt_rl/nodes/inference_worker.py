"""inference_worker: one copy of the policy, started on its slots of the arbiter's shared schedule.

At each of its slots it takes the observation built for that slot (from `<observation_topic>/worker_<id>`,
which carries only this worker's observations; a KEEP_LAST 1 reader taken at the slot: no callback per
observation; one tagged with an earlier slot is a leftover that came too late for it and is dropped),
runs one policy step, waits out `synthetic_latency` (a known extra compute
time that emulates a larger model, as the paper emulates model size by a delay of K frames; it sleeps
and spins only the last 0.2 ms, so it costs almost no CPU, like a model on its own accelerator, and
ends on time), and publishes an Action carrying its id, the
inference start/end, when its slot was planned to end (the arbiter actuates it no sooner), the policy version and the provenance of the action: the stamp and seq of the
newest observation the returned action depends on. For the instant MLP that is the observation just
taken; a pipelined policy returns the head computed at its previous call, so it is the observation of
that call (`observation_delay` calls back). Until a pipeline has seen enough observations of the
current episode its output depends on none, and nothing is published. Before the first schedule
arrives the worker runs once per new observation so the arbiter can measure T.

Grids change while the worker runs (`GridTimeline`): the old grid's slots are served until the new
grid's epoch. A worker the schedule does not list is a warm spare (an auto-sized pool keeps some):
it takes no slots, and every `SPARE_HEARTBEAT` seconds it runs the policy once on a zero input
(keeping its caches warm), resets the pipeline and publishes that action with `schedule_revision` 0
as a heartbeat: the arbiter measures its inference time, knows it is alive and never actuates it.

Hot reload: `policy_checkpoint` may be set while the worker runs (the standard parameter services,
`rt-rl reload`). The parameter service's thread loads and checks the new checkpoint (never the
inference thread) and refuses one that does not load or does not take the ingest's observations: the
set fails with that one line as its reason and the old policy keeps running. An accepted one is
shadow-run beside the live policy until its output depends on a real observation, then swapped in at
that slot (rt_rl.policy.swap); the set succeeds once it is live, so a caller that goes worker by
worker never has two workers switching at once.

Models trained elsewhere (`.onnx`, TorchScript `.pt`) run through a contract (`policy_contract`, else
`<model>.contract.yaml` beside the model; docs/policy_contract.md), which maps the ingest's observation
to the model's input and its output to the command; a contract that does not fit the task, the model's
shapes or the history the ingest appends is refused at start with one line. A reloaded external model
takes the contract beside it if there is one, else `policy_contract`.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.parameter import Parameter
from rt_rl_interfaces.msg import Action, Observation

from rt_rl.core.auth import action_fields, observation_fields, schedule_fields
from rt_rl.core.grid import GridTimeline
from rt_rl.core.measurement import Ring, percentiles_ms
from rt_rl.core.slots import SlotFollower, for_this_slot
from rt_rl.graph import SENSOR, QosSpec, worker_observation_topic
from rt_rl.nodes.common import (
    REALTIME_PRIORITY,
    ConfigError,
    Param,
    RtNode,
    declare,
    float64_array,
    from_time_msg,
    run,
    schedule_from_msg,
    set_stamp,
    set_thread_realtime,
    sleep_until_wall,
    statistics_rate,
    to_time_msg,
    topic_param,
    wait_until_monotonic,
)
from rt_rl.policy.external import DEFAULT_PROVIDERS, ExternalPolicy
from rt_rl.policy.provenance import Provenance
from rt_rl.policy.runtime import Policy, external_ingest_history, load_policy, reload_contract
from rt_rl.policy.swap import IngestContract, InputMap, PolicySwap, Switch, check_candidate
from rt_rl.policy.timing_check import timing_differences
from rt_rl.tasks import TASKS, TaskSpec, get_task


@dataclass(frozen=True)
class RuntimeParam(Param):
    """A parameter that may be set while the node runs (every other one is read-only)."""

    def descriptor(self):
        d = super().descriptor()
        d.read_only = False
        return d


PARAMS = (
    Param("worker_id", 0, "this worker's index, 0..num_workers-1", 0, 1023),
    Param("num_workers", 1, "number of staggered workers in the graph", 1, 1024),
    Param("task", "Hopper-v5", "task (checks the policy's dimensions)", choices=tuple(TASKS)),
    RuntimeParam(
        "policy_checkpoint",
        "random",
        "'random' (untrained MLP), an rt_rl checkpoint, a .onnx or TorchScript .pt model; settable at "
        "runtime: hot reload",
    ),
    Param(
        "policy_contract",
        "",
        "contract YAML of an ONNX/TorchScript model ('' = <model>.contract.yaml beside it; unused for "
        "rt_rl checkpoints)",
    ),
    Param(
        "onnx_providers",
        list(DEFAULT_PROVIDERS),
        "onnxruntime execution providers in order of preference (e.g. CUDAExecutionProvider first on a "
        "GPU build of onnxruntime)",
    ),
    Param("action_history", 0, "history length the random policy's input includes", 0, 64),
    Param("seed", 0, "seed of the random policy (same in every worker: one policy)", 0, 2**31 - 1),
    RuntimeParam(
        "synthetic_latency",
        0.0,
        "seconds added to every inference to emulate a larger model (settable at runtime)",
        0.0,
        10.0,
    ),
    Param(
        "synthetic_latency_sigma",
        0.0,
        "> 0: each inference's synthetic latency is log-normal with this sigma and the same mean",
        0.0,
        2.0,
    ),
    Param(
        "observation_grace",
        0.002,
        "seconds a worker waits at its slot for an observation still in transit before it skips the slot",
        0.0,
        0.05,
    ),
    Param("torch_threads", 1, "torch intra-op threads (1: workers share the cores)", 1, 64),
    topic_param("observation", "input: this worker reads <topic>/worker_<worker_id>"),
    topic_param("action", "output"),
    topic_param("schedule", "input"),
    REALTIME_PRIORITY,
    statistics_rate(1.0),
)

# While free-running before the first schedule, how often to look for a new observation.
UNSCHEDULED_POLL = 0.005
# A spare (not in the schedule) runs and reports once per this many seconds.
SPARE_HEARTBEAT = 0.5
# While an emulated model runs (the synthetic latency; the CPU is free, as with a model on its own
# accelerator) the worker reads the schedule and finds its next slot this long before the inference
# ends, instead of after publishing: 0.1 ms less turnaround per slot, which back-to-back workers pay
# in fresh ticks. Safe across grid changes: a new grid takes effect >= the planner's notice (60 ms)
# after it is sent, and a wait for a slot longer than `sleep_until_wall`'s chunk (50 ms) re-reads it.
PREPARE_AHEAD = 0.0005
# How long a set of `policy_checkpoint` waits for the accepted policy to go live before giving up.
SWAP_TIMEOUT = 5.0


@dataclass(eq=False)
class Candidate:
    """A loaded and checked policy waiting to go live: what its input needs, how far back its output
    looks, and an event set by the inference thread when it is live."""

    policy: Policy | ExternalPolicy
    input_map: InputMap | None
    delay_calls: int
    live: threading.Event


def load_candidate(
    source: str,
    task: TaskSpec,
    ingest: IngestContract,
    seed: int = 0,
    contract: str = "",
    providers: tuple[str, ...] = DEFAULT_PROVIDERS,
    threads: int = 1,
) -> Candidate:
    """Load and check a replacement policy for a running graph (ValueError: one line saying why not):
    it must load, be for `task`, and take the observations the ingest produces. An external model's
    contract: the one beside it if there is one, else `contract` (the worker's policy_contract)."""
    contract = reload_contract(source, contract)
    # 'random' takes the ingest's history length: it must fit the observations as they are.
    policy = load_policy(
        source,
        task,
        seed,
        ingest.history_length,
        contract=contract,
        providers=providers,
        threads=threads,
        ingest_history=ingest.history_length,
    )
    input_map = check_candidate(source, policy.info, ingest)
    return Candidate(policy, input_map, policy.delay_calls, threading.Event())


def warm_up(policy: Policy | ExternalPolicy, input_dim: int, steps: int = 20) -> float:
    """First torch calls are slow (allocations, kernels): pay that before a policy is used. Median ms."""
    dummy = np.zeros(input_dim, dtype=np.float32)
    t = []
    for _ in range(steps):
        t0 = time.perf_counter()
        policy.act(dummy)
        t.append(time.perf_counter() - t0)
    policy.reset()
    return float(np.median(t)) * 1e3


class InferenceWorker(RtNode):
    def __init__(self) -> None:
        super().__init__("inference_worker")
        p = declare(self, PARAMS)
        if p["worker_id"] >= p["num_workers"]:
            raise ConfigError(
                f"parameter 'worker_id' {p['worker_id']} must be < num_workers {p['num_workers']}"
            )
        # One OpenMP thread unless asked for more (see rt_rl.graph.node_environment); here, before the
        # first import of torch, not at module level: a config error should not wait for torch to load.
        os.environ.setdefault("OMP_NUM_THREADS", str(p["torch_threads"]))
        import torch

        torch.set_num_threads(p["torch_threads"])
        self.threads = p["torch_threads"]
        try:
            self.task = get_task(p["task"])
            self.contract = p["policy_contract"]
            self.providers = tuple(n for n in p["onnx_providers"] if n) or DEFAULT_PROVIDERS
            self.policy = load_policy(
                p["policy_checkpoint"],
                self.task,
                p["seed"],
                p["action_history"],
                contract=self.contract,
                providers=self.providers,
                threads=p["torch_threads"],
                # an external model must take what the ingest appends (it reads the sibling contract)
                ingest_history=external_ingest_history(p["policy_checkpoint"]),
            )
        except ValueError as err:
            raise ConfigError(str(err)) from None
        # What the ingest produces (it starts from the same checkpoint); replacements must take it.
        self.policy_source = p["policy_checkpoint"]  # what runs now (a hot reload changes it)
        self.ingest = IngestContract.of(self.policy.info)
        self.input_map: InputMap | None = None
        self.seed = p["seed"]
        self.num_workers = p["num_workers"]
        self.swap: PolicySwap[Candidate] = PolicySwap()
        self._swap_lock = threading.Lock()
        self.worker_id = p["worker_id"]
        self.latency = p["synthetic_latency"]
        self.latency_sigma = p["synthetic_latency_sigma"]
        self._latency_rng = np.random.default_rng(1000 + self.worker_id)
        self.priority = p["realtime_priority"]
        info = self.policy.info
        self.delay_calls = self.policy.delay_calls
        self.follower = SlotFollower(self.worker_id)
        self.timeline = GridTimeline()
        self.heartbeats = 0
        self.timing_differences: list[str] = []  # live vs the policy's training timing (timing_check)
        self._set_trained_timing(info.timing)
        self._episode = -1
        self.provenance = Provenance(self.delay_calls)
        self.last_swap_shadow_calls = 0
        self.inferences = 0
        self.published = 0
        self.filling = 0  # calls whose output depends on no observation yet (pipeline filling)
        self.missing_observations = 0
        self.late_observations = 0  # taken within observation_grace after the slot started
        self.leftover_observations = 0  # built for an earlier slot, arrived after it: dropped
        self.grace = p["observation_grace"]
        # What a slot occupies a worker beyond its inference (publishing, finding its next slot, taking
        # its observation: 0.3-0.4 ms measured here), reported with each action: the grid spaces
        # back-to-back workers by both, or each would start a little later than the last until one
        # slot is skipped. Measured from the last inference's end (monotonic) to the moment it is
        # ready for the next, and from its wake-up to the next inference's start, waits excluded.
        self._ended = self._woke = self._turnaround = self._wake_part = 0.0
        self._prepared: tuple | None = None  # the next slot, found during the synthetic latency
        self.bad_observations = 0
        self.pipeline_resets = 0  # episodes started (a simulator's reset, a robot's seen by the ingest)
        self.compute_times = Ring(1024)
        self.observation_waits = Ring(1024)  # seconds each slot waited for its observation
        self.compute_ms = warm_up(self.policy, info.input_dim)
        if os.getpriority(os.PRIO_PROCESS, 0) > 0:  # started niced into a running graph: warm now
            try:
                os.setpriority(os.PRIO_PROCESS, 0, 0)
            except PermissionError:
                self.get_logger().warning("started niced and may not return to nice 0 (no CAP_SYS_NICE)")

        self._msg = Action(worker_id=self.worker_id, policy_version=self.policy.version)
        self.pub = self.publisher("action", p)
        # Only this worker's observations (built for its slots), best effort, so the
        # reader sends no acknowledgements (a reliable one woke Fast DDS's event thread per sample).
        self.observation_topic = worker_observation_topic(p["observation_topic"], self.worker_id)
        # A few deep, not one: a forged observation (rt_rl.core.auth) that arrives after the slot's real
        # one must not push it out of the reader; the slot takes all and uses the one built for it.
        self.observations = self.reader("observation", p, SENSOR.with_depth(4), self.observation_topic)
        # a few schedules deep: a forged one right after a real one does not push it out
        self.schedules = self.reader("schedule", p, QosSpec(16, latched=True))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.start_reporting(p["statistics_rate_hz"])
        self.start_thread(self._loop, "inference")

    def _set_trained_timing(self, timing: dict) -> None:
        """Remember the running policy's training timing; compared with the live one at each schedule."""
        self._trained_timing = dict(timing)
        self._check_timing()

    def _check_timing(self) -> None:
        sched = self.timeline.current
        if sched is None:
            return
        found = timing_differences(
            self._trained_timing,
            control_period=sched.control_period,
            num_workers=sched.num_workers,
            lead=sched.lead,
        )
        if found and found != self.timing_differences:
            # Not an error (it runs), but the policy meets a timing it was not trained for.
            self.get_logger().warning("live timing differs from the policy's training: " + "; ".join(found))
        self.timing_differences = found

    # --- hot reload (the parameter service's thread) --------------------------------------------------
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for param in params:
            if param.name == "synthetic_latency":
                self.latency = float(param.value)  # the range is checked by the descriptor
                self.get_logger().info(f"synthetic latency now {self.latency * 1e3:g} ms")
            if param.name == "policy_checkpoint":
                reason = self._reload(str(param.value))
                if reason is not None:
                    self.get_logger().error(reason)
                    return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _reload(self, source: str) -> str | None:
        """Put the policy of `source` live; None when it is, else the one-line reason it is not."""
        old = self.policy.version
        t0 = time.monotonic()
        try:
            candidate = load_candidate(
                source, self.task, self.ingest, self.seed, self.contract, self.providers, self.threads
            )
        except ValueError as err:
            return f"refused: {err}; still running {old}"
        warm_up(candidate.policy, candidate.policy.info.input_dim)
        t_offer = time.monotonic()
        load_ms = (t_offer - t0) * 1e3
        with self._swap_lock:
            self.swap.offer(candidate, candidate.delay_calls)
        if not candidate.live.wait(SWAP_TIMEOUT):
            with self._swap_lock:
                withdrawn = self.swap.withdraw(candidate)
            if withdrawn:
                return (
                    f"refused: '{source}' loaded but not live after {SWAP_TIMEOUT:g} s "
                    f"(no observations reached this worker); still running {old}"
                )
        self._set_trained_timing(candidate.policy.info.timing)
        self.policy_source = source
        self.report()  # the launcher knows at once what a respawn of any worker should run
        self.get_logger().info(
            f"policy {old} -> {candidate.policy.version} live after {self.last_swap_shadow_calls} "
            f"shadow call(s) ({(time.monotonic() - t_offer) * 1e3:.0f} ms), loaded in {load_ms:.0f} ms"
            + ("; re-normalising the ingest's observations" if candidate.input_map is not None else "")
        )
        return None

    def _go_live(self, switch: Switch[Candidate]) -> None:
        """Inference thread: the candidate replaces the live policy before this call publishes."""
        c = switch.candidate
        self.policy, self.input_map, self.delay_calls = c.policy, c.input_map, c.delay_calls
        self.provenance = switch.provenance
        self._msg.policy_version = c.policy.version
        self.last_swap_shadow_calls = switch.shadow_calls
        c.live.set()

    def _update_schedule(self) -> None:
        msg = None
        for m in self.schedules.take_all():  # oldest first; a forged one is counted and ignored
            if self.auth.check("schedule", m.auth_tag, schedule_fields(m)) and self.timeline.update(
                schedule_from_msg(m)
            ):
                msg = m
        if msg is None:
            return  # the arbiter repeats the latched schedule; only a new revision matters
        self._check_timing()
        role = "active" if self.worker_id in msg.workers else "warm spare"
        self.get_logger().info(
            f"schedule r{msg.revision}: {role}, {msg.num_workers} active worker(s), spacing "
            f"{msg.spacing * 1e3:.2f} ms, epoch in {(from_time_msg(msg.epoch) - time.time()) * 1e3:.1f} ms"
        )

    def _loop(self) -> None:
        set_thread_realtime(self, self.priority)
        next_heartbeat = 0.0
        while not self.stop_event.is_set():
            found, self._prepared = self._prepared, None
            if found is not None:  # found while the last inference's latency ran
                self._run_slot(*found)
                continue
            self._update_schedule()
            if self.timeline.current is None:
                # No schedule yet: run once per new observation, so the arbiter can measure T.
                self._turned(time.monotonic())
                obs = self._authentic(self.observations.take_all())
                obs = obs[-1] if obs else None
                if obs is None:
                    self._ended = 0.0
                    self.stop_event.wait(UNSCHEDULED_POLL)
                else:
                    self._infer(obs, 0, 0.0)
                continue
            found = self.follower.next_in(self.timeline, time.time())
            if found is None:  # a warm spare
                if time.monotonic() >= next_heartbeat:
                    next_heartbeat = time.monotonic() + SPARE_HEARTBEAT
                    self._heartbeat()
                self._ended = 0.0
                self.stop_event.wait(UNSCHEDULED_POLL)
                continue
            self._run_slot(*found)

    def _run_slot(self, start: float, k: int, grid) -> None:
        """Wait for slot k of `grid` (starting at wall time `start`), take its observation, infer."""
        self._turned(time.monotonic())  # ready for the next slot
        if not sleep_until_wall(start, self.stop_event):
            return  # a long wait: look at the schedule again first
        woke = time.monotonic()
        self.follower.started(grid, k, start, time.time())
        obs, waited = self._observation_for(start)
        self.observation_waits.append(waited)
        self._woke = woke + waited  # waiting for it is not turnaround; taking it is
        if obs is None:
            self.missing_observations += 1
            self._ended = 0.0
            return
        self._infer(obs, grid.revision, grid.completion(k) - (grid.lead - grid.inference_time))

    def _observation_for(self, start: float) -> tuple[Observation | None, float]:
        """The observation built for the slot starting at `start` (None: none came) and the seconds
        spent waiting for it: one still in the middleware (its receive thread is not real time) is
        waited for up to `observation_grace`. Leftovers of earlier slots are dropped, never used."""
        deadline, waited = time.monotonic() + self.grace, 0.0
        while True:
            msgs = self._authentic(self.observations.take_all())
            i, leftovers = for_this_slot([from_time_msg(m.slot_start) for m in msgs], start)
            self.leftover_observations += leftovers
            if i is not None:
                self.late_observations += waited > 0
                return msgs[i], waited
            t0 = time.monotonic()
            remaining = deadline - t0
            if remaining <= 0 or not self.observations.wait_for(remaining):
                return None, waited
            waited += time.monotonic() - t0

    def _authentic(self, msgs: list[Observation]) -> list[Observation]:
        """The observations whose tag verifies (rt_rl.core.auth); forged ones are counted, never used."""
        return [m for m in msgs if self.auth.check("observation", m.auth_tag, observation_fields(m))]

    def _turned(self, ready: float) -> None:
        """The worker is ready for its next inference at `ready`: the turnaround since the last ends."""
        if self._ended:
            self._turnaround = ready - self._ended
            self._ended = 0.0

    def _synthetic_latency(self) -> float:
        if self.latency <= 0 or self.latency_sigma <= 0:
            return self.latency
        sigma = self.latency_sigma  # log-normal with mean `latency`
        return self.latency * float(np.exp(sigma * self._latency_rng.standard_normal() - 0.5 * sigma**2))

    def _heartbeat(self) -> None:
        """A spare's periodic run: one policy step on zeros plus the synthetic latency, then a reset
        (the zeros must not reach a real action), published as a revision-0 action."""
        wall_start, start = time.time(), time.monotonic()
        self.policy.act(np.zeros(self.policy.info.input_dim, dtype=np.float32))
        self.policy.reset()
        self.provenance.reset()
        self._episode = -1  # the next real observation starts the pipeline afresh
        latency = self._synthetic_latency()
        if latency > 0 and self.stop_event.wait(max(0.0, start + latency - time.monotonic())):
            return  # stopping
        zeros = np.zeros(self.task.action_dim)
        zero = to_time_msg(0.0)
        self._publish(zero, 0, 0, 0, wall_start, time.monotonic() - start, zeros, zero, 0.0)
        self.heartbeats += 1

    def _publish(
        self,
        stamp,
        seq: int,
        episode: int,
        revision: int,
        wall_start: float,
        elapsed: float,
        action,
        input_stamp,
        slot_end: float,
    ) -> None:
        """One Action: the observation it depends on, the slot's grid, when the inference ran, the output."""
        msg = self._msg
        msg.observation_stamp, msg.observation_seq, msg.episode = stamp, seq, episode
        msg.input_stamp = input_stamp
        msg.schedule_revision = revision
        set_stamp(msg.slot_end, slot_end)
        set_stamp(msg.inference_start, wall_start)
        set_stamp(msg.inference_end, wall_start + elapsed)
        msg.inference_time = elapsed
        msg.turnaround = self._turnaround + self._wake_part
        msg.data = float64_array(action)
        set_stamp(msg.header.stamp, time.time())
        msg.auth_tag = self.auth.sign(action_fields(msg))  # the run's identity (rt_rl.core.auth)
        self.pub.publish(msg)

    def _infer(self, obs: Observation, revision: int, slot_end: float) -> None:
        wall_start, start = time.time(), time.monotonic()
        if self._woke:  # from the wake-up for this slot to here (taking its observation) is turnaround
            self._wake_part = start - self._woke
            self._woke = 0.0
        new_episode = obs.episode != self._episode
        with self._swap_lock:
            if new_episode and (switch := self.swap.episode_started()) is not None:
                self._go_live(switch)  # both pipelines restart empty here: no shadow calls needed
            candidate = self.swap.pending
        if new_episode:  # the pipeline's activations belong to the old episode
            self.pipeline_resets += 1
            self.policy.reset()
            self.provenance.reset()
            self._episode = obs.episode
        x = np.asarray(obs.data, dtype=np.float32)
        try:
            action = self.policy.act(x if self.input_map is None else self.input_map(x))
        except ValueError as err:  # e.g. an observation of the wrong size: skip it, say why
            self.bad_observations += 1
            self._ended = 0.0
            self.get_logger().error(f"inference skipped: {err}", throttle_duration_sec=2.0)
            return
        identity = (obs.header.stamp, obs.seq, obs.episode)
        depends_on = self.provenance.observed(identity)
        compute = time.monotonic() - start
        self.compute_times.append(compute)
        self.inferences += 1
        if candidate is not None:
            # Shadow call on the same observation, inside the synthetic latency (which it shortens).
            shadow = candidate.policy.act(x if candidate.input_map is None else candidate.input_map(x))
            with self._swap_lock:
                switch = self.swap.shadowed(candidate, identity)
            if switch is not None:
                self._go_live(switch)
                action, depends_on = shadow, switch.depends_on
        latency = self._synthetic_latency()
        if latency > 0 and not self._emulate_latency(start + latency + compute):
            return  # stopping: the emulated inference did not run its time, its action is not sent
        end = self._ended = time.monotonic()
        if depends_on is None:
            self.filling += 1  # the returned head was computed from zero activations only
            return
        stamp, seq, episode = depends_on
        self._publish(
            stamp, seq, episode, revision, wall_start, end - start, action, obs.header.stamp, slot_end
        )
        self.published += 1

    def _emulate_latency(self, done: float) -> bool:
        """Wait until monotonic `done`, the emulated model's end, finding the next slot on the way
        (`PREPARE_AHEAD`); False if a stop request cut the wait short."""
        if self.timeline.current is not None and done - time.monotonic() > PREPARE_AHEAD:
            self.stop_event.wait(max(0.0, done - PREPARE_AHEAD - time.monotonic()))
            self._update_schedule()
            predicted_end = time.time() + max(0.0, done - time.monotonic())
            self._prepared = self.follower.next_in(self.timeline, predicted_end)
        wait_until_monotonic(done, self.stop_event)
        return not self.stop_event.is_set()

    def status(self) -> tuple[str, dict]:
        sched = self.timeline.current
        values = {
            "worker_id": self.worker_id,
            "inferences": self.inferences,
            "published": self.published,
            "pipeline_filling": self.filling,
            "pipeline_resets": self.pipeline_resets,
            "observation_delay_calls": self.delay_calls,
            "missing_observations": self.missing_observations,
            "leftover_observations": self.leftover_observations,
            "late_observations": self.late_observations,
            "timing_differences": self.timing_differences,
            "late_starts": self.follower.late_starts,
            "skipped_slots": self.follower.skipped_slots,
            "bad_observations": self.bad_observations,
            "policy_version": self.policy.version,
            # the source running now (a hot reload sets it): a respawned worker starts with it
            "policy_checkpoint": self.policy_source,
            "policy_swaps": self.swap.swaps,
            "warmup_compute_ms": round(self.compute_ms, 3),
            "compute_ms_p50": percentiles_ms(self.compute_times.values(), ("p50",))["p50"],
            "observation_wait_ms": percentiles_ms(
                self.observation_waits.values(), ("mean", "p50", "p90", "p99")
            ),
            "synthetic_latency_ms": self.latency * 1e3,
            "schedule_revision": sched.revision if sched else 0,
            "role": "unscheduled"
            if sched is None
            else ("active" if self.worker_id in sched.workers else "spare"),
            "heartbeats": self.heartbeats,
        }
        return "running", values


def main(argv: list[str] | None = None) -> int:
    return run("inference_worker", InferenceWorker, argv)


if __name__ == "__main__":
    raise SystemExit(main())
