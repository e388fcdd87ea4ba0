"""`rt-rl average-policy`: the mean of one run's snapshots, refused across runs."""

from pathlib import Path

import numpy as np
import torch

from rt_rl.learning.average import main
from rt_rl.policy.networks import build_network
from rt_rl.policy.runtime import PolicyInfo, load_policy, save_checkpoint
from rt_rl.tasks import get_task

TASK = get_task("InvertedPendulum-v5")


def snapshot(path: Path, seed: int, **info) -> Path:
    torch.manual_seed(seed)
    kw = {"hidden": 8, "depth": 2, "timing": {"inference_ticks": 2}} | info
    pi = PolicyInfo("pipelined_skip", TASK.gym_id, TASK.obs_dim, TASK.action_dim, **kw)
    save_checkpoint(path, pi, build_network(pi.arch, pi.input_dim, pi.act_dim, pi.hidden, pi.depth))
    return path


def test_average_is_the_mean_of_the_weights_and_loads_like_a_checkpoint(tmp_path, capsys):
    a, b = snapshot(tmp_path / "a.pt", 0), snapshot(tmp_path / "b.pt", 1)
    assert main([str(tmp_path / "avg.pt"), str(a), str(b)]) == 0
    wa, wb = (torch.load(p, weights_only=True)["state_dict"] for p in (a, b))
    avg = torch.load(tmp_path / "avg.pt", weights_only=True)
    for k in wa:
        assert torch.allclose(avg["state_dict"][k], (wa[k] + wb[k]) / 2)
    assert avg["averaged_from"] == ["a.pt", "b.pt"]
    policy = load_policy(str(tmp_path / "avg.pt"), TASK)
    assert policy.info.version.endswith("-avg2")
    assert np.isfinite(policy.act(np.zeros(TASK.obs_dim))).all()


def test_average_refuses_snapshots_of_different_runs_in_one_line(tmp_path, capsys):
    a = snapshot(tmp_path / "a.pt", 0)
    other = snapshot(tmp_path / "other.pt", 1, timing={"inference_ticks": 3})
    assert main([str(tmp_path / "avg.pt"), str(a), str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "timing differ" in err
    assert main([str(tmp_path / "avg.pt"), str(a)]) == 2
    (tmp_path / "junk.pt").write_text("not torch")
    assert main([str(tmp_path / "avg.pt"), str(a), str(tmp_path / "junk.pt")]) == 2
    assert not (tmp_path / "avg.pt").exists()
