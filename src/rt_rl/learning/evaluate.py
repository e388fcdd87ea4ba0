"""Evaluate a policy in simulated time, under the timing it was trained for.

`python -m rt_rl.learning.evaluate --checkpoint src/rt_rl/checkpoints/hopper_pipelined_skip_robust.pt`
loads the checkpoint exactly as a live worker does (`runtime.load_policy`), builds the timing
environment from the checkpoint's `timing` and observation fields, runs N deterministic worker copies
(one pipeline state each, reset at every episode start) and prints the mean episode return, which is
comparable to the live demo's `sim.mean_episode_return`.

`--delay 1,2,3` evaluates at each of those delays D (the same episode seeds at each), keeping the
checkpoint's worker slot spacing, as the live graph does when its delay differs from the nominal one;
without it, D is the checkpoint's nominal `inference_ticks`. `--episode-steps` sets the episode length
(default: the one trained for, else 1000 env steps).

A policy from another trainer (ONNX or TorchScript with its contract, docs/policy_contract.md) knows
nothing of rt_rl's timing: `--timing-from CHECKPOINT` evaluates it under another checkpoint's timing,
e.g. `checkpoints/hopper_pipelined_skip_robot.pt`, fitted to the live robot profile (`make demo`): the
twin's prediction of what the live graph will give it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

import numpy as np

from rt_rl.learning.timing_env import TimingEnv
from rt_rl.policy.runtime import Policy, load_policy
from rt_rl.tasks import get_task


def run_episodes(
    env: TimingEnv,
    act: Callable[[int, np.ndarray], np.ndarray],
    reset: Callable[[], None],
    episodes: int,
    seed: int,
) -> list[float]:
    """Episode returns; `act(worker, obs)` gives an action in actuator units, `reset` clears pipelines."""
    returns = []
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        reset()
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, info = env.step(act(info["worker"], obs))
            total += r
            done = term or trunc
        returns.append(total)
    return returns


def env_for_policy(
    policy: Policy,
    episode_steps: int | None = None,
    delay: int | None = None,
    offset: Sequence[float] | None = None,
    offset_jitter: float | None = None,
    offset_samples: Sequence[float] | None = None,
    timing: dict | None = None,
) -> TimingEnv:
    """The timing environment a checkpoint was trained for (its PolicyInfo.timing, or `timing`), every episode at
    `delay` ticks if given (slot spacing unchanged), and at the actuation `offset` (lo, hi) seconds and
    `offset_jitter` if given (else the trained ones)."""
    info, t = policy.info, timing or policy.info.timing
    if not t.get("frame_skip"):
        raise ValueError(
            "the policy has no twin timing (not trained by rt_rl.learning.train): give --timing-from CHECKPOINT"
        )
    if delay is not None and delay < 0:
        raise ValueError(f"delay must be >= 0 ticks, got {delay}")
    m = max(1, round(t["control_period"] / t["sensor_period"]))
    return TimingEnv(
        info.task,
        frame_skip=t["frame_skip"],
        control_steps=m,
        inference_ticks=t["inference_ticks"],
        num_workers=t["num_workers"],
        fallback=t.get("fallback", "hold"),
        history_length=info.history_length,
        obs_mean=info.obs_mean,
        obs_std=info.obs_std,
        episode_steps=int(t.get("episode_steps", 1000)) if episode_steps is None else episode_steps,
        delay_choices=None if delay is None else [delay],
        actuation_offset=t.get("actuation_offset", (0.0, 0.0)) if offset is None else offset,
        offset_jitter=t.get("offset_jitter", 0.0) if offset_jitter is None else offset_jitter,
        offset_samples=offset_samples,
    )


def evaluate_checkpoint(
    path: str,
    episodes: int = 10,
    seed: int = 1000,
    delay: int | None = None,
    episode_steps: int | None = None,
    offset: Sequence[float] | None = None,
    offset_jitter: float | None = None,
    offset_samples: Sequence[float] | None = None,
    timing_from: str | None = None,
    contract: str = "",
) -> dict:
    from rt_rl.policy.runtime import read_policy_info

    task = get_task(read_policy_info(path, contract).task)
    timing = read_policy_info(timing_from).timing if timing_from else None
    workers_info = load_policy(path, task, contract=contract)
    n = int((timing or workers_info.info.timing).get("num_workers", 1))
    workers = [workers_info] + [load_policy(path, task, contract=contract) for _ in range(n - 1)]
    env = env_for_policy(workers_info, episode_steps, delay, offset, offset_jitter, offset_samples, timing)

    def reset() -> None:
        for w in workers:
            w.reset()

    returns = run_episodes(env, lambda w, o: workers[w].act(o), reset, episodes, seed)
    env.close()
    return {
        "checkpoint": path,
        "task": task.gym_id,
        "arch": workers_info.info.arch,
        "timing": timing or workers_info.info.timing,
        "timing_from": timing_from,
        "delay": env.D,
        "actuation_offset": list(env.offset_range),
        "offset_jitter": env.offset_jitter,
        "episode_steps": env.episode_steps,
        "episodes": episodes,
        "seed": seed,
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "returns": [round(r, 2) for r in returns],
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rt-rl evaluate", description=__doc__.splitlines()[0])
    p.add_argument(
        "--checkpoint", required=True, help="checkpoint file, or checkpoints/<name>.pt of the shipped ones"
    )
    p.add_argument("--episodes", type=int, default=10, help="deterministic episodes per delay (default: 10)")
    p.add_argument("--seed", type=int, default=1000, help="first episode seed (episode i: seed + i)")
    p.add_argument("--delay", default="", help="ticks, or a comma list to tabulate (default: the nominal)")
    p.add_argument("--episode-steps", type=int, default=None, help="episode length (default: as trained)")
    p.add_argument(
        "--offset",
        default="",
        help="actuation offset, seconds from a tick to its command acting: 'x' or 'lo,hi' (default: as trained)",
    )
    p.add_argument("--offset-jitter", type=float, default=None, help="seconds per tick (default: as trained)")
    p.add_argument(
        "--timing-from",
        default=None,
        help="evaluate under this checkpoint's timing (a policy from elsewhere)",
    )
    p.add_argument(
        "--contract", default="", help="contract of an ONNX/TorchScript policy (default: the sibling file)"
    )
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # shared machine: one core
    try:
        delays = [int(d) for d in args.delay.split(",") if d.strip()] or [None]
        offset = [float(x) for x in args.offset.split(",") if x.strip()] or None
        if offset is not None:
            offset = (offset[0], offset[-1])
        results = [
            evaluate_checkpoint(
                args.checkpoint,
                args.episodes,
                args.seed,
                d,
                args.episode_steps,
                offset,
                args.offset_jitter,
                timing_from=args.timing_from,
                contract=args.contract,
            )
            for d in delays
        ]
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    if len(results) > 1:
        for r in results:
            print(f"D = {r['delay']}: {r['mean_return']:.0f} +- {r['std_return']:.0f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
