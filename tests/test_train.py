"""SAC smoke test: train a few hundred ticks, resume, and load the result as a live worker would."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rt_rl.learning import train
from rt_rl.learning.evaluate import evaluate_checkpoint
from rt_rl.policy.runtime import load_policy, read_policy_info
from rt_rl.tasks import get_task

TINY = [
    "--hidden",
    "16",
    "--critic-hidden",
    "32",
    "--batch-size",
    "32",
    "--learning-starts",
    "100",
    "--eval-every",
    "200",
    "--eval-episodes",
    "1",
    "--checkpoint-every",
    "150",
    "--no-progress",
]


def test_train_resume_and_load(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [
        "--task",
        "InvertedPendulum-v5",
        "--arch",
        "pipelined_skip",
        "--depth",
        "2",
        "--delay",
        "2",
        "--workers",
        "2",
        "--history",
        "2",
        "--out",
        str(out),
        *TINY,
    ]
    assert train.main([*args, "--total-ticks", "300"]) == 0
    first = (out / "progress.csv").read_text().splitlines()
    assert first[0] == "tick,episode,return,length_ticks,wall_s" and len(first) > 2
    evals = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert [e["tick"] for e in evals][:1] == [200]

    export = tmp_path / "policy.pt"
    assert train.main([*args, "--total-ticks", "400", "--resume", "--export", str(export)]) == 0
    blob_ticks = [json.loads(line)["tick"] for line in (out / "eval.jsonl").read_text().splitlines()]
    assert blob_ticks[-1] == 400  # continued from 300, not restarted

    info = read_policy_info(export)
    assert info.arch == "pipelined_skip" and info.history_length == 2 and len(info.obs_mean) == 4
    assert info.timing == {
        "control_period": pytest.approx(0.04),
        "sensor_period": pytest.approx(0.04),
        "frame_skip": 2,
        "inference_ticks": 2,
        "num_workers": 2,
        "fallback": "hold",
    }
    policy = load_policy(str(export), get_task("InvertedPendulum-v5"))
    action = policy.act(np.zeros(info.input_dim, np.float32))
    assert action.shape == (1,) and np.all(np.abs(action) <= 3.0)
    with pytest.raises(ValueError, match="obs"):
        load_policy(str(export), get_task("Hopper-v5"))
    result = evaluate_checkpoint(str(export), episodes=1)
    assert result["episodes"] == 1 and result["mean_return"] > 0


def test_resume_refuses_other_architecture(tmp_path: Path) -> None:
    out = tmp_path / "run"
    base = ["--task", "InvertedPendulum-v5", "--out", str(out), *TINY]
    assert train.main([*base, "--arch", "mlp", "--total-ticks", "150"]) == 0
    assert train.main([*base, "--arch", "pipelined", "--total-ticks", "200", "--resume"]) == 2


def test_critic_state_holds_commands_in_flight() -> None:
    """D = 2: x_t = o_t ++ the commands applied at t, t+1; the scored action is the decision made at t.

    In flight = decisions of the workers started at t-2, t-1, or the executed fallback before any
    started; decisions are known even when the episode ends before they land (no hindsight padding).
    """
    cfg = train.SACConfig(arch="mlp", hidden=8, depth=1, delay=2, critic_hidden=8)
    sac = train.SAC(cfg, input_dim=2, act_dim=1, stride=1)
    rb = train.TickReplay(2, 1, capacity=4)  # grows as needed
    rb.start_episode(np.zeros(2))
    for t in range(5):  # ticks 0..4, final observation row 5; decision d_t = 10 + t lands at t + 2
        executed = 0.0 if t < 2 else 10.0 + t - 2
        rb.add_tick(np.array([executed]), 1.0, False, np.full(2, t + 1.0), np.array([10.0 + t]))
    rb.start_episode(np.full(2, 9.0))  # next episode: must not leak into the first one
    rb.add_tick(np.array([9.0]), 1.0, False, np.full(2, 9.0), np.array([9.0]))
    rows = np.array([1, 3, 5])
    x, decision = sac._pending(rb, rows, rb.ep_start[rows])
    assert x.tolist() == [[1.0, 1.0, 0.0, 10.0], [3.0, 3.0, 11.0, 12.0], [5.0, 5.0, 13.0, 14.0]]
    assert decision.tolist() == [[11.0], [13.0], [0.0]]
