"""A corrupt or poisoned checkpoint is refused with one line naming the file and the reason."""

import math

import pytest
import torch

from rt_rl.core.arbiter import ArbiterConfig
from rt_rl.policy.runtime import load_policy
from rt_rl.tasks import get_task

ROBOT = "src/rt_rl/checkpoints/hopper_pipelined_skip_robot.pt"
HOPPER = get_task("Hopper-v5")


def _variant(tmp_path, change) -> str:
    blob = torch.load(ROBOT, weights_only=True)
    change(blob)
    path = tmp_path / "bad.pt"
    torch.save(blob, path)
    return str(path)


def _nan_weight(blob):
    blob["state_dict"][next(iter(blob["state_dict"]))].view(-1)[0] = math.nan


def _missing_weight(blob):
    blob["state_dict"].pop(next(iter(blob["state_dict"])))


def _bad_metadata(blob):
    blob["info"] = {"arch": "mlp"}


@pytest.mark.parametrize(
    "change, reason",
    [(_nan_weight, "non-finite weights"), (_missing_weight, "do not fit"), (_bad_metadata, "metadata")],
)
def test_a_poisoned_checkpoint_is_refused_in_one_line(tmp_path, change, reason):
    with pytest.raises(ValueError, match=reason) as err:
        load_policy(_variant(tmp_path, change), HOPPER)
    assert "\n" not in str(err.value) and "bad.pt" in str(err.value)


def test_a_file_that_is_not_a_checkpoint_is_refused_in_one_line(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="could not be read") as err:
        load_policy(str(path), HOPPER)
    assert "\n" not in str(err.value) and "weights_only" not in str(err.value)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_command_limits_must_be_finite(bad):
    with pytest.raises(ValueError, match="finite"):
        ArbiterConfig(action_dim=3, lower=[-1.0, bad, -1.0], upper=[1.0, 1.0, 1.0])
