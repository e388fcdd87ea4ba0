"""Policy networks. Every network maps observations to actions in [-1, 1] through `step`, carrying a
per-tick state (None for an instant MLP); `initial_state` is the state at an episode start.

(The pipelined temporal-skip architectures are added here by the policy issue.)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

ARCHITECTURES = ("mlp",)


class MLPActor(nn.Module):
    """Instant (undelayed) deterministic actor: depth hidden ReLU layers, tanh head."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, depth: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = obs_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, act_dim)

    def initial_state(self, batch: int = 1) -> Any:
        return None

    def step(self, obs: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        return torch.tanh(self.head(self.body(obs))), state


def build_network(arch: str, obs_dim: int, act_dim: int, hidden: int = 256, depth: int = 3) -> nn.Module:
    if arch == "mlp":
        return MLPActor(obs_dim, act_dim, hidden, depth)
    raise ValueError(f"unknown architecture '{arch}' (allowed: {', '.join(ARCHITECTURES)})")
