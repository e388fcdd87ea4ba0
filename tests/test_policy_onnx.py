"""ONNX and TorchScript policies behind the worker's policy interface: export parity with the torch
version, recurrent state carried and reset, shape and name mismatches refused with one line, and the
hot-swap check. No ROS."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import yaml
from onnx import TensorProto, helper, numpy_helper

from rt_rl.policy.contract import contract_from_dict, sibling_contract
from rt_rl.policy.export import export_checkpoint, export_onnx, trajectory_parity
from rt_rl.policy.external import ExternalPolicy
from rt_rl.policy.networks import build_network
from rt_rl.policy.runtime import (
    Policy,
    external_ingest_history,
    load_policy,
    read_policy_info,
    reload_contract,
)
from rt_rl.policy.swap import IngestContract, check_candidate
from rt_rl.tasks import get_task

CHECKPOINT = "checkpoints/hopper_pipelined_skip_robot.pt"
HOPPER = get_task("Hopper-v5")
GYM_TERMS = [
    {"type": "joint_pos", "joints": ["rootz", "rooty", "thigh_joint", "leg_joint", "foot_joint"]},
    {"type": "joint_vel", "joints": ["rootx", "rootz", "rooty", "thigh_joint", "leg_joint", "foot_joint"]},
]
ACTION = {"joints": ["thigh_joint", "leg_joint", "foot_joint"], "clip": [-1.0, 1.0]}


def write_contract(path: Path, model: dict | None = None, terms=GYM_TERMS) -> Path:
    d = {"task": "Hopper-v5", "observation": {"terms": terms}, "action": ACTION, "model": model or {}}
    path.write_text(yaml.safe_dump(d))
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "hopper.onnx"
    export_checkpoint(CHECKPOINT, out)
    return out


def test_exported_pipelined_skip_policy_matches_torch_over_a_1000_step_rollout(exported):
    worst, ref = trajectory_parity(CHECKPOINT, exported, steps=1000, seed=0)
    assert ref["inputs"].shape == (1000, 17) and ref["episode_starts"].sum() >= 2  # resets covered
    assert worst < 1e-5, worst
    assert exported.stat().st_size < 1_000_000


def test_exported_contract_carries_the_checkpoint_description(exported):
    c = contract_from_dict(yaml.safe_load(sibling_contract(exported).read_text()))
    info = read_policy_info(CHECKPOINT)
    assert c.output_delay == 1 and c.previous_actions == info.history_length == 2
    assert [s.shape for s in c.state] == [(3, 1, 64), (1, 6)]
    assert c.timing() == {"control_period": 0.01, "inference_ticks": 1}
    # what sensor_ingest reads for the ONNX file (sibling contract): raw values, 2 past commands
    onnx_info = read_policy_info(str(exported))
    assert (onnx_info.arch, onnx_info.history_length, onnx_info.obs_mean) == ("onnx", 2, None)
    assert external_ingest_history(str(exported)) == 2 and external_ingest_history(CHECKPOINT) is None


@pytest.mark.parametrize(
    "arch, depth", [("mlp", 3), ("pipelined", 3), ("pipelined_skip", 1), ("pipelined_skip", 4)]
)
def test_every_architecture_exports_with_its_state(tmp_path, arch, depth):
    torch.manual_seed(0)
    net = build_network(arch, 7, 2, hidden=16, depth=depth)
    model = export_onnx(net, tmp_path / "m.onnx")
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    state = net.initial_state(1)
    np_state = [np.zeros(s["shape"], np.float32) for s in model["state"]]
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(50):
        x = rng.standard_normal((1, 7)).astype(np.float32)
        with torch.no_grad():
            a, state = net.step(torch.from_numpy(x), state)
        feeds = {"obs": x, **{s["input"]: v for s, v in zip(model["state"], np_state, strict=True)}}
        out = sess.run(["action"] + [s["output"] for s in model["state"]], feeds)
        np_state = out[1:]
        worst = max(worst, float(np.abs(out[0] - a.numpy()).max()))
    assert worst < 1e-5
    assert model["output_delay"] == {"mlp": 0, "pipelined": depth + 1, "pipelined_skip": 1}[arch]


def recurrent_model(path: Path, d: int = 11, h: int = 4, a: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """h' = tanh(x Wx + h Wh); action = h' Wa. Returns the weights for a numpy reference."""
    rng = np.random.default_rng(seed)
    w = {
        "wx": rng.standard_normal((d, h)).astype(np.float32) * 0.3,
        "wh": rng.standard_normal((h, h)).astype(np.float32) * 0.5,
        "wa": rng.standard_normal((h, a)).astype(np.float32),
    }
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("MatMul", ["obs", "wx"], ["xw"]),
        helper.make_node("MatMul", ["h_in", "wh"], ["hw"]),
        helper.make_node("Add", ["xw", "hw"], ["pre"]),
        helper.make_node("Tanh", ["pre"], ["h_out"]),
        helper.make_node("MatMul", ["h_out", "wa"], ["act"]),
    ]
    graph = helper.make_graph(
        nodes,
        "gru_ish",
        [
            helper.make_tensor_value_info("obs", f, ["batch", d]),
            helper.make_tensor_value_info("h_in", f, [1, h]),
        ],
        [
            helper.make_tensor_value_info("act", f, ["batch", a]),
            helper.make_tensor_value_info("h_out", f, [1, h]),
        ],
        [numpy_helper.from_array(v, k) for k, v in w.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return w


def test_recurrent_onnx_state_is_carried_across_ticks_and_reset_at_episode_starts(tmp_path):
    model = tmp_path / "rnn.onnx"
    w = recurrent_model(model)
    write_contract(
        tmp_path / "rnn.contract.yaml",
        {"input": "obs", "output": "act", "state": [{"input": "h_in", "output": "h_out", "shape": [1, 4]}]},
    )
    policy = load_policy(str(model), HOPPER)
    assert isinstance(policy, ExternalPolicy) and policy.info.arch == "onnx" and policy.delay_calls == 0
    rng = np.random.default_rng(3)
    h = np.zeros((1, 4), np.float32)
    for t in range(40):
        if t in (0, 17, 30):  # episode starts
            policy.reset()
            h[:] = 0
        x = rng.standard_normal(11).astype(np.float32)
        h = np.tanh(x[None] @ w["wx"] + h @ w["wh"])
        expected = np.clip(h @ w["wa"], -1, 1)[0]
        np.testing.assert_allclose(policy.act(x), expected, atol=1e-5)
    assert np.any(policy.state[0] != 0)
    policy.reset()
    assert not np.any(policy.state[0])


@pytest.mark.parametrize(
    "model_section, why",
    [
        (
            {"state": [{"input": "h", "output": "h_out", "shape": [1, 4]}]},
            "state input 'h' is not a model input",
        ),
        (
            {"state": [{"input": "h_in", "output": "h_out", "shape": [1, 5]}]},
            "does not have the contract's shape [1, 5]",
        ),
        (
            {},
            "model has 2 inputs besides the state (obs, h_in): name the observation one in contract model.input",
        ),
        ({"input": "obs"}, "model input 'h_in' is neither the observation nor a contract state"),
        (
            {"output": "action", "state": [{"input": "h_in", "output": "h_out", "shape": [1, 4]}]},
            "model.output 'action' is not a model output",
        ),
    ],
)
def test_model_and_contract_that_disagree_are_refused_with_one_line(tmp_path, model_section, why):
    model = tmp_path / "rnn.onnx"
    recurrent_model(model)
    contract = write_contract(tmp_path / "c.yaml", model_section)
    with pytest.raises(ValueError, match=re.escape(why)) as err:
        load_policy(str(model), HOPPER, contract=str(contract))
    assert str(err.value).startswith(f"policy '{model}': ") and "\n" not in str(err.value)


def test_input_size_that_disagrees_with_the_contract_is_refused(exported, tmp_path):
    contract = write_contract(
        tmp_path / "c.yaml", yaml.safe_load(sibling_contract(exported).read_text())["model"]
    )
    with pytest.raises(
        ValueError, match=r"input obs\[1, 17\] float has 17 entries, contract observation size is 11"
    ):
        load_policy(str(exported), HOPPER, contract=str(contract))


def test_action_count_and_missing_contract_and_not_a_model(tmp_path):
    model = tmp_path / "rnn.onnx"
    recurrent_model(model, a=2)
    contract = write_contract(
        tmp_path / "c.yaml", {"state": [{"input": "h_in", "output": "h_out", "shape": [1, 4]}]}
    )
    with pytest.raises(ValueError, match=r"output act.* has 2 entries, contract action.joints count is 3"):
        load_policy(str(model), HOPPER, contract=str(contract))
    with pytest.raises(
        ValueError, match=r"needs a contract: set policy_contract or put rnn\.contract\.yaml beside it"
    ):
        load_policy(str(model), HOPPER)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not an ONNX model onnxruntime can run") as err:
        load_policy(str(junk), HOPPER, contract=str(contract))
    assert "\n" not in str(err.value)
    junk_pt = tmp_path / "junk.pt"
    junk_pt.write_bytes(b"not a model either")
    with pytest.raises(ValueError, match="could not be read"):
        load_policy(str(junk_pt), HOPPER)
    with pytest.raises(ValueError, match="execution provider NoSuchExecutionProvider"):
        load_policy(str(model), HOPPER, contract=str(contract), providers=("NoSuchExecutionProvider",))


class Recurrent(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cell = torch.nn.GRUCell(11, 8)
        self.out = torch.nn.Linear(8, 3)

    def forward(self, obs: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h2 = self.cell(obs, h)
        return torch.tanh(self.out(h2)), h2


def test_torchscript_pt_is_told_apart_from_an_rt_rl_checkpoint_and_runs_with_state(tmp_path):
    torch.manual_seed(0)
    module = Recurrent()
    path = tmp_path / "gru.pt"
    torch.jit.save(torch.jit.script(module), str(path))
    write_contract(sibling_contract(path), {"state": [{"input": "h", "output": "h2", "shape": [1, 8]}]})
    policy = load_policy(str(path), HOPPER)
    assert isinstance(policy, ExternalPolicy) and policy.info.arch == "torchscript"
    assert isinstance(load_policy(CHECKPOINT, HOPPER), Policy)  # an rt_rl .pt stays rt_rl's
    h = torch.zeros(1, 8)
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.standard_normal(11).astype(np.float32)
        with torch.no_grad():
            a, h = module(torch.from_numpy(x)[None], h)
        np.testing.assert_allclose(policy.act(x), a[0].numpy(), atol=1e-6)
    # a state shape the module does not produce is refused by the trial call
    write_contract(tmp_path / "bad.yaml", {"state": [{"input": "h", "output": "h2", "shape": [1, 9]}]})
    with pytest.raises(ValueError, match="does not run on the contract's inputs") as err:
        load_policy(str(path), HOPPER, contract=str(tmp_path / "bad.yaml"))
    assert "\n" not in str(err.value)


def test_hot_swap_between_rt_rl_checkpoint_and_its_onnx_export(exported):
    """What the worker's reload does: load with the running ingest's history, then check_candidate."""
    ingest = IngestContract.of(read_policy_info(CHECKPOINT))  # graph started with the rt_rl checkpoint
    candidate = load_policy(str(exported), HOPPER, ingest_history=ingest.history_length)
    assert check_candidate(str(exported), candidate.info, ingest) is None  # same raw input: no re-map
    assert candidate.delay_calls == 1
    # a graph started with the ONNX model: the ingest appends its contract's 2 commands
    onnx_ingest = IngestContract.of(read_policy_info(str(exported)))
    assert check_candidate(CHECKPOINT, load_policy(CHECKPOINT, HOPPER).info, onnx_ingest) is None
    # an ingest appending fewer commands than the contract takes: refused
    with pytest.raises(ValueError, match="takes 2 previous action"):
        load_policy(str(exported), HOPPER, ingest_history=0)


def test_reload_takes_the_contract_beside_the_new_model_else_the_workers(exported, tmp_path):
    assert reload_contract(str(exported), "/elsewhere/c.yaml") == ""  # hopper.contract.yaml beside it
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(exported.read_bytes())
    assert reload_contract(str(lonely), "/elsewhere/c.yaml") == "/elsewhere/c.yaml"
    assert reload_contract("random", "") == ""
