"""`rt-rl policy check|export`: a model and its contract checked, compared and timed; rt_rl's own
checkpoints exported to ONNX.

rt-rl policy check MODEL [--contract C] [--task T] [--reference REF.npz] [--tolerance X]
                         [--calls N] [--threads K] [--rate HZ] [--providers P,...]
rt-rl policy export CHECKPOINT OUT.onnx [--steps N] [--tolerance X]
rt-rl policy fit SB3_MODEL.zip --timing-from CKPT --out DIR   (rt_rl.policy.fit: twin prediction, fine-tuning)

`check` exits 0 when everything fits, 2 with one line on stderr on any mismatch or bad file (never a
traceback). Without a contract it lists the model's inputs and outputs and says what is missing (exit
2). A reference file (.npz) holds `inputs` [N, D] (what the worker receives: the task's Gymnasium
observation, plus the executed commands if the contract takes previous actions), `outputs` [N, A]
(commands in the task's actuator order) and optionally `episode_starts` [N] (bool: state reset
before that step). The worker count is the auto pool's rule (rt_rl.core.pool.PoolSizer:
ceil(T / P) + 1) with T = the p99 measured here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

WARMUP_CALLS = 50


class CheckFailed(ValueError):
    """The one line `check` prints before exiting 2."""


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "max": float(ms.max())}


def time_calls(policy: Any, inputs: np.ndarray, calls: int) -> list[float]:
    """Seconds per `policy.act` call, clocked with time.perf_counter around each call, after warm-up
    calls (first calls allocate). The inputs are cycled; the state is reset at the end."""
    for i in range(WARMUP_CALLS):
        policy.act(inputs[i % len(inputs)])
    out = []
    for i in range(calls):
        x = inputs[i % len(inputs)]
        t0 = time.perf_counter()
        policy.act(x)
        out.append(time.perf_counter() - t0)
    policy.reset()
    return out


def parity(policy: Any, reference: dict[str, np.ndarray]) -> tuple[float, int, int]:
    """Run the reference inputs through `policy` (state carried, reset at episode starts):
    (max |output difference|, the step where it is largest, steps)."""
    inputs, outputs = reference["inputs"], reference["outputs"]
    starts = reference.get("episode_starts")
    worst, at = 0.0, 0
    policy.reset()
    for i in range(len(inputs)):
        if starts is not None and starts[i] and i > 0:
            policy.reset()
        diff = float(np.max(np.abs(policy.act(inputs[i]) - outputs[i])))
        if not diff <= worst:  # NaN counts as the worst
            worst, at = diff, i
    policy.reset()
    return worst, at, len(inputs)


def load_reference(path: str, input_size: int, action_dim: int) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            ref = {k: np.asarray(z[k]) for k in z.files}
    except (OSError, ValueError) as err:
        raise CheckFailed(f"reference '{path}' is not a readable .npz: {str(err).splitlines()[0]}") from None
    for key in ("inputs", "outputs"):
        if key not in ref:
            raise CheckFailed(f"reference '{path}' has no '{key}' array (has {', '.join(ref) or 'none'})")
    inputs, outputs = ref["inputs"], ref["outputs"]
    if inputs.ndim != 2 or inputs.shape[1] != input_size:
        raise CheckFailed(
            f"reference '{path}': inputs have shape {list(inputs.shape)}, the worker's observation is [N, {input_size}]"
        )
    if outputs.shape != (len(inputs), action_dim):
        raise CheckFailed(
            f"reference '{path}': outputs have shape {list(outputs.shape)}, need [{len(inputs)}, {action_dim}]"
        )
    if "episode_starts" in ref and ref["episode_starts"].shape != (len(inputs),):
        raise CheckFailed(f"reference '{path}': episode_starts must have {len(inputs)} entries")
    return ref


def describe_without_contract(model: str, kind: str, opened: Any) -> list[str]:
    """What a model declares, and what a contract must add."""
    lines = [f"model: {model} ({kind}), no contract"]
    if kind == "onnx":
        from rt_rl.policy.external import OnnxBackend

        backend = OnnxBackend(Path(model))
        lines += [f"  input  {t}" for t in backend.inputs] + [f"  output {t}" for t in backend.outputs]
    else:
        try:
            lines.append(f"  forward: {opened.forward.schema}")
        except (AttributeError, RuntimeError):
            lines.append("  forward: (schema not available)")
        lines.append(
            "  TorchScript does not declare tensor shapes: the contract's sizes are checked by a call"
        )
    from rt_rl.policy.contract import sibling_contract

    lines.append(
        "missing: a contract (--contract C or "
        f"{sibling_contract(model).name} beside the model) naming the observation terms in input order, "
        "the action joints with scale/offset/clip, and any state tensors (docs/policy_contract.md)"
    )
    return lines


def check(a: argparse.Namespace) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))  # before torch is imported
    import torch

    from rt_rl.core.pool import PoolSizer
    from rt_rl.policy.runtime import find_contract, load_external, load_policy, open_model, read_policy_info
    from rt_rl.tasks import get_task

    torch.set_num_threads(a.threads)
    kind, opened = open_model(a.model)
    providers = tuple(p for p in a.providers.split(",") if p)
    lines = []
    if kind == "rt_rl":
        info = read_policy_info(a.model)
        task = get_task(a.task or info.task)
        policy: Any = load_policy(a.model, task, threads=a.threads)
        lines.append(
            f"model: {a.model} (rt_rl checkpoint {info.arch}, version {info.version}): ok; "
            f"input [{info.input_dim}], action [{info.act_dim}], output delay {policy.delay_calls} call(s)"
        )
        input_size = info.input_dim
    else:
        contract = find_contract(a.model, a.contract or "", required=False)
        if contract is None:
            print("\n".join(describe_without_contract(a.model, kind, opened)))
            return 2
        task_name = a.task or contract.task
        if not task_name:
            raise CheckFailed(f"contract '{contract.source}' names no task: give --task")
        task = get_task(task_name)
        policy = load_external(
            a.model, task, a.contract or "", providers=providers, threads=a.threads, opened=(kind, opened)
        )
        input_size = policy.info.input_dim
        c = contract
        lines.append(
            f"model: {a.model} ({kind}, version {policy.version}), contract {c.source}: ok; "
            f"task {task.gym_id}, input '{policy.input_name}' [1, {c.input_size}] from {len(c.terms)} term(s) "
            f"(history {c.history_length}, {c.history_layout}), output '{policy.output_name}' "
            f"[1, {len(c.action.joints)}], {len(c.state)} state tensor(s), output delay {c.output_delay} call(s)"
        )
    reference = None
    if a.reference:
        reference = load_reference(a.reference, input_size, task.action_dim)
        worst, at, steps = parity(policy, reference)
        episodes = int(np.sum(reference.get("episode_starts", np.zeros(0)))) or 1
        if not worst <= a.tolerance:
            raise CheckFailed(
                f"parity: max |output difference| {worst:.3g} > {a.tolerance:g} at step {at} of {steps}"
            )
        lines.append(
            f"parity: {steps} steps ({episodes} episode(s)), max |output difference| {worst:.3g} "
            f"<= {a.tolerance:g}: ok"
        )
    if reference is not None:
        timing_inputs = reference["inputs"].astype(np.float32)
    else:  # unit-scale inputs: what a normalised observation looks like
        timing_inputs = np.random.default_rng(0).standard_normal((256, input_size)).astype(np.float32)
    t = _percentiles(time_calls(policy, timing_inputs, a.calls))
    how = f"{','.join(providers)}, " if kind == "onnx" else ""
    what = "model" if kind == "rt_rl" else "contract mapping + model"
    lines.append(
        f"inference: p50 {t['p50']:.3f} ms, p99 {t['p99']:.3f} ms, max {t['max']:.3f} ms over {a.calls} calls "
        f"({how}{a.threads} thread(s); time.perf_counter around each act(): {what}, "
        f"after {WARMUP_CALLS} warm-up calls)"
    )
    period = 1.0 / a.rate
    n = PoolSizer(1, 1 << 20).wanted(t["p99"] / 1e3, period)
    lines.append(
        f"workers at {a.rate:g} Hz (period {period * 1e3:g} ms): {n} = ceil(T / P) + 1 with T = p99 "
        "(rt_rl.core.pool.PoolSizer, the auto pool's rule)"
    )
    print("\n".join(lines))
    return 0


def export(a: argparse.Namespace) -> int:
    from rt_rl.policy.export import export_checkpoint, trajectory_parity

    out = Path(a.out)
    if out.suffix.lower() != ".onnx":
        raise CheckFailed(f"output '{a.out}' must end in .onnx")
    model, contract = export_checkpoint(a.checkpoint, out)
    worst, ref = trajectory_parity(a.checkpoint, model, a.steps, a.seed)
    reference = out.with_name(out.stem + ".reference.npz")
    np.savez(reference, **ref)
    print(f"wrote {model} ({model.stat().st_size / 1024:.0f} KiB), {contract}, {reference}")
    episodes = int(ref["episode_starts"].sum())
    verdict = "ok" if worst <= a.tolerance else "FAILED"
    print(
        f"parity with the torch checkpoint over a {a.steps}-step Hopper rollout ({episodes} episode(s)): "
        f"max |command difference| {worst:.3g} (tolerance {a.tolerance:g}): {verdict}"
    )
    return 0 if worst <= a.tolerance else 2


def main(argv: list[str] | None = None) -> int:
    if argv and argv[0] == "fit":  # its own module: it trains (rt_rl.policy.fit)
        from rt_rl.policy.fit import main as fit

        return fit(argv[1:])
    ap = argparse.ArgumentParser(prog="rt-rl policy", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="validate a model and its contract, compare with a reference, time it")
    c.add_argument("model", help=".onnx, TorchScript .pt, or an rt_rl checkpoint")
    c.add_argument("--contract", help="contract YAML (default: MODEL's stem + .contract.yaml beside it)")
    c.add_argument("--task", help="task (default: the contract's or checkpoint's)")
    c.add_argument("--reference", help=".npz with inputs [N, D], outputs [N, A], episode_starts [N]")
    c.add_argument("--tolerance", type=float, default=1e-5, help="largest |output difference| accepted")
    c.add_argument("--calls", type=int, default=1000, help="timed calls")
    c.add_argument("--threads", type=int, default=1, help="intra-op threads (the worker's torch_threads)")
    c.add_argument("--rate", type=float, default=100.0, help="control rate in Hz for the worker count")
    c.add_argument(
        "--providers",
        default="CPUExecutionProvider",
        help="onnxruntime execution providers, comma separated, in order of preference",
    )
    e = sub.add_parser("export", help="an rt_rl checkpoint as ONNX + contract + reference, with parity")
    e.add_argument("checkpoint")
    e.add_argument("out", help="OUT.onnx (OUT.contract.yaml and OUT.reference.npz are written beside it)")
    e.add_argument("--steps", type=int, default=1000, help="rollout steps of the parity check")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--tolerance", type=float, default=1e-5)
    a = ap.parse_args(argv)
    if a.command == "check" and (a.calls < 1 or a.threads < 1 or not a.rate > 0):
        print("rt-rl policy check: error: --calls and --threads must be >= 1, --rate > 0", file=sys.stderr)
        return 2
    try:
        return check(a) if a.command == "check" else export(a)
    except ValueError as err:  # every refusal (contract, model, reference) is one line
        print(f"rt-rl policy {a.command}: error: {_first_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # never a traceback: the type and the first line say enough
        print(f"rt-rl policy {a.command}: error: {type(err).__name__}: {_first_line(err)}", file=sys.stderr)
        return 2


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


if __name__ == "__main__":
    raise SystemExit(main())
