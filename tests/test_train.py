"""SAC smoke test: train a few hundred ticks, resume, and load the result as a live worker would."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch

from rt_rl.learning import train
from rt_rl.learning.common import field_help
from rt_rl.learning.evaluate import evaluate_checkpoint
from rt_rl.learning.sac import SAC, TickReplay
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
        "delay_choices": [2],
        "episode_steps": 1000,
        "episode_seconds": pytest.approx(40.0),
        "actuation_offset": (0.0, 0.0),
        "offset_jitter": 0.0,
        "physics_dt": pytest.approx(0.02),
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
    sac = SAC(cfg, input_dim=2, act_dim=1, stride=1)
    rb = TickReplay(2, 1, capacity=8)
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


def test_critic_state_with_varying_delay_pads_to_the_longest_and_names_d() -> None:
    """Choices {1, 3}: x_t = o_t ++ 3 command slots (the episode's D in flight first, zeros after) ++
    one-hot of D, so the critic sees the same Markov state whatever D the episode drew."""
    cfg = train.SACConfig(arch="mlp", hidden=8, depth=1, delay=2, delay_choices="1,3", critic_hidden=8)
    sac = SAC(cfg, input_dim=1, act_dim=1, stride=1)
    assert sac.q1.net[0].in_features == 1 + 3 + 2 + 1
    rb = TickReplay(1, 1, capacity=16)
    for d in (1, 3):
        rb.start_episode(np.zeros(1), d)
        for t in range(5):  # decision 10*d + t, made at tick t, lands at t + d
            executed = 0.0 if t < d else 10.0 * d + t - d
            rb.add_tick(np.array([executed]), 1.0, False, np.full(1, t + 1.0), np.array([10.0 * d + t]))
    rows = np.array([2, 6 + 4])  # tick 2 of the D = 1 episode, tick 4 of the D = 3 episode
    x, decision = sac._pending(rb, rows, rb.ep_start[rows])
    assert x.tolist() == [[2.0, 11.0, 0.0, 0.0, 1.0, 0.0], [4.0, 31.0, 32.0, 33.0, 0.0, 1.0]]
    assert decision.tolist() == [[12.0], [34.0]]


def test_replay_ring_honours_its_size_and_survives_a_round_trip() -> None:
    rb = TickReplay(1, 1, capacity=6)
    rb.start_episode(np.zeros(1), 2)
    for t in range(13):  # 15 rows written (0..14), the last 6 (rows 9..14) kept
        if t == 7:
            rb.start_episode(np.full(1, 100.0), 3)  # row 8: a new episode
        rb.add_tick(np.zeros(1), 0.0, False, np.full(1, t + 1.0), np.zeros(1))
    assert len(rb) == 6 and rb.obs.shape == (6, 1) and rb.n == 15
    kept = np.arange(9, 15)
    assert rb.obs[rb.slot(kept), 0].tolist() == [8, 9, 10, 11, 12, 13]  # row 8 (episode start) is gone
    rows = rb.sample(np.random.default_rng(0), 200, lookback=2)
    assert rows.min() >= 15 - 6 + 2 and rows.max() <= 13  # never an overwritten row nor a look-back past one
    back = TickReplay.from_state(rb.state(), capacity=6)
    for name in ("obs", "cmd", "dec", "rew", "term", "ep_start", "delay", "has_next"):
        assert np.array_equal(getattr(back, name)[back.slot(kept)], getattr(rb, name)[rb.slot(kept)])
    assert (back.n, back._start, back._delay) == (rb.n, rb._start, rb._delay)
    smaller = TickReplay.from_state(rb.state(), capacity=3)
    assert len(smaller) == 3 and smaller.obs[smaller.slot(np.arange(12, 15)), 0].tolist() == [11, 12, 13]


def test_help_documents_every_hyper_parameter(capsys: pytest.CaptureFixture[str]) -> None:
    helps = field_help(train.SACConfig)
    names = [f.name for f in fields(train.SACConfig)]
    assert [n for n in names if not helps.get(n)] == []
    with pytest.raises(SystemExit):
        train.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert '--delay-choices DELAY_CHOICES e.g. "1,2,3": D drawn per episode' in text
    assert "(default: 1000000)" in text


def test_delay_choices_train_evaluate_per_delay_and_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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
        "--delay-choices",
        "1,2,3",
        "--workers",
        "2",
        "--buffer-size",
        "120",
        "--keep-evaluated",
        "--out",
        str(out),
        *TINY,
    ]
    assert train.main([*args, "--total-ticks", "250"]) == 0
    first = json.loads((out / "eval.jsonl").read_text().splitlines()[0])  # at tick 200
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed[0] == first and len(printed) == 3  # --no-progress: evaluations at 200, 250, summary
    assert set(first["mean_by_delay"]) == {"1", "2", "3"} and len(first["returns"]) == 3
    blob = torch.load(out / "resume.pt", weights_only=False)
    assert len(blob["replay"]["obs"]) == 120 and blob["replay"]["n"] > 250  # the ring kept its size
    assert set(blob["replay"]["delay"].tolist()) <= {1, 2, 3}
    info = read_policy_info(out / "policy.pt")
    assert info.timing["delay_choices"] == [1, 2, 3] and info.timing["inference_ticks"] == 2
    other = ["1,3" if a == "1,2,3" else a for a in args]
    assert train.main([*other, "--total-ticks", "300", "--resume"]) == 2  # other delays: refused
    assert train.main([*args, "--total-ticks", "300", "--resume"]) == 0
    assert json.loads((out / "eval.jsonl").read_text().splitlines()[-1])["tick"] == 300
    kept = sorted(p.name for p in (out / "policies").iterdir())
    assert kept == ["policy_00000200.pt", "policy_00000250.pt", "policy_00000300.pt"]
    at3 = evaluate_checkpoint(str(out / "policy.pt"), episodes=1, delay=3, episode_steps=50)
    assert (at3["delay"], at3["episode_steps"]) == (3, 50) and at3["mean_return"] > 0
    reweighted = ["1,2,3,3" if a == "1,2,3" else a for a in args]  # a curriculum: D = 3 half the time
    assert train.main([*reweighted, "--total-ticks", "350", "--resume"]) == 0
    assert read_policy_info(out / "policy.pt").timing["delay_choices"] == [1, 2, 3, 3]


def test_resume_takes_the_commands_learning_rates_not_the_saved_ones(tmp_path: Path) -> None:
    common = dict(task="InvertedPendulum-v5", hidden=8, depth=1, critic_hidden=8, out=str(tmp_path))
    train.Trainer(train.SACConfig(**common)).save()
    annealed = train.Trainer(train.SACConfig(**common, policy_lr=1e-5, q_lr=2e-5))
    annealed.load()
    assert [g["lr"] for g in annealed.sac.pi_opt.param_groups] == [1e-5]
    assert [g["lr"] for g in annealed.sac.q_opt.param_groups] == [2e-5]
