"""The MuJoCo side of a task, shared by the live `mujoco_sim` node and the training environment.

Both create the Gymnasium env the same way (same frame_skip, same episode length), so the physics a
policy was trained on is the physics the live graph runs.
"""

from __future__ import annotations

import math

import gymnasium as gym
import mujoco
import numpy as np

from rt_rl.tasks import TaskSpec


def physics_timestep(task: TaskSpec) -> float:
    env = gym.make(task.gym_id)
    try:
        return float(env.unwrapped.model.opt.timestep)
    finally:
        env.close()


def frame_skip_for_rate(task: TaskSpec, sensor_rate_hz: float, timestep: float | None = None) -> int:
    """Physics steps per sensor sample; the rate must divide the physics rate (1/timestep)."""
    dt = physics_timestep(task) if timestep is None else timestep
    ratio = 1.0 / (sensor_rate_hz * dt)
    frame_skip = round(ratio)
    if frame_skip < 1 or not math.isclose(ratio, frame_skip, rel_tol=1e-6):
        allowed = ", ".join(f"{1.0 / (k * dt):g}" for k in range(1, 6))
        raise ValueError(
            f"sensor_rate_hz {sensor_rate_hz:g} does not divide the {task.gym_id} physics rate "
            f"{1.0 / dt:g} Hz (allowed: {allowed}, ...)"
        )
    return frame_skip


def make_env(
    task: TaskSpec,
    frame_skip: int,
    episode_seconds: float,
    seed: int | None = None,
    terminate_when_unhealthy: bool = True,
) -> gym.Env:
    """The task's Gymnasium env with `frame_skip` physics steps per env step and a time limit in seconds.

    `terminate_when_unhealthy=False` (tasks that have the option: Hopper, Walker2d, Ant, Humanoid) keeps
    an episode running after a fall, until its time limit: timing benchmarks with an untrained policy
    then measure the graph, not a reset every half second."""
    dt = physics_timestep(task) * frame_skip
    steps = max(1, round(episode_seconds / dt))
    kwargs = {} if terminate_when_unhealthy else {"terminate_when_unhealthy": False}
    env = gym.make(task.gym_id, frame_skip=frame_skip, max_episode_steps=steps, **kwargs)
    env.reset(seed=seed)
    return env


class JointStateReader:
    """Positions and velocities of `task.joint_names`, as a joint_state_broadcaster would report them.
    The joint addresses are looked up once (the sim reads the state hundreds of times a second)."""

    def __init__(self, env: gym.Env, task: TaskSpec) -> None:
        model = env.unwrapped.model
        ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name) for name in task.joint_names]
        self._qpos = np.array([model.jnt_qposadr[j] for j in ids])
        self._qvel = np.array([model.jnt_dofadr[j] for j in ids])
        self._data = env.unwrapped.data

    def __call__(self) -> tuple[np.ndarray, np.ndarray]:
        return self._data.qpos[self._qpos], self._data.qvel[self._qvel]


def joint_state(env: gym.Env, task: TaskSpec) -> tuple[np.ndarray, np.ndarray]:
    """One-off read of the joint state (see JointStateReader for a loop)."""
    return JointStateReader(env, task)()


class SubstepStepper:
    """One task step (`frame_skip` physics steps) whose control may change at every physics step.

    A ros2_control robot writes the newest command to its actuators at every controller update; a
    command arriving mid-period acts from the next update, not from the next sensor sample. Gymnasium's
    `env.step(action)` holds one action over all of its physics steps, so this replaces the env's
    physics call (per instance) with one that asks `control(i)` for the control of physics step i just
    before taking it. Everything else of the task's `step` (reward, termination, time limit) is the
    task's own code.

    The task charges its control cost on the action it was given; here that action is filled, after
    the physics, with sqrt(mean_i ctrl_i**2) per actuator, so the cost is the time average of the
    task's cost over the physics steps (equal to Gymnasium's when the control does not change).
    """

    def __init__(self, env: gym.Env) -> None:
        self.env = env
        self._u = env.unwrapped
        self._control = None
        self._u._step_mujoco_simulation = self._simulate  # an instance attribute shadows the method

    @property
    def physics_dt(self) -> float:
        return float(self._u.model.opt.timestep)

    def _simulate(self, ctrl: np.ndarray, n_frames: int) -> None:
        model, data = self._u.model, self._u.data
        if self._control is None:  # a plain env.step (reset's settling, a caller's own step)
            data.ctrl[:] = ctrl
            mujoco.mj_step(model, data, nstep=n_frames)
        else:
            squares = np.zeros(model.nu)
            for i in range(n_frames):
                data.ctrl[:] = self._control(i)
                squares += np.square(data.ctrl)
                mujoco.mj_step(model, data)
            ctrl[:] = np.sqrt(squares / n_frames)
        mujoco.mj_rnePostConstraint(model, data)  # as Gymnasium does after its physics

    def step(self, control) -> tuple:
        """env.step with `control(i)` -> ctrl of physics step i (0 .. frame_skip - 1)."""
        self._control = control
        try:
            return self.env.step(np.zeros(self._u.model.nu))
        finally:
            self._control = None
