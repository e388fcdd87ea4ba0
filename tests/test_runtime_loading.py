"""What a worker loads: random or checkpoint policies, and clear refusals of the wrong file."""

import numpy as np
import pytest
import torch

from rt_rl.policy.networks import build_network
from rt_rl.policy.runtime import PolicyInfo, load_policy, read_policy_info, save_checkpoint
from rt_rl.tasks import get_task


def test_random_policy_acts_within_the_task_limits():
    task = get_task("InvertedPendulum-v5")  # actions in [-3, 3]
    policy = load_policy("random", task, seed=1, history_length=2)
    assert policy.info.input_dim == 4 + 2
    rng = np.random.default_rng(0)
    actions = np.array([policy.act(rng.normal(size=6).astype(np.float32) * 10) for _ in range(50)])
    assert actions.shape == (50, 1)
    assert np.all(np.abs(actions) <= 3.0) and actions.std() > 0
    with pytest.raises(ValueError, match="expects 6"):
        policy.act(np.zeros(4, dtype=np.float32))


def test_checkpoint_round_trip_and_dimension_refusal(tmp_path):
    hopper = get_task("Hopper-v5")
    info = PolicyInfo(
        "mlp",
        hopper.gym_id,
        hopper.obs_dim,
        hopper.action_dim,
        hidden=32,
        depth=2,
        history_length=1,
        obs_mean=[0.5] * 11,
        obs_std=[2.0] * 11,
        timing={"num_workers": 2},
    )
    net = build_network("mlp", info.input_dim, info.act_dim, 32, 2)
    path = tmp_path / "hopper.pt"
    save_checkpoint(path, info, net)
    loaded = load_policy(str(path), hopper)
    obs = np.ones(info.input_dim, dtype=np.float32)
    with torch.no_grad():
        expected, _ = net.eval().step(torch.as_tensor(obs)[None], net.initial_state(1))
    expected = expected[0].numpy() * 1.0  # Hopper's actions are in [-1, 1]: no rescaling
    np.testing.assert_allclose(loaded.act(obs), expected, rtol=1e-6)
    assert loaded.version.startswith("hopper@")
    assert read_policy_info(path).obs_mean == [0.5] * 11
    with pytest.raises(ValueError, match="HalfCheetah-v5"):
        load_policy(str(path), get_task("HalfCheetah-v5"))


@pytest.mark.parametrize("content", [b"not a checkpoint", None])
def test_unreadable_or_foreign_files_are_refused(tmp_path, content):
    path = tmp_path / "x.pt"
    if content is None:
        torch.save({"weights": 1}, path)  # a torch file, but not ours
        match = "not an rt_rl checkpoint"
    else:
        path.write_bytes(content)
        match = "could not be read"
    with pytest.raises(ValueError, match=match):
        load_policy(str(path), get_task("Hopper-v5"))
    with pytest.raises(ValueError, match="not a readable file"):
        load_policy(str(tmp_path / "missing.pt"), get_task("Hopper-v5"))
