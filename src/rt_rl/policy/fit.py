"""`rt-rl policy fit`: what the live timing costs a policy from another trainer, and fine-tuning it there.

    rt-rl policy fit SB3_MODEL.zip --timing-from checkpoints/hopper_pipelined_skip_robot.pt --out DIR
                     [--ticks 60000] [--bc-weight 1.0] [--episodes 20]

1. The SB3 SAC actor becomes an rt_rl `mlp` checkpoint with the same weights (`rt_rl.policy.sb3`).
2. The twin predicts its return at the live timing: the timing of `--timing-from`, a checkpoint fitted to
   the live graph (the robot profile of `make demo`: 10 ms ticks, D = 1 (some episodes 2), N = 2 workers,
   commands acting 2-8 ms into the period).
3. It is fine-tuned in the twin at that timing (`rt-rl train --arch mlp --init-actor`): SAC with a
   behaviour-cloning term towards the original actor (TD3+BC style; plain SAC fine-tuning from a trained
   actor collapsed here), the critic trained alone first.
4. The twin evaluates the fitted policy at the same timing and episode seeds.

Writes DIR/sb3.pt, DIR/fitted.pt, DIR/train/ and DIR/fit.json; prints a table. The fitted checkpoint
runs in the workers as any rt_rl checkpoint (`policy_checkpoint: DIR/fitted.pt`), or as ONNX after
`rt-rl policy export`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rt_rl.learning.evaluate import evaluate_checkpoint
from rt_rl.policy.runtime import read_policy_info
from rt_rl.policy.sb3 import sb3_sac_to_checkpoint
from rt_rl.tasks import get_task


def train_args(
    info, timing: dict, init: Path, out: Path, ticks: int, bc_weight: float, seed: int
) -> list[str]:
    """`rt-rl train` arguments that fine-tune `info`'s actor at `timing` (a checkpoint's timing dict)."""
    m = max(1, round(timing["control_period"] / timing["sensor_period"]))
    lo, hi = timing.get("actuation_offset", (0.0, 0.0))
    choices = timing.get("delay_choices") or [timing["inference_ticks"]]
    return [
        "--task", info.task, "--arch", info.arch, "--hidden", str(info.hidden), "--depth", str(info.depth),
        "--history", str(info.history_length), "--delay", str(timing["inference_ticks"]),
        "--delay-choices", ",".join(map(str, choices)), "--workers", str(timing["num_workers"]),
        "--control-steps", str(m), "--frame-skip", str(timing["frame_skip"]),
        "--fallback", timing.get("fallback", "hold"), "--episode-steps", str(timing.get("episode_steps", 1000)),
        "--actuation-offset", f"{lo},{hi}", "--offset-jitter", str(timing.get("offset_jitter", 0.0)),
        "--init-actor", str(init), "--actor-freeze-ticks", str(min(20_000, ticks // 3)),
        "--bc-weight", str(bc_weight), "--total-ticks", str(ticks), "--learning-starts", "5000",
        "--eval-every", str(max(5000, ticks // 6)), "--seed", str(seed), "--out", str(out / "train"),
        "--export", str(out / "fitted.pt"), "--no-progress",
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rt-rl policy fit", description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a Stable-Baselines3 SAC model.zip")
    ap.add_argument("--timing-from", required=True, help="a checkpoint whose timing is the live one")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--ticks", type=int, default=60_000, help="fine-tuning ticks in the twin")
    ap.add_argument("--bc-weight", type=float, default=1.0, help="pull towards the original actor")
    ap.add_argument("--episodes", type=int, default=20, help="twin episodes per evaluation")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    try:
        timing = read_policy_info(a.timing_from).timing
        if not timing.get("frame_skip"):
            raise ValueError(f"--timing-from {a.timing_from}: no twin timing in it")
        a.out.mkdir(parents=True, exist_ok=True)
        task = get_task(read_policy_info(a.timing_from).task)
        converted = a.out / "sb3.pt"
        info = sb3_sac_to_checkpoint(a.model, converted, task)
    except (ValueError, OSError) as err:
        print(f"rt-rl policy fit: error: {err}", file=sys.stderr)
        return 2
    print(f"{a.model} -> {converted} ({info.arch}, {info.depth} x {info.hidden})", flush=True)
    before = evaluate_checkpoint(str(converted), a.episodes, timing_from=a.timing_from)
    print(
        f"twin at the live timing, as trained by SB3: {before['mean_return']:.0f} +- {before['std_return']:.0f}"
    )
    from rt_rl.learning.train import main as train

    code = train(train_args(info, timing, converted, a.out, a.ticks, a.bc_weight, a.seed))
    if code != 0:
        return code
    after = evaluate_checkpoint(str(a.out / "fitted.pt"), a.episodes)
    print(f"twin at the live timing, fitted: {after['mean_return']:.0f} +- {after['std_return']:.0f}")
    (a.out / "fit.json").write_text(
        json.dumps({"before": before, "after": after, "ticks": a.ticks}, indent=1)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
