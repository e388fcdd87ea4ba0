"""mujoco_sim: a Gymnasium MuJoCo task running in wall-clock real time, standing in for the robot.

It behaves as a ros2_control robot does (DESIGN.md; `rt_rl.core.robot`): physics advances one step
(the model's timestep, 2 ms for Hopper) per step of wall time whether or not a command came; at every
controller update (`controller_rate_hz`, default every physics step) the newest command is taken and
acts from that step on (zero-order hold; taken from a KEEP_LAST 1 reader, no callback per command);
each joint state is published when the moment it shows has come, stamped with it, at
`sensor_rate_hz` and its own `sensor_phase`, in `joint_order` plus `extra_joints`, reliable or
best effort. Rewards are the task's, one per task step (`task_rate_hz`, default the sensor rate; the
control cost is averaged over the step's physics steps, `SubstepStepper`). When the robot falls (or
the episode's time limit passes) it is reset, as a person or a script resets a robot.

  joint_states_topic  sensor_msgs/JointState   stamp = the moment the state shows
  reward_topic        rt_rl_interfaces/Reward   task reward of every task step (publish_episodes)
  episode_end_topic   rt_rl_interfaces/Reward   the last step of each episode, latched (publish_episodes)

A real robot publishes no episodes (`publish_episodes: false`, the `robot` profile of the launcher);
the sim then keeps its returns for the summary only. A real robot replaces exactly this node.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
from rt_rl_interfaces.msg import Reward
from sensor_msgs.msg import JointState

from rt_rl.core.auth import reward_fields
from rt_rl.core.mujoco_task import JointStateReader, SubstepStepper, frame_skip_for_rate, make_env
from rt_rl.core.pacer import Pacer
from rt_rl.core.robot import JointLayout, RobotTrace, UpdateGrid
from rt_rl.graph import SENSOR, TOPICS
from rt_rl.nodes.common import (
    REALTIME_PRIORITY,
    ConfigError,
    Param,
    RtNode,
    declare,
    float64_array,
    run,
    set_stamp,
    set_thread_realtime,
    statistics_rate,
    topic_param,
)
from rt_rl.tasks import TASKS, get_task

PARAMS = (
    Param("task", "Hopper-v5", "Gymnasium MuJoCo task id", choices=tuple(TASKS)),
    Param("sensor_rate_hz", 100.0, "joint state rate; must divide the task's physics rate", 0.1, 10000.0),
    Param(
        "sensor_phase",
        0.0,
        "s after the sim's start of its first joint state (whole physics steps)",
        0.0,
        10.0,
    ),
    Param(
        "controller_rate_hz",
        0.0,
        "rate the newest command is taken at; 0 = every physics step",
        0.0,
        100000.0,
    ),
    Param("task_rate_hz", 0.0, "task step rate (rewards, episode length); 0 = sensor_rate_hz", 0.0, 10000.0),
    Param("joint_order", [""], "joint names in the order published; [''] = the task's order"),
    Param("extra_joints", [""], "joints published beside the task's (at 0), as a robot has more"),
    Param(
        "joint_states_reliability", "reliable", "QoS of the joint states", choices=("reliable", "best_effort")
    ),
    Param("publish_episodes", True, "publish rewards and episode ends (a real robot publishes neither)"),
    Param(
        "trace_path", "", "write a trace of the first episode here (commands applied and states, per step)"
    ),
    Param("trace_seconds", 5.0, "longest trace (simulated seconds)", 0.0, 600.0),
    Param("episode_seconds", 8.0, "episode time limit in simulated seconds", 0.01, 1e6),
    Param("seed", 0, "seed of the first episode reset", 0, 2**31 - 1),
    Param(
        "terminate_when_unhealthy",
        True,
        "end an episode when the robot falls (Gymnasium's option); false: only the time limit ends it",
    ),
    topic_param("joint_states", "output"),
    topic_param("command", "input"),
    topic_param("reward", "output"),
    topic_param("episode_end", "output"),
    REALTIME_PRIORITY,
    statistics_rate(1.0),
)


class MujocoSim(RtNode):
    def __init__(self) -> None:
        super().__init__("mujoco_sim")
        p = declare(self, PARAMS)
        try:
            self.task = get_task(p["task"])
            frame_skip = frame_skip_for_rate(self.task, p["task_rate_hz"] or p["sensor_rate_hz"])
        except ValueError as err:
            raise ConfigError(str(err)) from None
        try:
            self.env = make_env(
                self.task, frame_skip, p["episode_seconds"], p["seed"], p["terminate_when_unhealthy"]
            )
        except TypeError as err:  # a task without the option
            raise ConfigError(f"parameter 'terminate_when_unhealthy': {self.task.gym_id}: {err}") from None
        self.dt = float(self.env.unwrapped.dt)
        self.stepper = SubstepStepper(self.env)
        self.h = self.stepper.physics_dt
        try:
            self.grid = UpdateGrid.from_rates(
                self.h, p["sensor_rate_hz"], p["sensor_phase"], p["controller_rate_hz"] or 1.0 / self.h
            )
            self.layout = JointLayout(self.task.joint_names, p["joint_order"], p["extra_joints"])
        except ValueError as err:
            raise ConfigError(str(err)) from None
        self.publish_episodes = p["publish_episodes"]
        # the robot's actuation, recorded for tests against the twin (RobotTrace); off by default
        self.trace = (
            RobotTrace(self.task.gym_id, p["seed"], frame_skip, p["episode_seconds"], self.h)
            if p["trace_path"]
            else None
        )
        self._trace_path, self._trace_steps = p["trace_path"], round(p["trace_seconds"] / self.h)
        self.physics_steps = 0
        self.priority = p["realtime_priority"]
        self.read_joints = JointStateReader(self.env, self.task)
        self._command = np.zeros(self.task.action_dim)
        self.bad_commands = 0
        self.episode, self.step_in_episode, self.episode_return = 0, 0, 0.0
        # (start wall, return, steps, end wall) of the finished episodes
        self.finished: deque[tuple[float, float, int, float]] = deque(maxlen=500)
        self.episodes_finished = 0
        self._episode_start = time.time()
        self.sim_time = 0.0
        self.sim_steps = 0
        self.listeners_check = max(1, round(1.0 / self.dt))
        self._reward_listened = True
        self.pacer: Pacer | None = None
        self._start_mono: float | None = None

        # Messages built once and refilled: no per-step allocation of names and headers.
        self._joint_msg = JointState(name=list(self.layout.names))
        self._reward_msg = Reward()
        qos = TOPICS["joint_states"].qos
        if p["joint_states_reliability"] == "best_effort":
            qos = SENSOR.with_depth(qos.depth)
        self.joint_pub = self.publisher("joint_states", p, qos=qos)
        if self.publish_episodes:
            self.reward_pub = self.publisher("reward", p)
            self.episode_end_pub = self.publisher("episode_end", p)
        # The newest command is taken at each physics step (zero-order hold), no callback per command.
        self.commands = self.reader("command", p, SENSOR)
        self.start_reporting(p["statistics_rate_hz"])
        self._thread = self.start_thread(self._loop, "physics")
        g = self.grid
        self.get_logger().info(
            f"{self.task.gym_id}: physics {self.h * 1e3:g} ms steps in real time, command taken every "
            f"{g.controller_steps}, joint states every {g.sensor_steps} (phase {g.sensor_phase}), task step "
            f"{self.dt * 1e3:g} ms"
        )

    def _take_command(self) -> None:
        msg = self.commands.take_newest()
        if msg is None:
            return
        data = np.asarray(msg.data, dtype=np.float64)
        if data.shape != (self.task.action_dim,) or not np.all(np.isfinite(data)):
            self.bad_commands += 1
            return
        self._command = data

    def _loop(self) -> None:
        set_thread_realtime(self, self.priority)
        # Simulated time must equal wall time: missed steps are caught up, not skipped (Pacer docs).
        # One wake-up per physics step; `_physics_step` runs at each, inside the task's own env.step.
        self.pacer = Pacer(self.h, time.monotonic(), catch_up=True)
        self._start_mono = self.pacer.start
        self.pacer.tick = -1  # the first wake-up is step 0, at the start
        while not self.stop_event.is_set():
            _, reward, terminated, truncated, _ = self.stepper.step(self._physics_step)
            self.sim_time += self.dt
            self.sim_steps += 1
            self.step_in_episode += 1
            self.episode_return += float(reward)
            self._publish_reward(float(reward), terminated, truncated)
            if terminated or truncated:
                now = time.time()
                self.finished.append((self._episode_start, self.episode_return, self.step_in_episode, now))
                self.episodes_finished += 1
                self._episode_start = now
                self.episode += 1
                self.step_in_episode, self.episode_return = 0, 0.0
                self._finish_trace()
                self.env.reset()  # the robot is set up again: the next joint state shows it
            elif self.trace is not None and self.physics_steps >= self._trace_steps:
                self._finish_trace()
        self._finish_trace()  # stopped before the trace was full

    def _physics_step(self, _: int) -> np.ndarray:
        """At the wall time physics step n starts: publish the state (it shows this moment) if a sample
        is due, take the newest command if the controller updates, and return the control for step n."""
        self.pacer.wait()
        n = self.physics_steps
        self.physics_steps += 1
        if self.grid.publishes(n):
            self._publish_state()
        if self.grid.takes_command(n):
            self._take_command()
        if self.trace is not None:
            self.trace.step(n, self._command, *self.read_joints())
        return self._command

    def _finish_trace(self) -> None:
        """Write the trace once (from the physics thread: a test and diagnostic feature)."""
        if self.trace is not None:
            self.trace.write(self._trace_path)
            self.get_logger().info(
                f"trace of {self.physics_steps} physics steps written to {self._trace_path}"
            )
            self.trace = None

    def _publish_state(self) -> None:
        pos, vel = self.read_joints()
        msg = self._joint_msg
        msg.position = float64_array(self.layout.arrange(pos))
        msg.velocity = float64_array(self.layout.arrange(vel))
        set_stamp(msg.header.stamp, time.time())  # now: the moment the state shows
        self.joint_pub.publish(msg)

    def _publish_reward(self, reward: float, terminated: bool, truncated: bool) -> None:
        # The per-step reward is for recorders and learners; with none listening (a timing benchmark)
        # building and publishing it 250 times a second is wasted. Who listens is checked once a second.
        if not self.publish_episodes:
            return
        if self.sim_steps % self.listeners_check == 0:
            self._reward_listened = self.reward_pub.get_subscription_count() > 0
        if not (self._reward_listened or terminated or truncated):
            return
        msg = self._reward_msg
        msg.episode = self.episode
        msg.step = self.step_in_episode
        msg.reward = reward
        msg.terminated = bool(terminated)
        msg.truncated = bool(truncated)
        msg.episode_return = self.episode_return
        set_stamp(msg.header.stamp, time.time())
        msg.auth_tag = self.auth.sign(reward_fields(msg))  # the run's identity (rt_rl.core.auth)
        self.reward_pub.publish(msg)
        if msg.terminated or msg.truncated:
            self.episode_end_pub.publish(msg)

    def statistics(self) -> dict:
        wall = time.monotonic() - self._start_mono if self._start_mono else 0.0
        returns = [e[1] for e in self.finished]
        counters = self.pacer.counters() if self.pacer else {}
        return {
            "task": self.task.gym_id,
            "env_dt_ms": round(self.dt * 1e3, 3),
            "sim_time_s": round(self.sim_time, 3),
            "wall_time_s": round(wall, 3),
            "real_time_factor": round(self.sim_time / wall, 4) if wall > 0 else None,
            "physics_dt_ms": round(self.h * 1e3, 4),
            "physics_steps": self.physics_steps,
            "overruns": counters.get("caught_up", 0),  # steps started a whole step late (caught up)
            "late_steps": counters.get("late", 0),
            "episodes": self.episodes_finished,
            "mean_episode_return": round(float(np.mean(returns)), 2) if returns else None,
            "current_episode_return": round(self.episode_return, 2),
            # the launcher keeps the episodes that started and ended inside its measurement window
            "recent_episodes": [[round(t, 3), round(r, 2), n, round(e, 3)] for t, r, n, e in self.finished],
            "bad_commands": self.bad_commands,
        }

    def status(self) -> tuple[str, dict]:
        return "running", self.statistics()


def main(argv: list[str] | None = None) -> int:
    return run("mujoco_sim", MujocoSim, argv)


if __name__ == "__main__":
    raise SystemExit(main())
