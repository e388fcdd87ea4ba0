"""The small interface an inference worker needs from a policy, and how one is loaded.

A checkpoint (`torch.save` of a dict) holds the weights, the architecture, the observation
normalisation, the history length and the timing it was trained for, so that sensor_ingest and the
workers can configure themselves from the same file. `random` builds an untrained network with a fixed
seed: useful to exercise the graph's timing before any training.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rt_rl.policy.networks import build_network
from rt_rl.tasks import TaskSpec

CHECKPOINT_FORMAT = "rt_rl.policy/1"


@dataclass
class PolicyInfo:
    """Everything about a policy except its weights."""

    arch: str
    task: str
    obs_dim: int  # task observation size, without history
    act_dim: int
    hidden: int = 256
    depth: int = 3
    history_length: int = 0
    obs_mean: list[float] | None = None
    obs_std: list[float] | None = None
    timing: dict[str, Any] = field(default_factory=dict)  # what it was trained for (delay, period...)
    version: str = ""

    @property
    def input_dim(self) -> int:
        return self.obs_dim + self.history_length * self.act_dim


class Policy:
    """One policy instance with its per-tick state. Not thread-safe: one per worker."""

    def __init__(self, info: PolicyInfo, net: torch.nn.Module, action_low: float, action_high: float):
        self.info = info
        self.net = net.eval()
        self._scale = (action_high - action_low) / 2.0
        self._offset = (action_high + action_low) / 2.0
        self.state: Any = None
        self.reset()

    @property
    def version(self) -> str:
        return self.info.version

    def reset(self) -> None:
        """Episode boundary: the pipeline's activations belong to the old episode."""
        self.state = self.net.initial_state(1)

    @torch.inference_mode()
    def act(self, observation: np.ndarray) -> np.ndarray:
        obs = torch.as_tensor(observation, dtype=torch.float32).reshape(1, -1)
        if obs.shape[1] != self.info.input_dim:
            raise ValueError(f"observation has {obs.shape[1]} entries, policy expects {self.info.input_dim}")
        action, self.state = self.net.step(obs, self.state)
        return action[0].double().numpy() * self._scale + self._offset


def save_checkpoint(path: str | Path, info: PolicyInfo, net: torch.nn.Module, extra: dict | None = None):
    blob = {"format": CHECKPOINT_FORMAT, "info": info.__dict__, "state_dict": net.state_dict()}
    blob.update(extra or {})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, path)


def read_policy_info(path: str | Path) -> PolicyInfo:
    """Read only the description (normalisation, history) of a checkpoint; used by sensor_ingest."""
    return _load_blob(path)[0]


def resolve_checkpoint(path: str | Path) -> Path:
    """A path as given, or else relative to the installed rt_rl package (where shipped checkpoints
    live: `checkpoints/<name>.pt` works from any working directory and on a colcon install)."""
    p = Path(path)
    if not p.is_file() and not p.is_absolute():
        shipped = Path(__file__).resolve().parents[1] / p
        if shipped.is_file():
            return shipped
    return p


def _load_blob(path: str | Path) -> tuple[PolicyInfo, dict]:
    p = resolve_checkpoint(path)
    if not p.is_file():
        raise ValueError(f"policy checkpoint '{path}' is not a readable file")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds; the user needs the file name and the reason
        raise ValueError(
            f"policy checkpoint '{path}' could not be read: {str(err).splitlines()[0]}"
        ) from None
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"policy checkpoint '{path}' is not an rt_rl checkpoint ({CHECKPOINT_FORMAT})")
    info = PolicyInfo(**blob["info"])
    if not info.version:
        info.version = f"{p.stem}@{hashlib.sha256(p.read_bytes()).hexdigest()[:8]}"
    return info, blob


def load_policy(source: str, task: TaskSpec, seed: int = 0, history_length: int = 0) -> Policy:
    """`source` is 'random' or a checkpoint path. Refuses a checkpoint made for other dimensions."""
    if source == "random":
        torch.manual_seed(seed)
        info = PolicyInfo(
            "mlp",
            task.gym_id,
            task.obs_dim,
            task.action_dim,
            history_length=history_length,
            version=f"random-mlp-seed{seed}",
        )
        net = build_network("mlp", info.input_dim, info.act_dim, info.hidden, info.depth)
        return Policy(info, net, task.action_low, task.action_high)
    info, blob = _load_blob(source)
    if (info.obs_dim, info.act_dim) != (task.obs_dim, task.action_dim):
        raise ValueError(
            f"policy checkpoint '{source}' is for obs {info.obs_dim}/action {info.act_dim} ({info.task}), "
            f"task {task.gym_id} has obs {task.obs_dim}/action {task.action_dim}"
        )
    net = build_network(info.arch, info.input_dim, info.act_dim, info.hidden, info.depth)
    net.load_state_dict(blob["state_dict"])
    return Policy(info, net, task.action_low, task.action_high)
