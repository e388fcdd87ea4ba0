"""The MuJoCo tasks rt_rl can run, and how their Gymnasium observation is laid out.

A task is described by the joints it reads (in observation order) and two details of the Gymnasium
v5 observation: how many leading positions are dropped (the root x of locomotion tasks) and whether
velocities are clipped. Only tasks whose joints all have one degree of freedom are listed, because
`sensor_msgs/JointState` carries one position and one velocity per joint.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    gym_id: str
    joint_names: tuple[str, ...]
    excluded_positions: int  # leading qpos entries left out of the observation (root x)
    velocity_clip: float | None  # Gymnasium clips qvel to [-c, c] for some tasks
    action_dim: int
    action_low: float
    action_high: float

    @property
    def obs_dim(self) -> int:
        return 2 * len(self.joint_names) - self.excluded_positions


_PLANAR_ROOT = ("rootx", "rootz", "rooty")

TASKS: dict[str, TaskSpec] = {
    spec.gym_id: spec
    for spec in (
        TaskSpec(
            "Hopper-v5", (*_PLANAR_ROOT, "thigh_joint", "leg_joint", "foot_joint"), 1, 10.0, 3, -1.0, 1.0
        ),
        TaskSpec(
            "HalfCheetah-v5",
            (*_PLANAR_ROOT, "bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot"),
            1,
            None,
            6,
            -1.0,
            1.0,
        ),
        TaskSpec(
            "Walker2d-v5",
            (
                *_PLANAR_ROOT,
                "thigh_joint",
                "leg_joint",
                "foot_joint",
                "thigh_left_joint",
                "leg_left_joint",
                "foot_left_joint",
            ),
            1,
            10.0,
            6,
            -1.0,
            1.0,
        ),
        TaskSpec("InvertedPendulum-v5", ("slider", "hinge"), 0, None, 1, -3.0, 3.0),
    )
}


def get_task(name: str) -> TaskSpec:
    """Look a task up by its Gymnasium id; a one-line error lists the allowed ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task '{name}' (allowed: {', '.join(TASKS)})") from None
