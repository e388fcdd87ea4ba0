"""inference_worker: one copy of the policy, started on its slots of the arbiter's shared schedule.

At each of its slots it takes the newest observation, runs one policy step, waits out
`synthetic_latency` (a known extra compute time that emulates a larger model, as the paper emulates
model size by a delay of K frames; it sleeps, so it costs no CPU, like a model on its own accelerator),
and publishes an Action carrying the observation's stamp/seq, its id, the inference start/end and the
policy version. Before the first schedule arrives it runs back to back so the arbiter can measure T.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from rt_rl_interfaces.msg import Action, Observation
from rt_rl_interfaces.msg import Schedule as ScheduleMsg

from rt_rl.core.schedule import Schedule
from rt_rl.nodes.common import (
    FRESHEST_QOS,
    LATCHED_QOS,
    REALTIME_PRIORITY,
    ConfigError,
    Param,
    RtNode,
    declare,
    run,
    schedule_from_msg,
    set_realtime_priority,
    statistics_rate,
    to_time_msg,
)
from rt_rl.policy.runtime import load_policy
from rt_rl.tasks import TASKS, get_task

PARAMS = (
    Param("worker_id", 0, "this worker's index, 0..num_workers-1", 0, 1023),
    Param("num_workers", 1, "number of staggered workers in the graph", 1, 1024),
    Param("task", "Hopper-v5", "task (checks the policy's dimensions)", choices=tuple(TASKS)),
    Param("policy_checkpoint", "random", "'random' (untrained MLP) or a checkpoint file"),
    Param("action_history", 0, "history length the random policy's input includes", 0, 64),
    Param("seed", 0, "seed of the random policy (same in every worker: one policy)", 0, 2**31 - 1),
    Param("synthetic_latency", 0.0, "seconds added to every inference to emulate a larger model", 0.0, 10.0),
    Param("torch_threads", 1, "torch intra-op threads (1: workers share the cores)", 1, 64),
    Param("observation_topic", "/rt_rl/observation", "rt_rl_interfaces/Observation input"),
    Param("action_topic", "/rt_rl/action", "rt_rl_interfaces/Action output"),
    Param("schedule_topic", "/rt_rl/schedule", "rt_rl_interfaces/Schedule input (latched)"),
    REALTIME_PRIORITY,
    statistics_rate(1.0),
)

# A worker that wakes up to this fraction of a slot spacing late still takes the slot (starting at
# once) instead of skipping a whole cycle: one late completion costs less than a missing one.
LATE_START_FRACTION = 0.5


class InferenceWorker(RtNode):
    def __init__(self) -> None:
        super().__init__("inference_worker")
        p = declare(self, PARAMS)
        set_realtime_priority(self, p["realtime_priority"])
        if p["worker_id"] >= p["num_workers"]:
            raise ConfigError(
                f"parameter 'worker_id' {p['worker_id']} must be < num_workers {p['num_workers']}"
            )
        import torch  # here, not at module level: a config error should not wait for torch to load

        torch.set_num_threads(p["torch_threads"])
        try:
            task = get_task(p["task"])
            self.policy = load_policy(p["policy_checkpoint"], task, p["seed"], p["action_history"])
        except ValueError as err:
            raise ConfigError(str(err)) from None
        self.worker_id = p["worker_id"]
        self.latency = p["synthetic_latency"]
        trained = self.policy.info.timing.get("num_workers")
        if trained is not None and trained != p["num_workers"]:
            # Not an error (it runs), but a pipelined policy's deep features assume its trained stride.
            self.get_logger().warning(
                f"policy was trained for {trained} worker(s), the graph runs {p['num_workers']}: "
                "its pipeline timing differs from training"
            )
        self._obs: Observation | None = None
        self._schedule: Schedule | None = None
        self._wake = threading.Event()  # set on a new schedule
        self._have_obs = threading.Event()
        self._episode = -1
        self._last_slot: tuple[int, int] = (0, -1)  # (schedule revision, slot index) last started
        self._last_obs_seq = -1
        self.inferences = 0
        self.bad_observations = 0
        self.compute_times: list[float] = []
        self.compute_ms = self._warm_up()

        self.pub = self.create_publisher(Action, p["action_topic"], 10)
        self.create_subscription(Observation, p["observation_topic"], self._on_observation, FRESHEST_QOS)
        self.create_subscription(ScheduleMsg, p["schedule_topic"], self._on_schedule, LATCHED_QOS)
        self.start_reporting(p["statistics_rate_hz"])
        self._thread = threading.Thread(target=self._loop, name="inference", daemon=True)
        self._thread.start()

    def _warm_up(self, steps: int = 20) -> float:
        """First torch calls are slow (allocations, kernels): pay that before joining the schedule."""
        dummy = np.zeros(self.policy.info.input_dim, dtype=np.float32)
        t = []
        for _ in range(steps):
            t0 = time.perf_counter()
            self.policy.act(dummy)
            t.append(time.perf_counter() - t0)
        self.policy.reset()
        return float(np.median(t)) * 1e3

    def _on_observation(self, msg: Observation) -> None:
        self._obs = msg  # a reference swap: the inference thread reads the newest one at its slot
        self._have_obs.set()

    def _on_schedule(self, msg: ScheduleMsg) -> None:
        if self._schedule is not None and msg.revision == self._schedule.revision:
            return  # the arbiter repeats the latched schedule; only a new revision matters
        self._schedule = schedule_from_msg(msg)
        start, _ = self._schedule.next_start(self.worker_id, time.time())
        self.get_logger().info(
            f"schedule r{msg.revision}: spacing {msg.spacing * 1e3:.2f} ms, first slot in "
            f"{(start - time.time()) * 1e3:.1f} ms"
        )
        if msg.num_workers <= self.worker_id:
            self.get_logger().error(
                f"schedule has {msg.num_workers} workers; this is worker {self.worker_id}"
            )
        self._wake.set()

    def _wait_for_slot(self) -> bool:
        """Sleep until this worker's next slot on the current schedule; False if it changed meanwhile."""
        sched = self._schedule
        if sched is None or sched.num_workers <= self.worker_id:
            # No schedule yet: free-run so the arbiter can measure T, once per new observation
            # (never a busy loop: this thread may run under SCHED_FIFO).
            obs = self._obs
            if obs is None or obs.seq == self._last_obs_seq:
                self._wake.wait(0.002)
                return False
            return True
        slack = LATE_START_FRACTION * sched.spacing
        start, k = sched.next_start(self.worker_id, time.time() - slack)
        if (sched.revision, k) <= self._last_slot:  # never run the same slot twice (T < slack)
            start, k = sched.next_start(self.worker_id, start + 0.5 * sched.cycle)
        while not self.stop_event.is_set():
            remaining = start - time.time()
            if remaining <= 0:
                self._last_slot = (sched.revision, k)
                return True
            self._wake.clear()
            if self._schedule is not sched:
                return False
            self._wake.wait(min(remaining, 0.05))
        return False

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            if not self._have_obs.wait(0.05):
                continue
            if self._wait_for_slot():
                try:
                    self._infer_once()
                except ValueError as err:  # e.g. an observation of the wrong size: skip it, say why
                    self.bad_observations += 1
                    self.get_logger().error(f"inference skipped: {err}", throttle_duration_sec=2.0)
                    self.stop_event.wait(0.1)

    def _infer_once(self) -> None:
        obs, sched = self._obs, self._schedule
        if obs is None:
            return
        start = time.time()
        self._last_obs_seq = obs.seq
        if obs.episode != self._episode:  # the pipeline's activations belong to the old episode
            self.policy.reset()
            self._episode = obs.episode
        action = self.policy.act(np.asarray(obs.data, dtype=np.float32))
        self.compute_times.append(time.time() - start)
        if self.latency > 0:
            time.sleep(max(0.0, start + self.latency + self.compute_times[-1] - time.time()))
        end = time.time()
        msg = Action(
            observation_stamp=obs.header.stamp,
            observation_seq=obs.seq,
            episode=obs.episode,
            worker_id=self.worker_id,
            inference_start=to_time_msg(start),
            inference_end=to_time_msg(end),
            policy_version=self.policy.version,
            schedule_revision=sched.revision if sched else 0,
            data=action.tolist(),
        )
        msg.header.stamp = to_time_msg(end)
        self.pub.publish(msg)
        self.inferences += 1
        del self.compute_times[:-1000]

    def status(self) -> tuple[str, dict]:
        sched = self._schedule
        values = {
            "worker_id": self.worker_id,
            "inferences": self.inferences,
            "bad_observations": self.bad_observations,
            "policy_version": self.policy.version,
            "warmup_compute_ms": round(self.compute_ms, 3),
            "compute_ms_p50": round(float(np.median(self.compute_times)) * 1e3, 3)
            if self.compute_times
            else None,
            "synthetic_latency_ms": self.latency * 1e3,
            "schedule_revision": sched.revision if sched else 0,
        }
        return "running", values

    def on_shutdown(self) -> None:
        self._thread.join(timeout=1.0)


def main(argv: list[str] | None = None) -> int:
    return run("inference_worker", InferenceWorker, argv)


if __name__ == "__main__":
    raise SystemExit(main())
