"""rt_rl's own checkpoints as ONNX models with a contract, and their parity with the torch version.

The ONNX graph is written node by node with `onnx.helper` (no tracing): it is one `LayeredActor.tick`
followed by `step`'s tanh, so a pipelined policy's per-tick state (every layer's activations and the
head computed at the previous tick) is explicit:

    inputs   obs [1, D], acts_in [depth, 1, hidden], head_in [1, 2A]      (D = obs + history * A)
    outputs  action [1, A] = tanh(head_in[:, :A]), acts_out, head_out      (the next call's state)

An instant MLP has no state tensors. The contract written beside the model maps the ingest's
observation (Gymnasium layout + executed commands) to `obs` with the checkpoint's normalisation, and
`action` to the command with the task's action range, so the worker runs the ONNX file exactly as the
checkpoint. `trajectory_parity` runs both on one Hopper-style rollout (episodes and resets included).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rt_rl.policy.contract import CONTRACT_FORMAT, actuated_joints
from rt_rl.tasks import TaskSpec, get_task

OPSET = 17
IR_VERSION = 8  # onnxruntime reads IR 8 models on every release since 1.14


def export_onnx(net: Any, out: Path) -> dict[str, Any]:
    """Write `net` (a networks.LayeredActor) as ONNX to `out`; the model section of its contract."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    D, A, H, depth = net.input_dim, net.act_dim, net.hidden, net.depth
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    inits = [
        numpy_helper.from_array(sd["first.weight"], "first_w"),
        numpy_helper.from_array(sd["first.bias"], "first_b"),
        numpy_helper.from_array(sd["head.weight"], "head_w"),
        numpy_helper.from_array(sd["head.bias"], "head_b"),
    ]

    def const(name: str, values: list[int]) -> None:
        inits.append(numpy_helper.from_array(np.array(values, dtype=np.int64), name))

    nodes = []
    f32 = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("obs", f32, [1, D])]
    outputs = [helper.make_tensor_value_info("action", f32, [1, A])]
    if net.instant:  # all layers on this observation, in sequence
        nodes.append(helper.make_node("Gemm", ["obs", "first_w", "first_b"], ["h0"], transB=1))
        nodes.append(helper.make_node("Relu", ["h0"], ["r0"]))
        h = "r0"
        for i in range(depth - 1):
            inits.append(numpy_helper.from_array(sd["deep_w"][i], f"deep_w{i}"))
            inits.append(numpy_helper.from_array(sd["deep_b"][i], f"deep_b{i}"))
            nodes.append(helper.make_node("Gemm", [h, f"deep_w{i}", f"deep_b{i}"], [f"h{i + 1}"]))
            nodes.append(helper.make_node("Relu", [f"h{i + 1}"], [f"r{i + 1}"]))
            h = f"r{i + 1}"
        nodes.append(helper.make_node("Gemm", [h, "head_w", "head_b"], ["head"], transB=1))
        head_for_action, state = "head", []
    else:
        inputs += [
            helper.make_tensor_value_info("acts_in", f32, [depth, 1, H]),
            helper.make_tensor_value_info("head_in", f32, [1, 2 * A]),
        ]
        outputs += [
            helper.make_tensor_value_info("acts_out", f32, [depth, 1, H]),
            helper.make_tensor_value_info("head_out", f32, [1, 2 * A]),
        ]
        const("ax0", [0])
        const("ax1", [1])
        const("last_lo", [depth - 1])
        const("last_hi", [depth])
        nodes.append(helper.make_node("Gemm", ["obs", "first_w", "first_b"], ["first_lin"], transB=1))
        nodes.append(helper.make_node("Relu", ["first_lin"], ["new_first"]))
        nodes.append(helper.make_node("Unsqueeze", ["new_first", "ax0"], ["new_first3"]))  # [1, 1, H]
        if depth > 1:
            const("zero", [0])
            const("deep_n", [depth - 1])
            # layers 2..depth at t take layers 1..depth-1 of t-1 (and o_t through the skips)
            nodes.append(helper.make_node("Slice", ["acts_in", "zero", "deep_n", "ax0"], ["prev"]))
            prev = "prev"
            if net.skip:
                const("obs_rep", [depth - 1, 1, 1])
                nodes.append(helper.make_node("Unsqueeze", ["obs", "ax0"], ["obs3"]))  # [1, 1, D]
                nodes.append(helper.make_node("Tile", ["obs3", "obs_rep"], ["obs_rep3"]))
                nodes.append(helper.make_node("Concat", ["obs_rep3", "prev"], ["prev_skip"], axis=-1))
                prev = "prev_skip"
            inits.append(numpy_helper.from_array(sd["deep_w"], "deep_w"))  # [depth-1, in, H]
            inits.append(numpy_helper.from_array(sd["deep_b"][:, None, :], "deep_b"))  # [depth-1, 1, H]
            nodes.append(helper.make_node("MatMul", [prev, "deep_w"], ["deep_mm"]))
            nodes.append(helper.make_node("Add", ["deep_mm", "deep_b"], ["deep_lin"]))
            nodes.append(helper.make_node("Relu", ["deep_lin"], ["deep"]))
            nodes.append(helper.make_node("Concat", ["new_first3", "deep"], ["acts_out"], axis=0))
        else:
            nodes.append(helper.make_node("Identity", ["new_first3"], ["acts_out"]))
        nodes.append(helper.make_node("Slice", ["acts_in", "last_lo", "last_hi", "ax0"], ["last3"]))
        nodes.append(helper.make_node("Squeeze", ["last3", "ax0"], ["last"]))  # [1, H]
        head_src = "last"
        if net.skip:
            nodes.append(helper.make_node("Concat", ["obs", "last"], ["head_cat"], axis=-1))
            head_src = "head_cat"
        nodes.append(helper.make_node("Gemm", [head_src, "head_w", "head_b"], ["head_out"], transB=1))
        head_for_action = "head_in"  # the head computed at the previous tick acts now
        state = [
            {"input": "acts_in", "output": "acts_out", "shape": [depth, 1, H]},
            {"input": "head_in", "output": "head_out", "shape": [1, 2 * A]},
        ]
    const("a_lo", [0])
    const("a_hi", [A])
    const("a_ax", [1])
    nodes.append(helper.make_node("Slice", [head_for_action, "a_lo", "a_hi", "a_ax"], ["mean"]))
    nodes.append(helper.make_node("Tanh", ["mean"], ["action"]))
    graph = helper.make_graph(nodes, f"rt_rl_{net.arch}", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="rt_rl")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    delay = 0 if net.instant else (1 if net.skip else depth + 1)
    return {"input": "obs", "output": "action", "output_delay": delay, "state": state}


def contract_for(info: Any, task: TaskSpec, model: dict[str, Any]) -> dict[str, Any]:
    """The contract of an rt_rl checkpoint: its observation layout, normalisation, history, timing."""
    n = task.obs_dim
    mean = np.zeros(n) if info.obs_mean is None else np.asarray(info.obs_mean, dtype=np.float64)
    std = np.ones(n) if info.obs_std is None else np.asarray(info.obs_std, dtype=np.float64)
    pos = list(task.joint_names[task.excluded_positions :])
    n_pos = len(pos)
    half = (task.action_high - task.action_low) / 2.0
    mid = (task.action_high + task.action_low) / 2.0
    terms: list[dict[str, Any]] = [
        {
            "type": "joint_pos",
            "joints": pos,
            "offset": mean[:n_pos].tolist(),
            "scale": (1 / std[:n_pos]).tolist(),
        },
        {
            "type": "joint_vel",
            "joints": list(task.joint_names),
            "offset": mean[n_pos:].tolist(),
            "scale": (1 / std[n_pos:]).tolist(),
        },
    ]
    if info.history_length:
        # rt_rl's history is the executed commands themselves: undo the contract's command->policy units
        terms.append(
            {
                "type": "previous_actions",
                "count": info.history_length,
                "scale": half,
                "offset": 0.0 - mid / half + 0.0,
            }
        )
    timing = {"control_period": info.timing["control_period"]} if "control_period" in info.timing else {}
    if "inference_ticks" in info.timing:
        timing["delay_ticks"] = int(info.timing["inference_ticks"])
    return {
        "format": CONTRACT_FORMAT,
        "task": task.gym_id,
        "notes": f"exported from rt_rl checkpoint {info.version} ({info.arch}, depth {info.depth}, hidden {info.hidden})",
        "observation": {"terms": terms, "history": {"length": 1, "layout": "frame_major"}},
        "action": {"joints": list(actuated_joints(task)), "scale": half, "offset": mid, "clip": [-1.0, 1.0]},
        "model": model,
        "timing": timing,
    }


def export_checkpoint(checkpoint: str, out: Path) -> tuple[Path, Path]:
    """Write OUT.onnx and OUT.contract.yaml beside it; returns both paths."""
    from rt_rl.policy.contract import sibling_contract
    from rt_rl.policy.runtime import load_policy, read_policy_info

    info = read_policy_info(checkpoint)
    task = get_task(info.task)
    policy = load_policy(checkpoint, task)
    model = export_onnx(policy.net, out)
    contract_path = sibling_contract(out)
    contract_path.write_text(
        yaml.safe_dump(contract_for(info, task, model), sort_keys=False, width=110, default_flow_style=None)
    )
    return out, contract_path


def trajectory_parity(
    checkpoint: str, model: Path, steps: int = 1000, seed: int = 0
) -> tuple[float, dict[str, np.ndarray]]:
    """Run the torch checkpoint on a Gymnasium rollout of `steps` steps (resets included) and the ONNX
    model through its contract on the same observations: max |command difference| and the reference
    (inputs: the ingest's vectors [steps, D]; outputs: torch commands [steps, A]; episode_starts)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batch-1 steps: more threads only contend (4 ms a step on 2 busy cores)
    try:
        return _trajectory_parity(checkpoint, model, steps, seed)
    finally:
        torch.set_num_threads(threads)


def _trajectory_parity(
    checkpoint: str, model: Path, steps: int, seed: int
) -> tuple[float, dict[str, np.ndarray]]:
    import gymnasium as gym

    from rt_rl.core.observation import ObservationBuilder
    from rt_rl.policy.runtime import load_policy, read_policy_info

    info = read_policy_info(checkpoint)
    task = get_task(info.task)
    torch_policy = load_policy(checkpoint, task)
    onnx_policy = load_policy(str(model), task)
    builder = ObservationBuilder(task, info.history_length, info.obs_mean, info.obs_std)
    env = gym.make(task.gym_id)
    env.reset(seed=seed)
    data = env.unwrapped.data
    inputs, outputs, starts, worst = [], [], [], 0.0
    start = True
    for _ in range(steps):
        if start:
            torch_policy.reset()
            onnx_policy.reset()
            builder.reset()
        x = builder.build(data.qpos, data.qvel)
        a_torch = torch_policy.act(x)
        a_onnx = onnx_policy.act(x)
        worst = max(worst, float(np.max(np.abs(a_torch - a_onnx))))
        inputs.append(x)
        outputs.append(a_torch)
        starts.append(start)
        _, _, terminated, truncated, _ = env.step(a_torch.astype(np.float32))
        builder.record_command(a_torch)
        start = terminated or truncated
        if start:
            env.reset()
    env.close()
    ref = {
        "inputs": np.asarray(inputs, dtype=np.float32),
        "outputs": np.asarray(outputs, dtype=np.float64),
        "episode_starts": np.asarray(starts, dtype=bool),
    }
    return worst, ref
