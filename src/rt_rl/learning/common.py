"""What the two trainers share (`rt-rl train`, `rt-rl train-offline`): the command line made from a
hyper-parameter dataclass (CleanRL style: each field's trailing comment is its --help), the critic
network, and the Polyak update of target networks."""

from __future__ import annotations

import argparse
import inspect
import re
from collections.abc import Iterable
from dataclasses import fields
from typing import Any

import torch
from torch import nn


def field_help(cls: type) -> dict[str, str]:
    """Each dataclass field's trailing comment in the class source: its --help text."""
    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    return {m[1]: m[2] for m in re.finditer(r"^\s+(\w+): [^=\n]+=[^#\n]*#\s*(.*)$", src, re.M)}


def add_config_arguments(p: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """One --flag per field of the hyper-parameter dataclass `cls`, its comment as the --help text."""
    helps = field_help(cls)
    for f in fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        text = helps.get(f.name, "").replace("%", "%%") + " (default: %(default)r)"
        if f.type in ("bool", bool):  # --flag / --no-flag, as CleanRL's tyro
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=text)
        else:
            kind = {"int": int, "float": float, "str": str}[str(f.type)]
            p.add_argument(flag, type=kind, default=f.default, help=text)


def config_from_args(cls: type, args: argparse.Namespace) -> Any:
    """The hyper-parameter dataclass `cls` from the parsed --flags of `add_config_arguments`."""
    return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})


class Critic(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(obs_dim + act_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat((obs, act), -1)).squeeze(-1)


@torch.no_grad()
def polyak(pairs: Iterable[tuple[nn.Module, nn.Module]], tau: float) -> None:
    """Move each target network (second of a pair) a step `tau` towards its network."""
    for net, tgt in pairs:
        for p, pt in zip(net.parameters(), tgt.parameters(), strict=True):
            pt.mul_(1 - tau).add_(p, alpha=tau)
