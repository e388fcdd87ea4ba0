"""An SB3 SAC model.zip becomes an rt_rl mlp checkpoint that acts exactly as SB3's actor does."""

import io
import zipfile

import numpy as np
import pytest
import torch

from rt_rl.policy.runtime import load_policy
from rt_rl.policy.sb3 import sb3_sac_to_checkpoint
from rt_rl.tasks import get_task

HOPPER = get_task("Hopper-v5")


def _fake_sb3_zip(path, obs=11, act=3, hidden=32, layers=2, seed=0):
    """What SB3 writes: model.zip with policy.pth holding actor.latent_pi.{0,2,..}, actor.mu, actor.log_std."""
    g = torch.Generator().manual_seed(seed)
    state, dims = {}, [obs] + [hidden] * layers
    for i in range(layers):
        state[f"actor.latent_pi.{2 * i}.weight"] = torch.randn(dims[i + 1], dims[i], generator=g) * 0.3
        state[f"actor.latent_pi.{2 * i}.bias"] = torch.randn(dims[i + 1], generator=g) * 0.1
    for head in ("mu", "log_std"):
        state[f"actor.{head}.weight"] = torch.randn(act, hidden, generator=g) * 0.3
        state[f"actor.{head}.bias"] = torch.randn(act, generator=g) * 0.1
    state["critic.qf0.0.weight"] = torch.zeros(1)  # ignored
    buf = io.BytesIO()
    torch.save(state, buf)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("policy.pth", buf.getvalue())
    return state


def _sb3_forward(state, obs, layers=2):
    h = obs
    for i in range(layers):
        h = np.maximum(
            0.0,
            h @ state[f"actor.latent_pi.{2 * i}.weight"].numpy().T
            + state[f"actor.latent_pi.{2 * i}.bias"].numpy(),
        )
    return np.tanh(h @ state["actor.mu.weight"].numpy().T + state["actor.mu.bias"].numpy())


def test_the_converted_policy_acts_as_the_sb3_actor(tmp_path):
    state = _fake_sb3_zip(tmp_path / "model.zip")
    info = sb3_sac_to_checkpoint(tmp_path / "model.zip", tmp_path / "sb3.pt", HOPPER)
    assert (info.arch, info.depth, info.hidden, info.history_length) == ("mlp", 2, 32, 0)
    policy = load_policy(str(tmp_path / "sb3.pt"), HOPPER)
    rng = np.random.default_rng(0)
    for obs in rng.normal(size=(50, 11)):
        np.testing.assert_allclose(policy.act(obs), _sb3_forward(state, obs), atol=1e-5)


def test_a_model_for_another_task_or_not_sb3_is_refused_in_one_line(tmp_path):
    _fake_sb3_zip(tmp_path / "cheetah.zip", obs=17, act=6)
    with pytest.raises(ValueError, match="obs 17 / action 6"):
        sb3_sac_to_checkpoint(tmp_path / "cheetah.zip", tmp_path / "x.pt", HOPPER)
    (tmp_path / "junk.zip").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"not a Stable-Baselines3 model\.zip"):
        sb3_sac_to_checkpoint(tmp_path / "junk.zip", tmp_path / "x.pt", HOPPER)


def test_fit_trains_the_converted_actor_at_the_live_checkpoints_timing(tmp_path):
    from rt_rl.learning.train import parse_args
    from rt_rl.policy.fit import train_args
    from rt_rl.policy.runtime import read_policy_info

    _fake_sb3_zip(tmp_path / "model.zip", hidden=64)
    info = sb3_sac_to_checkpoint(tmp_path / "model.zip", tmp_path / "sb3.pt", HOPPER)
    timing = read_policy_info("checkpoints/hopper_pipelined_skip_robot.pt").timing
    cfg, _ = parse_args(train_args(info, timing, tmp_path / "sb3.pt", tmp_path, 30_000, 1.0, 0))
    assert (cfg.arch, cfg.depth, cfg.hidden, cfg.history) == ("mlp", 2, 64, 0)
    assert (cfg.delay, cfg.workers, cfg.frame_skip) == (timing["inference_ticks"], timing["num_workers"], 5)
    assert cfg.offset_range == tuple(timing["actuation_offset"]) and cfg.init_actor.endswith("sb3.pt")
