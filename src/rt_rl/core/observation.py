"""The policy observation, built one way for the live graph and for training.

`sensor_ingest` feeds it `sensor_msgs/JointState` fields; the Gymnasium training environment feeds
it MuJoCo's qpos/qvel. Both paths go through `ObservationBuilder.build`, so a policy trained in
simulation sees exactly the vector the robot graph gives it:

    observation = normalise(raw) ++ last k executed commands (oldest first)
    raw         = positions[excluded:] ++ clip(velocities)     (Gymnasium v5 layout)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

from rt_rl.tasks import TaskSpec


class ObservationBuilder:
    def __init__(
        self,
        task: TaskSpec,
        history_length: int = 0,
        obs_mean: Sequence[float] | None = None,
        obs_std: Sequence[float] | None = None,
    ) -> None:
        if history_length < 0:
            raise ValueError(f"history_length must be >= 0, got {history_length}")
        self.task = task
        self.history_length = history_length
        n = task.obs_dim
        self.mean = np.zeros(n) if obs_mean is None else np.asarray(obs_mean, dtype=np.float64)
        self.std = np.ones(n) if obs_std is None else np.asarray(obs_std, dtype=np.float64)
        if self.mean.shape != (n,) or self.std.shape != (n,):
            raise ValueError(f"normalisation must have {n} entries for {task.gym_id}")
        if np.any(self.std <= 0):
            raise ValueError("normalisation std must be > 0")
        self._history: deque[np.ndarray] = deque(maxlen=max(history_length, 1))
        self.reset()

    @property
    def size(self) -> int:
        return self.task.obs_dim + self.history_length * self.task.action_dim

    def reset(self) -> None:
        """Start of an episode: the command history is zeros, as in the training environment."""
        self._history.clear()
        for _ in range(self.history_length):
            self._history.append(np.zeros(self.task.action_dim))

    def record_command(self, command: Sequence[float]) -> None:
        """Append one executed command (what the actuators really received) to the history."""
        if self.history_length:
            self._history.append(np.asarray(command, dtype=np.float64).reshape(self.task.action_dim))

    def raw(self, positions: Sequence[float], velocities: Sequence[float]) -> np.ndarray:
        """Gymnasium v5 observation from positions/velocities in `task.joint_names` order."""
        pos = np.asarray(positions, dtype=np.float64)[self.task.excluded_positions :]
        vel = np.asarray(velocities, dtype=np.float64)
        if self.task.velocity_clip is not None:
            vel = np.clip(vel, -self.task.velocity_clip, self.task.velocity_clip)
        return np.concatenate((pos, vel))

    def build(self, positions: Sequence[float], velocities: Sequence[float]) -> np.ndarray:
        parts = [(self.raw(positions, velocities) - self.mean) / self.std, *self._history]
        return np.concatenate(parts[: 1 + self.history_length]).astype(np.float32)


def reorder_joint_state(
    names: Sequence[str], positions: Sequence[float], velocities: Sequence[float], wanted: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Pick `wanted` joints, in that order, out of a JointState (which may list them in any order).

    Raises KeyError naming the first missing joint; a JointState without velocities is refused too.
    """
    if len(velocities) != len(names) or len(positions) != len(names):
        raise ValueError("JointState needs one position and one velocity per joint name")
    index = {n: i for i, n in enumerate(names)}
    try:
        order = [index[w] for w in wanted]
    except KeyError as missing:
        raise KeyError(f"joint {missing} not in JointState") from None
    return np.asarray(positions, dtype=np.float64)[order], np.asarray(velocities, dtype=np.float64)[order]


class JointPicker:
    """`reorder_joint_state` for a stream: the index order is worked out once per distinct name list
    (a JointState stream repeats the same names), not once per sample. A sample whose picked positions
    or velocities are not finite is refused (ValueError), as is one with mismatched lengths."""

    def __init__(self, wanted: Sequence[str]) -> None:
        self.wanted = list(wanted)
        self._names: tuple[str, ...] | None = None
        self._order: np.ndarray | None = None

    def __call__(
        self, names: Sequence[str], positions: Sequence[float], velocities: Sequence[float]
    ) -> tuple[np.ndarray, np.ndarray]:
        if len(velocities) != len(names) or len(positions) != len(names):
            raise ValueError("JointState needs one position and one velocity per joint name")
        key = tuple(names)
        if key != self._names:
            index = {n: i for i, n in enumerate(key)}
            try:
                self._order = np.array([index[w] for w in self.wanted], dtype=np.intp)
            except KeyError as missing:
                raise KeyError(f"joint {missing} not in JointState (it names {', '.join(key)})") from None
            self._names = key
        pos = np.asarray(positions, dtype=np.float64)[self._order]
        vel = np.asarray(velocities, dtype=np.float64)[self._order]
        if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(vel))):
            raise ValueError("JointState has a position or velocity that is not finite (NaN or inf)")
        return pos, vel
