"""sensor_ingest: joint states -> policy observations.

Picks and orders the policy's joints out of `sensor_msgs/JointState` (any order, extra joints ignored),
applies the observation normalisation stored with the policy, appends the last k executed commands
(heard on the command topic) and publishes the freshest observation, stamped with the sensor time.
The vector is built by `rt_rl.core.observation.ObservationBuilder`, the same code the training
environment uses.
"""

from __future__ import annotations

from rt_rl_interfaces.msg import Observation, Reward
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from rt_rl.core.observation import ObservationBuilder, reorder_joint_state
from rt_rl.nodes.common import (
    FRESHEST_QOS,
    REALTIME_PRIORITY,
    SENSOR_QOS,
    ConfigError,
    Param,
    RtNode,
    declare,
    run,
    set_realtime_priority,
    statistics_rate,
)
from rt_rl.policy.runtime import read_policy_info
from rt_rl.tasks import TASKS, get_task

PARAMS = (
    Param("task", "Hopper-v5", "task whose observation layout the policy expects", choices=tuple(TASKS)),
    Param("joint_names", [""], "joints in observation order; [''] = the task's MuJoCo joint names"),
    Param(
        "policy_checkpoint", "random", "'random' or a checkpoint file: normalisation and history come from it"
    ),
    Param("action_history", 0, "executed commands appended when policy_checkpoint is 'random'", 0, 64),
    Param("joint_states_topic", "/joint_states", "sensor_msgs/JointState input"),
    Param("command_topic", "/rt_rl/command", "executed commands (for the history)"),
    Param(
        "reward_topic", "/rt_rl/reward", "episode boundaries (rt_rl_interfaces/Reward); optional on a robot"
    ),
    Param("observation_topic", "/rt_rl/observation", "rt_rl_interfaces/Observation output"),
    REALTIME_PRIORITY,
    statistics_rate(1.0),
)


class SensorIngest(RtNode):
    def __init__(self) -> None:
        super().__init__("sensor_ingest")
        p = declare(self, PARAMS)
        set_realtime_priority(self, p["realtime_priority"])
        try:
            task = get_task(p["task"])
            history, mean, std = p["action_history"], None, None
            if p["policy_checkpoint"] != "random":
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
        self.seq = 0
        self.episode = 0
        self.bad_joint_states = 0
        self.pub = self.create_publisher(Observation, p["observation_topic"], FRESHEST_QOS)
        self.create_subscription(JointState, p["joint_states_topic"], self._on_joint_state, SENSOR_QOS)
        self.create_subscription(Float64MultiArray, p["command_topic"], self._on_command, FRESHEST_QOS)
        self.create_subscription(Reward, p["reward_topic"], self._on_reward, 100)
        self.start_reporting(p["statistics_rate_hz"])

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            pos, vel = reorder_joint_state(msg.name, msg.position, msg.velocity, self.joint_names)
        except (KeyError, ValueError) as err:
            self.bad_joint_states += 1
            self.get_logger().warning(f"joint state ignored: {err}", throttle_duration_sec=5.0)
            return
        obs = Observation(seq=self.seq, episode=self.episode, data=self.builder.build(pos, vel).tolist())
        obs.header.stamp = msg.header.stamp  # sensor time, not now: ages downstream start at sensing
        self.seq += 1
        self.pub.publish(obs)

    def _on_command(self, msg: Float64MultiArray) -> None:
        if len(msg.data) == self.builder.task.action_dim:
            self.builder.record_command(msg.data)

    def _on_reward(self, msg: Reward) -> None:
        if msg.terminated or msg.truncated:
            self.episode = msg.episode + 1
            self.builder.reset()

    def status(self) -> tuple[str, dict]:
        values = {
            "observations": self.seq,
            "episode": self.episode,
            "bad_joint_states": self.bad_joint_states,
            "observation_size": self.builder.size,
        }
        return "running", values


def main(argv: list[str] | None = None) -> int:
    return run("sensor_ingest", SensorIngest, argv)


if __name__ == "__main__":
    raise SystemExit(main())
