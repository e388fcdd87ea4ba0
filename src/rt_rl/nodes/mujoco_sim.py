"""mujoco_sim: a Gymnasium MuJoCo task running in wall-clock real time, standing in for the robot.

Physics advances whether or not a command came: every env.dt = timestep * frame_skip seconds of wall
time it steps the env with the latest command (zero-order hold, like real actuators), then publishes
  joint_states_topic  sensor_msgs/JointState   stamp = wall time the state was sensed
  reward_topic        rt_rl_interfaces/Reward   task reward, episode boundaries
and resets episodes itself. A real robot replaces exactly this node.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from rt_rl_interfaces.msg import Reward
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from rt_rl.core.mujoco_task import frame_skip_for_rate, joint_state, make_env
from rt_rl.nodes.common import (
    FRESHEST_QOS,
    REALTIME_PRIORITY,
    ConfigError,
    Param,
    RtNode,
    declare,
    run,
    set_realtime_priority,
    statistics_rate,
    to_time_msg,
)
from rt_rl.tasks import TASKS, get_task

PARAMS = (
    Param("task", "Hopper-v5", "Gymnasium MuJoCo task id", choices=tuple(TASKS)),
    Param("sensor_rate_hz", 100.0, "joint state rate; must divide the task's physics rate", 0.1, 10000.0),
    Param("episode_seconds", 8.0, "episode time limit in simulated seconds", 0.01, 1e6),
    Param("seed", 0, "seed of the first episode reset", 0, 2**31 - 1),
    Param("joint_states_topic", "/joint_states", "sensor_msgs/JointState output"),
    Param("command_topic", "/rt_rl/command", "std_msgs/Float64MultiArray input (actuator commands)"),
    Param("reward_topic", "/rt_rl/reward", "rt_rl_interfaces/Reward output"),
    REALTIME_PRIORITY,
    statistics_rate(1.0),
)


class MujocoSim(RtNode):
    def __init__(self) -> None:
        super().__init__("mujoco_sim")
        p = declare(self, PARAMS)
        try:
            self.task = get_task(p["task"])
            frame_skip = frame_skip_for_rate(self.task, p["sensor_rate_hz"])
        except ValueError as err:
            raise ConfigError(str(err)) from None
        self.env = make_env(self.task, frame_skip, p["episode_seconds"], seed=p["seed"])
        self.dt = float(self.env.unwrapped.dt)
        set_realtime_priority(self, p["realtime_priority"])
        self._command = np.zeros(self.task.action_dim)
        self._lock = threading.Lock()
        self.bad_commands = 0
        self.episode, self.step_in_episode, self.episode_return = 0, 0, 0.0
        self.finished: list[tuple[float, float, int]] = []  # (start wall time, return, steps)
        self._episode_start = time.time()
        self.sim_time = 0.0
        self.overruns = 0
        self._start_mono: float | None = None

        self.joint_pub = self.create_publisher(JointState, p["joint_states_topic"], 10)
        self.reward_pub = self.create_publisher(Reward, p["reward_topic"], 100)
        self.create_subscription(Float64MultiArray, p["command_topic"], self._on_command, FRESHEST_QOS)
        self.start_reporting(p["statistics_rate_hz"])
        self._thread = threading.Thread(target=self._loop, name="physics", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"{self.task.gym_id}: env.dt {self.dt * 1e3:.1f} ms (frame_skip {frame_skip}), real time"
        )

    def _on_command(self, msg: Float64MultiArray) -> None:
        if len(msg.data) != self.task.action_dim or not np.all(np.isfinite(msg.data)):
            self.bad_commands += 1
            return
        with self._lock:
            self._command = np.array(msg.data)

    def _loop(self) -> None:
        # Drift-free: step k is due at start + k*dt on the monotonic clock.
        start = time.monotonic()
        self._start_mono = start
        k = 0
        self._publish_state()
        while not self.stop_event.is_set():
            k += 1
            due = start + k * self.dt
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -self.dt:
                self.overruns += 1  # behind by more than a step: catch up without sleeping
            with self._lock:
                command = self._command.copy()
            _, reward, terminated, truncated, _ = self.env.step(command)
            self.sim_time += self.dt
            self.step_in_episode += 1
            self.episode_return += float(reward)
            self._publish_reward(float(reward), terminated, truncated)
            if terminated or truncated:
                self.finished.append((self._episode_start, self.episode_return, self.step_in_episode))
                self._episode_start = time.time()
                self.episode += 1
                self.step_in_episode, self.episode_return = 0, 0.0
                self.env.reset()
            self._publish_state()

    def _publish_state(self) -> None:
        pos, vel = joint_state(self.env, self.task)
        msg = JointState(name=list(self.task.joint_names), position=pos.tolist(), velocity=vel.tolist())
        msg.header.stamp = to_time_msg(time.time())
        self.joint_pub.publish(msg)

    def _publish_reward(self, reward: float, terminated: bool, truncated: bool) -> None:
        msg = Reward(
            episode=self.episode,
            step=self.step_in_episode,
            reward=reward,
            terminated=bool(terminated),
            truncated=bool(truncated),
            episode_return=self.episode_return,
        )
        msg.header.stamp = to_time_msg(time.time())
        self.reward_pub.publish(msg)

    def statistics(self) -> dict:
        wall = time.monotonic() - self._start_mono if self._start_mono else 0.0
        returns = [r for _, r, _ in self.finished]
        return {
            "task": self.task.gym_id,
            "env_dt_ms": round(self.dt * 1e3, 3),
            "sim_time_s": round(self.sim_time, 3),
            "wall_time_s": round(wall, 3),
            "real_time_factor": round(self.sim_time / wall, 4) if wall > 0 else None,
            "overruns": self.overruns,
            "episodes": len(returns),
            "mean_episode_return": round(float(np.mean(returns)), 2) if returns else None,
            "current_episode_return": round(self.episode_return, 2),
            # the launcher keeps the episodes that started inside its measurement window
            "recent_episodes": [[round(t, 3), round(r, 2), n] for t, r, n in self.finished[-500:]],
            "bad_commands": self.bad_commands,
        }

    def status(self) -> tuple[str, dict]:
        return "running", self.statistics()

    def on_shutdown(self) -> None:
        self._thread.join(timeout=1.0)
        self.report()  # final statistics


def main(argv: list[str] | None = None) -> int:
    return run("mujoco_sim", MujocoSim, argv)


if __name__ == "__main__":
    raise SystemExit(main())
