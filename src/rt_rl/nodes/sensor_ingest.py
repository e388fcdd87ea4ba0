"""sensor_ingest: joint states -> policy observations, built when a worker is about to use one.

Picks and orders the policy's joints out of `sensor_msgs/JointState` (any order, extra joints ignored),
applies the observation normalisation stored with the policy, appends the last k executed commands
(heard on the command topic) and publishes the observation, stamped with the sensor time of the
JointState it was built from. The vector is built by `rt_rl.core.observation.ObservationBuilder`, the
same code the training environment uses.

Episodes: in simulation from the latched episode-end topic; on a robot (which has none) from its
resets, seen as a jump in the joint state that its own velocities do not explain (`reset_jump`,
`rt_rl.core.robot.ResetDetector`). Either starts a new episode: the history restarts at zeros and the
observation carries the new episode number, on which the workers reset their pipelines and the
arbiter rejects actions of the old episode.

Observations are sent only as often as someone uses them: once the arbiter's schedule is known, one
observation `observation_lead` seconds before each worker slot starts (the worker takes the newest one
at its slot); before that, at `unscheduled_rate_hz`. Each goes out on the observation topic (recorders,
tools) and on `<observation_topic>/worker_<i>` of the worker whose slot it is for (all workers' before
the schedule), so each worker's middleware handles only the observations that worker uses. Every input is a DDS reader taken at build time
(the newest joint state, the commands since the last build, the latched episode boundary), so
the node costs one wake-up per observation, not one Python callback per sensor sample.
"""

from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticStatus
from rt_rl_interfaces.msg import Observation, Reward
from sensor_msgs.msg import JointState

from rt_rl.core.arbiter import episode_after
from rt_rl.core.auth import observation_fields, reward_fields, schedule_fields
from rt_rl.core.grid import GridTimeline
from rt_rl.core.observation import JointPicker, ObservationBuilder
from rt_rl.core.robot import ResetDetector, SensorSilence
from rt_rl.graph import SENSOR, QosSpec, worker_observation_topic
from rt_rl.nodes.common import (
    REALTIME_PRIORITY,
    ConfigError,
    Param,
    RtNode,
    declare,
    float32_array,
    run,
    schedule_from_msg,
    set_thread_realtime,
    sleep_until_wall,
    statistics_rate,
    to_time_msg,
    topic_param,
)
from rt_rl.tasks import TASKS, get_task

PARAMS = (
    Param("task", "Hopper-v5", "task whose observation layout the policy expects", choices=tuple(TASKS)),
    Param("joint_names", [""], "joints in observation order; [''] = the task's MuJoCo joint names"),
    Param(
        "policy_checkpoint", "random", "'random' or a checkpoint file: normalisation and history come from it"
    ),
    Param("action_history", 0, "executed commands appended when policy_checkpoint is 'random'", 0, 64),
    Param("num_workers", 1, "workers to send observations to before the schedule names them", 1, 1024),
    Param("observation_lead", 0.001, "seconds before a worker's slot its observation is sent", 0.0, 0.1),
    Param("unscheduled_rate_hz", 100.0, "observation rate before the first schedule", 1.0, 10000.0),
    Param(
        "reset_jump",
        0.0,
        "a robot reset: a joint moved this much (rad or m) more than its velocities explain; 0 = off "
        "(use the episode-end topic)",
        0.0,
        1e6,
    ),
    Param(
        "max_sample_age",
        0.1,
        "seconds (sensor stamp to the ingest's wall clock) after which the newest joint state is not "
        "built into observations: a silent sensor pauses the policy (the arbiter holds, then goes safe); "
        "a robot section sets 5 sensor periods (at least 0.05 s)",
        0.001,
        10.0,
    ),
    topic_param("joint_states", "input"),
    topic_param("command", "input, for the history"),
    topic_param("episode_end", "input, optional on a robot"),
    topic_param("schedule", "input"),
    topic_param("observation", "output"),
    REALTIME_PRIORITY,
    statistics_rate(1.0),
)


class SensorIngest(RtNode):
    def __init__(self) -> None:
        super().__init__("sensor_ingest")
        p = declare(self, PARAMS)
        # The executor (this, the main thread) just below the timing thread: a Python thread at normal
        # priority that holds the GIL when busy processes preempt it makes the real-time thread wait for
        # the GIL (seen: 51 ms between two ticks with two busy loops beside the graph).
        set_thread_realtime(self, max(0, p["realtime_priority"] - 1))

        try:
            task = get_task(p["task"])
            history, mean, std = p["action_history"], None, None
            if p["policy_checkpoint"] != "random":
                from rt_rl.policy.runtime import read_policy_info  # torch: only when a file is read

                info = read_policy_info(p["policy_checkpoint"])
                history, mean, std = info.history_length, info.obs_mean, info.obs_std
            self.builder = ObservationBuilder(task, history, mean, std)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        names = [n for n in p["joint_names"] if n]
        self.joint_names = names or list(task.joint_names)
        if len(self.joint_names) != len(task.joint_names):
            raise ConfigError(
                f"parameter 'joint_names' needs {len(task.joint_names)} names for {task.gym_id}"
            )
        self.pick_joints = JointPicker(self.joint_names)
        self.resets = ResetDetector(p["reset_jump"]) if p["reset_jump"] > 0 else None
        self.silence = SensorSilence(p["max_sample_age"])
        self.resets_seen = 0
        # a robot has no episode topic: the ingest, which sees its resets, publishes the boundary (the
        # arbiter then zeroes the held command and rejects the old episode's actions in flight)
        self.episode_end_pub = self.publisher("episode_end", p) if self.resets is not None else None
        self.priority = p["realtime_priority"]
        self.lead = p["observation_lead"]
        self.unscheduled_period = 1.0 / p["unscheduled_rate_hz"]
        self.seq = 0
        self.episode = 0
        self.bad_joint_states = 0
        self.repeated_samples = 0  # observations built from a joint state already used (sensor slower)
        self.timeline = GridTimeline()  # across a re-lay the old grid's slots run until the new epoch
        self._last_target = 0.0
        self._last_joint_state: JointState | None = None
        self._fresh_joint_state = False
        self._msg = Observation()
        self.pub = self.publisher("observation", p)
        self._observation_topic = p["observation_topic"]
        self.worker_pubs = {w: self._worker_publisher(w) for w in range(p["num_workers"])}
        self._next_worker: int | None = None  # owner of the slot being built for; None: every worker
        self._slot_start = to_time_msg(0.0)  # that slot's start (0: before the schedule, any slot)
        self.joint_states = self.reader("joint_states", p, SENSOR)
        self.joint_states_topic = p["joint_states_topic"]
        self.joint_state_problem: str | None = None  # why no observation is built (the launcher says it)
        self._started = time.monotonic()
        # every command since the last build (several control ticks pass between slots when N*P < T)
        self.commands = self.reader("command", p, SENSOR.with_depth(64))
        # a few deep: a forged message right after a real one does not push it out (rt_rl.core.auth)
        self.episode_ends = self.reader("episode_end", p, QosSpec(16, latched=True))
        self.schedules = self.reader("schedule", p, QosSpec(16, latched=True))
        self.start_reporting(p["statistics_rate_hz"])
        self.start_thread(self._loop, "ingest")

    def _worker_publisher(self, worker_id: int):
        return self.publisher("observation", {}, worker_observation_topic(self._observation_topic, worker_id))

    def _next_build(self, now: float) -> tuple[float, int | None]:
        """When to build the next observation, and for which worker (None: all, before the schedule)."""
        for msg in self.schedules.take_all():  # oldest first; a forged one is counted and ignored
            if not self.auth.check("schedule", msg.auth_tag, schedule_fields(msg)):
                continue
            if self.timeline.update(schedule_from_msg(msg)):
                for w in msg.workers:  # a grown pool: its publishers, off the build
                    if w not in self.worker_pubs:
                        self.worker_pubs[w] = self._worker_publisher(w)
        grid = self.timeline.current
        if grid is None:
            return max(now, self._last_target + self.unscheduled_period), None
        # never the same slot twice (a wake-up a hair early would otherwise see it again)
        after = max(now, self._last_target + 0.5 * min(grid.spacing, grid.sensor_period or grid.spacing))
        found = self.timeline.next_slot(after + self.lead)
        if found is None:
            return max(now, self._last_target + self.unscheduled_period), None
        start, worker = found
        return start - self.lead, worker

    def _loop(self) -> None:
        set_thread_realtime(self, self.priority)
        while not self.stop_event.is_set():
            target, worker = self._next_build(time.time())
            if sleep_until_wall(target, self.stop_event):
                self._last_target = target
                self._next_worker = worker
                self._slot_start = to_time_msg(0.0 if worker is None else target + self.lead)
                self.build_and_publish()

    def build_and_publish(self) -> None:
        for command in self.commands.take_all():
            if len(command.data) == self.builder.task.action_dim:
                self.builder.record_command(command.data)
        reward = None
        for msg in self.episode_ends.take_all():  # the newest authentic boundary; forged: counted
            if self.auth.check("episode_end", msg.auth_tag, reward_fields(msg)):
                reward = msg
        if reward is not None:
            episode = episode_after(reward.episode, reward.terminated or reward.truncated)
            if episode != self.episode:
                self.episode = episode
                self.builder.reset()  # the history of the old episode does not carry over
        joint_state = self.joint_states.take_newest()
        if joint_state is not None:
            self._last_joint_state = joint_state
            self._fresh_joint_state = True
        elif self._last_joint_state is None:
            return
        else:
            self.repeated_samples += 1
        js = self._last_joint_state
        stamp = js.header.stamp.sec + js.header.stamp.nanosec * 1e-9
        build, event = self.silence.update(time.time(), stamp)
        if event == "silent":
            self.diag_level = DiagnosticStatus.WARN
            self.get_logger().warning(
                f"sensor silent: the newest joint state on '{self.joint_states_topic}' is older than "
                f"{self.silence.max_age:g} s; observations paused (the arbiter holds, then goes safe)"
            )
        elif event == "back":
            self.diag_level = DiagnosticStatus.OK
            self.get_logger().info(f"sensor back on '{self.joint_states_topic}': observations resume")
        if not build:
            return
        try:
            pos, vel = self.pick_joints(js.name, js.position, js.velocity)
        except (KeyError, ValueError) as err:
            self.bad_joint_states += 1
            why = err.args[0] if err.args else err
            self.joint_state_problem = f"joint state on '{self.joint_states_topic}' refused: {why}"
            self._last_joint_state = None
            self.get_logger().warning(f"joint state ignored: {err}", throttle_duration_sec=5.0)
            return
        if self._fresh_joint_state and self.resets is not None and self.resets.update(stamp, pos, vel):
            self.resets_seen += 1
            self._publish_boundary(js.header.stamp)
            self.episode += 1
            self.builder.reset()  # the history of the old episode does not carry over
        self._fresh_joint_state = False
        msg = self._msg
        msg.seq = self.seq
        msg.episode = self.episode
        msg.data = float32_array(self.builder.build(pos, vel))
        msg.header.stamp = js.header.stamp  # sensor time, not now: ages downstream start at sensing
        msg.slot_start = self._slot_start  # the worker drops it once that slot has passed
        msg.auth_tag = self.auth.sign(observation_fields(msg))  # the run's identity (rt_rl.core.auth)
        self.seq += 1
        # The worker's copy first: it is due at the slot; the shared topic's reliable readers (a
        # recorder) can wait. Published second, 25-35 % of a demo run's slots found their observation
        # still in transit (late_observations 250-345 per worker); first, 1-22.
        if self._next_worker is None:
            for pub in self.worker_pubs.values():
                pub.publish(msg)
        elif (pub := self.worker_pubs.get(self._next_worker)) is not None:
            pub.publish(msg)
        self.pub.publish(msg)

    def _publish_boundary(self, stamp) -> None:
        """The episode that ended, as the simulator would have said it (truncated: not a task end)."""
        msg = Reward(episode=self.episode, truncated=True)
        msg.header.stamp = stamp
        msg.auth_tag = self.auth.sign(reward_fields(msg))
        self.episode_end_pub.publish(msg)

    def status(self) -> tuple[str, dict]:
        problem = self.joint_state_problem
        if problem is None and self._last_joint_state is None and time.monotonic() - self._started > 5.0:
            count = self.count_publishers(self.joint_states_topic)
            problem = f"no joint state on '{self.joint_states_topic}' ({count} publisher(s))"
        values = {
            "observations": self.seq,
            "episode": self.episode,
            "bad_joint_states": self.bad_joint_states,
            "repeated_samples": self.repeated_samples,
            "resets_seen": self.resets_seen,
            "sensor_silences": self.silence.silences,
            "observations_not_built_silent": self.silence.skipped,
            "problem": problem if self.seq == 0 else None,
            "observation_size": self.builder.size,
            "schedule_revision": self.timeline.current.revision if self.timeline.current else 0,
        }
        return "running", values


def main(argv: list[str] | None = None) -> int:
    return run("sensor_ingest", SensorIngest, argv)


if __name__ == "__main__":
    raise SystemExit(main())
