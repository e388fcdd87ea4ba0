"""The twin's prediction for a policy from elsewhere: evaluated under another checkpoint's timing."""

import pytest

from rt_rl.learning.evaluate import evaluate_checkpoint
from rt_rl.policy.export import export_checkpoint

ROBOT = "checkpoints/hopper_pipelined_skip_robot.pt"


def test_an_exported_policy_under_its_own_timing_returns_what_the_checkpoint_does(tmp_path):
    model, _contract = export_checkpoint(ROBOT, tmp_path / "hopper.onnx")
    ours = evaluate_checkpoint(ROBOT, episodes=2, episode_steps=200)
    theirs = evaluate_checkpoint(str(model), episodes=2, episode_steps=200, timing_from=ROBOT)
    assert theirs["timing"] == ours["timing"] and theirs["delay"] == ours["delay"]
    assert theirs["mean_return"] == pytest.approx(ours["mean_return"], rel=0.02)


def test_a_policy_without_twin_timing_asks_for_one(tmp_path):
    model, _contract = export_checkpoint(ROBOT, tmp_path / "hopper.onnx")
    with pytest.raises(ValueError, match="--timing-from"):
        evaluate_checkpoint(str(model), episodes=1, episode_steps=10)
