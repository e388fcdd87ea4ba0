#!/usr/bin/env python3
"""Train a third-party reference Hopper-v5 policy with Stable-Baselines3 SAC (unmodified).

Runs in its own venv (.venv-sb3, requirements-sb3.txt); nothing here is needed at runtime.

* SB3's SAC with the RL-zoo's Hopper hyper-parameters (SAC defaults, learning_starts=10000),
  in SB3's own Gymnasium env (``Hopper-v5``, no delay), one torch thread.
* EvalCallback every 20k steps (deterministic) keeps ``best_model.zip``.
* At the end (or on Ctrl-C / SIGTERM) saves ``model.zip``, picks the better of the final and the
  best EvalCallback model, evaluates it with SB3's ``evaluate_policy`` (deterministic), writes
  ``eval.json`` and exports the actor to ONNX as SB3's "Exporting models" page shows (actor with
  ``deterministic=True`` = tanh-squashed mean, then scaled from [-1, 1] to the action space), plus
  a reference ``.npz`` (100 observations with the ONNX and torch deterministic actions).

  python scripts/train_sb3_hopper.py --timesteps 1000000 --seed 0 --out runs/sb3_hopper
  python scripts/train_sb3_hopper.py --export-only --out runs/sb3_hopper   # evaluate + export
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

ENV_ID = "Hopper-v5"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S', time.gmtime())}Z] {msg}", flush=True)


class ProgressCallback(BaseCallback):
    """Prints step count, step rate and recent training-episode returns every `every` steps."""

    def __init__(self, every: int = 5000):
        super().__init__()
        self.every = every
        self.t0 = 0.0
        self.t_last = 0.0
        self.n_last = 0

    def _on_training_start(self) -> None:
        self.t0 = self.t_last = time.time()
        self.n_last = self.num_timesteps

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every == 0:
            now = time.time()
            rate = (self.num_timesteps - self.n_last) / max(now - self.t_last, 1e-9)
            avg = self.num_timesteps / max(now - self.t0, 1e-9)
            buf = self.model.ep_info_buffer
            ret = np.mean([e["r"] for e in buf]) if buf else float("nan")
            length = np.mean([e["l"] for e in buf]) if buf else float("nan")
            log(
                f"step {self.num_timesteps}  rate {rate:.1f} steps/s (avg {avg:.1f})  "
                f"train ep return (last {len(buf)}) {ret:.1f}  len {length:.0f}"
            )
            self.t_last, self.n_last = now, self.num_timesteps
        return True


class LoggingEvalCallback(EvalCallback):
    def _on_step(self) -> bool:
        before = len(self.evaluations_results)
        cont = super()._on_step()
        if len(self.evaluations_results) > before:
            log(
                f"EVAL step {self.num_timesteps}: mean {self.last_mean_reward:.1f} "
                f"(best {self.best_mean_reward:.1f}) over {self.n_eval_episodes} episodes"
            )
        return cont


class OnnxableSB3Policy(th.nn.Module):
    """SB3 docs' "Exporting models" wrapper for SAC: deterministic actor output (tanh-squashed
    mean, in [-1, 1]) rescaled to the action space's bounds."""

    def __init__(self, actor: th.nn.Module, low: np.ndarray, high: np.ndarray):
        super().__init__()
        self.actor = actor
        self.register_buffer("low", th.as_tensor(low, dtype=th.float32))
        self.register_buffer("high", th.as_tensor(high, dtype=th.float32))

    def forward(self, observation: th.Tensor) -> th.Tensor:
        scaled_action = self.actor(observation, deterministic=True)
        return self.low + (0.5 * (scaled_action + 1.0) * (self.high - self.low))


def evaluate(model: SAC, n_episodes: int, seed: int) -> dict:
    env = Monitor(gym.make(ENV_ID))
    env.reset(seed=seed)
    rewards, lengths = evaluate_policy(
        model, env, n_eval_episodes=n_episodes, deterministic=True, return_episode_rewards=True
    )
    env.close()
    return {
        "env_id": ENV_ID,
        "mean_return": float(np.mean(rewards)),
        "std_return": float(np.std(rewards)),
        "n_episodes": n_episodes,
        "deterministic": True,
        "seed": seed,
        "episode_returns": [float(r) for r in rewards],
        "episode_lengths": [int(n) for n in lengths],
    }


def export_onnx(model: SAC, onnx_path: Path, npz_path: Path, seed: int, n_ref: int = 100) -> dict:
    """Export the actor to ONNX and write n_ref observations with ONNX and torch actions."""
    model.policy.set_training_mode(False)
    low, high = model.action_space.low, model.action_space.high
    onnxable = OnnxableSB3Policy(model.policy.actor, low, high).eval()
    obs_size = model.observation_space.shape
    dummy = th.randn(1, *obs_size)
    th.onnx.export(
        onnxable,
        dummy,
        str(onnx_path),
        opset_version=17,
        input_names=["input"],
        output_names=["action"],
        dynamic_axes={"input": {0: "batch"}, "action": {0: "batch"}},
        dynamo=False,
    )

    # Reference observations: states visited by the deterministic policy in the env.
    env = gym.make(ENV_ID)
    obs, _ = env.reset(seed=seed)
    observations = []
    while len(observations) < n_ref:
        observations.append(obs.astype(np.float32))
        act, _ = model.predict(obs, deterministic=True)
        obs, _, term, trunc, _ = env.step(act)
        if term or trunc:
            obs, _ = env.reset()
    env.close()
    observations = np.stack(observations)

    torch_actions, _ = model.predict(observations, deterministic=True)  # SB3's own path
    with th.no_grad():
        module_actions = onnxable(th.as_tensor(observations)).numpy()

    info = {"onnx_path": str(onnx_path), "onnx_bytes": onnx_path.stat().st_size}
    onnx_actions = None
    try:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        inp, out = sess.get_inputs()[0], sess.get_outputs()[0]
        info.update(
            input_name=inp.name, input_shape=list(inp.shape), input_type=inp.type,
            output_name=out.name, output_shape=list(out.shape), output_type=out.type,
        )
        onnx_actions = sess.run(None, {inp.name: observations})[0]
        info["max_abs_diff_onnx_vs_sb3_predict"] = float(np.max(np.abs(onnx_actions - torch_actions)))
        info["max_abs_diff_onnx_vs_torch_module"] = float(np.max(np.abs(onnx_actions - module_actions)))
    except ImportError:
        info["onnxruntime"] = "not installed: no ONNX actions in the reference file"
    info["action_low"] = low.tolist()
    info["action_high"] = high.tolist()
    info["output_units"] = (
        "actions in the env's action space (tanh-squashed mean rescaled from [-1,1] to [low, high]; "
        "identity for Hopper-v5 whose bounds are [-1, 1])"
    )
    np.savez(
        npz_path,
        observations=observations,
        torch_actions=np.asarray(torch_actions, dtype=np.float32),
        torch_module_actions=module_actions.astype(np.float32),
        onnx_actions=(np.asarray(onnx_actions, dtype=np.float32) if onnx_actions is not None
                      else np.zeros((0,), np.float32)),
        action_low=low, action_high=high,
    )
    info["reference_npz"] = str(npz_path)
    return info


def finish(out: Path, eval_episodes: int, seed: int) -> None:
    """Pick the better of model.zip and best_model.zip (SB3 evaluation), evaluate, export."""
    candidates = [p for p in (out / "model.zip", out / "best_model.zip") if p.exists()]
    results = {}
    for p in candidates:
        m = SAC.load(p, device="cpu")
        results[p.name] = evaluate(m, eval_episodes, seed)
        r = results[p.name]
        log(f"evaluate_policy {p.name}: {r['mean_return']:.1f} +- {r['std_return']:.1f} "
            f"over {r['n_episodes']} episodes")
    chosen = max(results, key=lambda k: results[k]["mean_return"])
    log(f"chosen for export: {chosen}")
    model = SAC.load(out / chosen, device="cpu")
    onnx_info = export_onnx(model, out / "sac_hopper_actor.onnx", out / "sac_hopper_actor_ref.npz", seed)
    log(f"ONNX export: {json.dumps(onnx_info)}")
    summary = {
        "chosen_model": chosen,
        "evaluation": results[chosen],
        "all_evaluations": results,
        "onnx": onnx_info,
        "versions": {
            "stable_baselines3": __import__("stable_baselines3").__version__,
            "torch": th.__version__,
            "gymnasium": gym.__version__,
            "mujoco": __import__("mujoco").__version__,
        },
    }
    (out / "eval.json").write_text(json.dumps(summary, indent=2))
    log(f"wrote {out / 'eval.json'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--timesteps", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/sb3_hopper"))
    ap.add_argument("--eval-episodes", type=int, default=10, help="episodes for the final evaluation")
    ap.add_argument("--eval-freq", type=int, default=20_000)
    ap.add_argument("--export-only", action="store_true", help="skip training: evaluate + export")
    args = ap.parse_args(argv)

    th.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.export_only:
        finish(args.out, args.eval_episodes, args.seed)
        return 0

    # SIGTERM behaves like Ctrl-C (so a background run can be stopped and still save).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    env = Monitor(gym.make(ENV_ID))
    eval_env = Monitor(gym.make(ENV_ID))
    # RL-zoo hyperparams/sac.yml for Hopper: SAC defaults with learning_starts=10000.
    model = SAC("MlpPolicy", env, learning_starts=10_000, seed=args.seed, device="cpu", verbose=0)
    eval_cb = LoggingEvalCallback(
        eval_env, n_eval_episodes=5, eval_freq=args.eval_freq, deterministic=True,
        best_model_save_path=str(args.out), log_path=str(args.out), verbose=0,
    )
    ckpt_cb = CheckpointCallback(save_freq=100_000, save_path=str(args.out / "checkpoints"), name_prefix="sac")
    log(f"training SAC on {ENV_ID} for {args.timesteps} steps, seed {args.seed}, "
        f"torch threads {th.get_num_threads()}, pid {os.getpid()}")
    t0 = time.time()
    try:
        model.learn(total_timesteps=args.timesteps, callback=[ProgressCallback(), eval_cb, ckpt_cb])
        log("training finished")
    except KeyboardInterrupt:
        log("interrupted: saving what we have")
    # ignore further signals while saving/evaluating/exporting
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    dt = time.time() - t0
    model.save(args.out / "model.zip")
    (args.out / "train_stats.json").write_text(json.dumps({
        "timesteps": int(model.num_timesteps), "wall_s": dt,
        "steps_per_s": model.num_timesteps / max(dt, 1e-9),
        "best_eval_mean": float(eval_cb.best_mean_reward),
    }, indent=2))
    log(f"saved model.zip at {model.num_timesteps} steps ({model.num_timesteps / max(dt, 1e-9):.1f} steps/s)")
    finish(args.out, args.eval_episodes, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
