"""A Stable-Baselines3 SAC policy as an rt_rl checkpoint (no SB3 needed to read it).

An SB3 `model.zip` holds `policy.pth`, a torch state dict. Its SAC actor is an MLP: `latent_pi`
(Linear -> ReLU, repeated), then `mu` and `log_std` heads; the deterministic action is tanh(mu), in
[-1, 1] (SB3 rescales it to the action space, which for Hopper-v5 is [-1, 1] too). rt_rl's `mlp`
LayeredActor has the same shape: `first` + `deep_w` (stored transposed: input x output) + a head that
outputs [mu, log_std]. The weights are copied exactly, so the checkpoint acts as SB3's policy does
(tests/test_sb3_conversion.py checks the forward pass against a plain numpy one).

The checkpoint carries no twin timing (SB3 trained without one): evaluate it with `--timing-from`, and
fine-tune it in the twin with `rt-rl train --arch mlp --depth <layers> --init-actor` (`rt-rl policy fit`).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import torch

from rt_rl.policy.networks import build_network
from rt_rl.policy.runtime import PolicyInfo, save_checkpoint
from rt_rl.tasks import TaskSpec


def read_sb3_actor(path: str | Path) -> dict[str, torch.Tensor]:
    """The `actor.*` tensors of an SB3 SAC model.zip (ValueError in one line if it is not one)."""
    try:
        with zipfile.ZipFile(path) as z:
            state = torch.load(io.BytesIO(z.read("policy.pth")), map_location="cpu", weights_only=True)
    except (OSError, KeyError, zipfile.BadZipFile, RuntimeError) as err:
        raise ValueError(f"'{path}' is not a Stable-Baselines3 model.zip with policy.pth ({err})") from None
    actor = {k[len("actor.") :]: v for k, v in state.items() if k.startswith("actor.")}
    if "mu.weight" not in actor or "latent_pi.0.weight" not in actor:
        raise ValueError(f"'{path}': no SAC actor (actor.latent_pi / actor.mu) in policy.pth")
    return actor


def sb3_sac_to_checkpoint(path: str | Path, out: str | Path, task: TaskSpec) -> PolicyInfo:
    """Write an rt_rl `mlp` checkpoint with the weights of SB3 SAC model `path`; its PolicyInfo."""
    actor = read_sb3_actor(path)
    layers = sorted(
        int(k.split(".")[1]) for k in actor if k.startswith("latent_pi.") and k.endswith(".weight")
    )
    weights = [actor[f"latent_pi.{i}.weight"] for i in layers]
    biases = [actor[f"latent_pi.{i}.bias"] for i in layers]
    hidden = weights[0].shape[0]
    if any(w.shape[0] != hidden for w in weights) or any(w.shape[1] != hidden for w in weights[1:]):
        raise ValueError(f"'{path}': hidden layers of different widths {[tuple(w.shape) for w in weights]}")
    obs_dim, act_dim = weights[0].shape[1], actor["mu.weight"].shape[0]
    if (obs_dim, act_dim) != (task.obs_dim, task.action_dim):
        raise ValueError(
            f"'{path}': obs {obs_dim} / action {act_dim}, task {task.gym_id} has {task.obs_dim} / {task.action_dim}"
        )
    if "log_std.weight" not in actor:
        raise ValueError(f"'{path}': no log_std head (a gSDE actor is not supported)")
    net = build_network("mlp", obs_dim, act_dim, hidden, len(weights))
    with torch.no_grad():
        net.first.weight.copy_(weights[0])
        net.first.bias.copy_(biases[0])
        for i, (w, b) in enumerate(zip(weights[1:], biases[1:], strict=True)):
            net.deep_w[i].copy_(w.T)
            net.deep_b[i].copy_(b)
        net.head.weight.copy_(torch.cat((actor["mu.weight"], actor["log_std.weight"])))
        net.head.bias.copy_(torch.cat((actor["mu.bias"], actor["log_std.bias"])))
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:8]
    info = PolicyInfo(
        "mlp", task.gym_id, obs_dim, act_dim, hidden=hidden, depth=len(weights), version=f"sb3-sac@{digest}"
    )
    save_checkpoint(out, info, net, {"source": {"sb3_model": str(path)}})
    return info
