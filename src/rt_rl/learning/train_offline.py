"""TD3+BC from recorded bags (a Minari dataset) for the pipelined actor, under the recorded timing.

    rt-rl train-offline rt_rl/hopper-demo-v0 --out runs/offline [--datasets DIR] [--total-steps N]

CleanRL-style (the data and the inputs in `offline_data.py`). The dataset is one `rt-rl dataset`
wrote (read with `minari.load_dataset`, from --datasets or MINARI_DATASETS_PATH): one step per
control tick, the observation the actuated
command depends on, the command executed (fallbacks included), and per-step infos (row t + 1 for
step t): tick, tick_stamp, tick_kind (fresh/fallback/watchdog), worker_id, action_age,
inference_start, policy_version.

What is learned, in ticks (control periods):

- The recorded timing, measured in the data: the control period (median step between tick stamps,
  snapped to a whole number of sensor periods), N (the workers seen on fresh ticks), a worker's stride
  (its usual tick step between two fresh ticks), D = ceil(median(tick_stamp - inference_start) /
  period) over fresh ticks (the ticks from a worker's start to the tick that actuates it, as
  `timing_check.live_delay_ticks` counts them live) and the fallback (do fallback ticks repeat the
  last command or apply zero). The sensor period (the sim's frame skip), the episode length, the
  observation normalisation and the command history come from the checkpoint the data was recorded
  with (--behaviour; by default the shipped checkpoint whose version the data's `policy_version` names).
- Actor (what the workers run): a fresh tick's command came from one call k of worker `worker_id`,
  whose returned action depends on the observations of that worker's calls k - od, k - od - 1, ...
  (od = `observation_delay`: the previous call for `pipelined_skip`). The dataset's observation at
  that tick is that of call k - od; those of the earlier calls are the observations at the same
  worker's earlier fresh ticks, one stride apart. The actor is unrolled on that per-worker sequence
  (`last_head`, entries before the episode's first call masked as the live pipeline is reset there)
  and its action is scored against the command executed at that tick (the BC target) and by the
  critic. A tick whose chain has a hole (a call whose action was never actuated: late, dropped) is
  left out of the actor's loss.
- Critic (training only): Q(x_t, c_t) with x_t = (the observation behind the command at t, the K
  commands executed at t-K..t-1, that observation's age in ticks / K). With K >= the age the state at
  t follows from them (the physics is deterministic given the commands since the observation).
  Target r_t + gamma * min Q'(x_{t+1}, c'), c' = the target actor's action on the chain of t + 1 plus
  clipped noise (TD3) when t + 1 is fresh, else the command executed at t + 1 (a fallback is not the
  policy's choice). The last step of a truncated episode has no known next tick and is not a target.
- TD3+BC (Fujimoto & Gu, 2021): actor loss -lambda * Q1(x, pi) + mean (pi - c)^2 with
  lambda = alpha / mean|Q1| (detached), actor updated every `policy_frequency` critic steps; inputs
  re-normalised with the data's mean and std (stored in the checkpoint, so the ingest, a hot reload
  and the twin apply the same). The head's log-std half is unused (TD3's actor is deterministic).

Why no library loss: torchrl's `TD3BCLoss` (and d3rlpy's or CORL's TD3+BC) give the actor and the
critic the same observation and compute the next action from the next observation. Here the actor
reads a per-worker sequence of older observations, the critic a different (Markov) state, and the next
action is the recorded one at fallback ticks; fitting that would mean a custom actor module on top of
torchrl + tensordict for a loss of ten lines, so the loss is written here.

At the end the checkpoint (`runtime.save_checkpoint`, loadable by `load_policy`, timing = the recorded
one) is evaluated in the simulated-time twin at that timing (`evaluate.evaluate_checkpoint`, as
`rt-rl evaluate` does), next to the data's mean episode return (and, with --eval-behaviour, the
recording policy in the same twin). Outputs in --out: config.json, train.jsonl (losses),
policy.pt, eval.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from rt_rl.learning.common import Critic, add_config_arguments, config_from_args, field_help, polyak
from rt_rl.learning.evaluate import evaluate_checkpoint
from rt_rl.learning.offline_data import (
    Batchable,
    OfflineError,
    build_inputs,
    load_dataset,
    load_ticks,
    recorded_timing,
)
from rt_rl.policy.networks import build_network
from rt_rl.policy.runtime import PolicyInfo, read_policy_info, resolve_checkpoint, save_checkpoint
from rt_rl.tasks import get_task


@dataclass
class OfflineConfig:
    """Hyper-parameters. Defaults follow TD3+BC (Fujimoto & Gu, 2021) unless noted."""

    dataset: str = ""  # Minari dataset id written by `rt-rl dataset` (the positional DATASET_ID)
    datasets: str = ""  # Minari datasets root (MINARI_DATASETS_PATH); "" = the environment's
    behaviour: str = ""  # checkpoint the data was recorded with; "" = the shipped one the data names
    arch: str = ""  # actor: mlp | pipelined | pipelined_skip; "" = the behaviour checkpoint's
    hidden: int = 0  # actor layer width; 0 = the behaviour checkpoint's
    depth: int = 0  # actor hidden layers; 0 = the behaviour checkpoint's
    delay: int = -1  # D for the checkpoint and the twin; -1 = measured in the data
    episode_steps: int = 0  # twin episode length in env steps; 0 = the behaviour's (else 1000)
    normalise: bool = True  # re-normalise observations with the data's mean/std (stored in the checkpoint)
    critic_commands: int = 0  # K commands in the critic's state; 0 = ceil(p99 action age / period)
    # TD3+BC
    total_steps: int = 30_000  # gradient steps (paper: 1M; 30k fits this shared 2-core machine)
    batch_size: int = 256  # ticks per gradient step
    gamma: float = 0.99  # discount per tick
    tau: float = 0.005  # target-network Polyak rate
    policy_lr: float = 3e-4  # actor Adam learning rate
    q_lr: float = 3e-4  # critics' Adam learning rate
    policy_frequency: int = 2  # critic steps per actor step
    policy_noise: float = 0.2  # target policy smoothing noise (in [-1, 1] action units)
    noise_clip: float = 0.5  # clip of that noise
    alpha: float = 2.5  # weight of the Q term against BC (lambda = alpha / mean|Q|); 0 = pure BC
    critic_hidden: int = 256  # width of the critics' two hidden layers
    # bookkeeping
    eval_episodes: int = 20  # twin episodes at the end (same seeds for every policy evaluated)
    eval_seed: int = 1000  # first evaluation episode seed (as rt-rl evaluate)
    eval_behaviour: bool = True  # also evaluate the behaviour checkpoint in the same twin
    log_every: int = 1000  # gradient steps between train.jsonl records
    seed: int = 0  # seeds torch and the batch sampler
    threads: int = 1  # torch threads (the machine is shared: keep 1)
    out: str = "runs/offline"  # output directory (see the module doc)


# ---------------------------------------------------------------------------------------------------
# 3. TD3+BC (1. the data and 2. the inputs: offline_data.py)


class TD3BC:
    """Networks, optimisers, one critic step and one actor step."""

    def __init__(
        self,
        cfg: OfflineConfig,
        arch: str,
        hidden: int,
        depth: int,
        input_dim: int,
        critic_dim: int,
        act_dim: int,
    ) -> None:
        self.cfg, self.act_dim = cfg, act_dim
        self.actor = build_network(arch, input_dim, act_dim, hidden, depth)
        self.actor_t = copy.deepcopy(self.actor)
        self.q1, self.q2 = (
            Critic(critic_dim, act_dim, cfg.critic_hidden),
            Critic(critic_dim, act_dim, cfg.critic_hidden),
        )
        self.q1_t, self.q2_t = copy.deepcopy(self.q1), copy.deepcopy(self.q2)
        self.q_opt = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], lr=cfg.q_lr)
        self.pi_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.policy_lr)

    def pi(self, net: torch.nn.Module, seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Deterministic action in [-1, 1] returned at the last tick of the unroll (as `step` returns)."""
        return torch.tanh(net.last_head(seq, mask)[:, : self.act_dim])

    def critic_step(self, b: Batchable, rows: np.ndarray) -> dict[str, float]:
        cfg = self.cfg
        nxt = torch.from_numpy(np.minimum(rows + 1, len(b.rew) - 1))
        r = torch.from_numpy(rows)
        with torch.no_grad():
            a_pi = self.pi(self.actor_t, b.seq[nxt], b.mask[nxt])
            noise = (torch.randn_like(a_pi) * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
            a_pi = (a_pi + noise).clamp(-1.0, 1.0)
            a_next = torch.where(b.policy_next[nxt, None], a_pi, b.act[nxt])
            x_next = b.x[nxt]
            q_next = torch.min(self.q1_t(x_next, a_next), self.q2_t(x_next, a_next))
            target = b.rew[r] + (1.0 - b.term[r]) * cfg.gamma * q_next
        x, a = b.x[r], b.act[r]
        q1, q2 = self.q1(x, a), self.q2(x, a)
        loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        self.q_opt.zero_grad()
        loss.backward()
        self.q_opt.step()
        return {"q_loss": float(loss.detach()), "q": float(q1.detach().mean())}

    def actor_loss(self, b: Batchable, rows: np.ndarray) -> tuple[torch.Tensor, dict[str, float]]:
        r = torch.from_numpy(rows)
        a = self.pi(self.actor, b.seq[r], b.mask[r])
        bc = F.mse_loss(a, b.act[r])
        if self.cfg.alpha == 0:
            return bc, {"bc_mse": float(bc.detach())}
        q = self.q1(b.x[r], a)
        lam = self.cfg.alpha / q.abs().mean().detach().clamp_min(1e-6)
        loss = -lam * q.mean() + bc
        return loss, {"bc_mse": float(bc.detach()), "pi_loss": float(loss.detach()), "lambda": float(lam)}

    def actor_step(self, b: Batchable, rows: np.ndarray) -> dict[str, float]:
        loss, stats = self.actor_loss(b, rows)
        self.pi_opt.zero_grad()
        loss.backward()
        self.pi_opt.step()
        polyak(((self.actor, self.actor_t), (self.q1, self.q1_t), (self.q2, self.q2_t)), self.cfg.tau)
        return stats


# ---------------------------------------------------------------------------------------------------
# 4. The run: data, behaviour, training, checkpoint, evaluation in the twin


def shipped_checkpoints() -> list[Path]:
    return sorted((Path(__file__).resolve().parents[1] / "checkpoints").glob("*.pt"))


def find_behaviour(cfg: OfflineConfig, versions: Sequence[str]) -> Path:
    """The checkpoint the data was recorded with: --behaviour, else the shipped one the data names."""
    if cfg.behaviour:
        path = resolve_checkpoint(cfg.behaviour)
        read_policy_info(path)  # a one-line ValueError if it is not a checkpoint
        return path
    for path in shipped_checkpoints():
        if read_policy_info(path).version in versions:
            return path
    raise OfflineError(
        f"the data's policy version(s) {', '.join(versions) or '(none)'} name no shipped checkpoint: "
        "give the one it was recorded with as --behaviour FILE"
    )


def resolve(cfg: OfflineConfig, behaviour: PolicyInfo) -> OfflineConfig:
    """The config with the behaviour's architecture where left at 0/''."""
    return OfflineConfig(
        **asdict(cfg)
        | {
            "arch": cfg.arch or behaviour.arch,
            "hidden": cfg.hidden or behaviour.hidden,
            "depth": cfg.depth or behaviour.depth,
            "episode_steps": cfg.episode_steps or int(behaviour.timing.get("episode_steps", 1000)),
        }
    )


class OfflineTrainer:
    def __init__(self, cfg: OfflineConfig) -> None:
        torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.dataset = load_dataset(cfg.dataset, cfg.datasets)
        self.ticks = load_ticks(self.dataset)
        self.behaviour_path = find_behaviour(cfg, self.ticks.versions)
        self.behaviour = read_policy_info(self.behaviour_path)
        self.cfg = cfg = resolve(cfg, self.behaviour)
        b, t = self.behaviour, self.ticks
        self.task = get_task(b.task)
        meta_task = (self.dataset.storage.metadata.get("rt_rl") or {}).get("task")
        if meta_task and meta_task != b.task:
            raise OfflineError(
                f"the data was recorded on {meta_task}, --behaviour {self.behaviour_path} is for {b.task}"
            )
        if t.obs.shape[1] != b.input_dim or t.cmd.shape[1] != b.act_dim:
            raise OfflineError(
                f"the data's observations/commands have {t.obs.shape[1]}/{t.cmd.shape[1]} entries, "
                f"--behaviour {self.behaviour_path} takes {b.input_dim}/{b.act_dim}"
            )
        bt = b.timing
        if not bt.get("sensor_period"):
            raise OfflineError(f"--behaviour {self.behaviour_path} has no timing (sensor period)")
        self.recorded = recorded_timing(t, float(bt["sensor_period"]), str(bt.get("fallback", "hold")))
        if cfg.delay >= 0:
            self.recorded["inference_ticks"] = cfg.delay
        rec = self.recorded
        if rec["stride"] != rec["num_workers"] * max(
            1, math.ceil(rec["inference_ticks"] / rec["num_workers"])
        ):
            print(
                f"warning: a worker's stride in the data is {rec['stride']} ticks; the twin's is "
                f"N * ceil(D / N) with N = {rec['num_workers']}, D = {rec['inference_ticks']}",
                file=sys.stderr,
            )
        # normalisation: the recorded observation's task part re-normalised with the data's statistics
        n_task = self.task.obs_dim
        self.mean, self.std = np.zeros(n_task), np.ones(n_task)
        if cfg.normalise:
            self.mean = t.obs[:, :n_task].mean(0).astype(np.float64)
            self.std = t.obs[:, :n_task].std(0).astype(np.float64) + 1e-3
        obs = t.obs.copy()
        obs[:, :n_task] = (obs[:, :n_task] - self.mean) / self.std
        self.scale = (self.task.action_high - self.task.action_low) / 2.0
        self.offset = (self.task.action_high + self.task.action_low) / 2.0
        act = np.clip((t.cmd - self.offset) / self.scale, -1.0, 1.0)
        k = cfg.critic_commands or int(
            min(16, max(1, math.ceil(np.nan_to_num(rec["action_age_p99"], nan=0.0) / rec["control_period"])))
        )
        self.k_commands = k
        self.batches = build_inputs(t, obs, act, cfg.arch, cfg.depth, rec["stride"], k, rec["control_period"])
        if len(self.batches.actor_rows) == 0:
            raise OfflineError("no fresh tick with a complete worker chain: nothing for the actor to learn")
        self.algo = TD3BC(
            cfg, cfg.arch, cfg.hidden, cfg.depth, obs.shape[1], self.batches.x.shape[1], b.act_dim
        )
        self.out = Path(cfg.out)
        self.step = 0

    def policy_info(self) -> PolicyInfo:
        cfg, b, rec = self.cfg, self.behaviour, self.recorded
        bt = b.timing
        mu_b = np.asarray(b.obs_mean if b.obs_mean is not None else np.zeros(self.task.obs_dim))
        sd_b = np.asarray(b.obs_std if b.obs_std is not None else np.ones(self.task.obs_dim))
        timing = {
            "control_period": rec["control_period"],
            "sensor_period": float(bt["sensor_period"]),
            "frame_skip": int(bt["frame_skip"]),
            "inference_ticks": rec["inference_ticks"],
            "num_workers": rec["num_workers"],
            "fallback": rec["fallback"],
            "delay_choices": [rec["inference_ticks"]],
            "episode_steps": cfg.episode_steps,
            "episode_seconds": cfg.episode_steps * float(bt["sensor_period"]),
        }
        return PolicyInfo(
            arch=cfg.arch,
            task=b.task,
            obs_dim=self.task.obs_dim,
            act_dim=b.act_dim,
            hidden=cfg.hidden,
            depth=cfg.depth,
            history_length=b.history_length,
            obs_mean=[float(x) for x in mu_b + sd_b * self.mean],
            obs_std=[float(x) for x in sd_b * self.std],
            timing=timing,
            version=f"{b.task}-{cfg.arch}-td3bc-{cfg.dataset}-D{rec['inference_ticks']}N{rec['num_workers']}"
            f"-s{cfg.seed}-t{self.step}",
        )

    def describe(self) -> dict[str, Any]:
        t, rec = self.ticks, self.recorded
        meta = self.dataset.storage.metadata.get("rt_rl") or {}
        complete = (
            sum(b.get("complete_episodes", 0) for b in meta.get("bags", [])) if meta.get("bags") else None
        )
        return {
            "dataset": self.cfg.dataset,
            "steps": len(t),
            "episodes": len(t.returns),
            "complete_episodes": complete,
            "data_mean_return": float(np.mean(t.returns)),
            "data_std_return": float(np.std(t.returns)),
            "actor_ticks": len(self.batches.actor_rows),
            "critic_commands": self.k_commands,
            "behaviour": str(self.behaviour_path),
            "recorded_timing": {k: round(v, 6) if isinstance(v, float) else v for k, v in rec.items()},
        }

    def save(self, path: Path, extra: dict | None = None) -> None:
        save_checkpoint(path, self.policy_info(), self.algo.actor, {"train_offline": extra or {}})

    def train(self, progress: bool = True) -> dict[str, float]:
        cfg, b = self.cfg, self.batches
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
        log = (self.out / "train.jsonl").open("w")
        stats: dict[str, float] = {}
        t0 = time.monotonic()
        for self.step in tqdm(
            range(1, cfg.total_steps + 1), disable=not progress, unit="step", mininterval=2.0
        ):
            stats |= self.algo.critic_step(b, self.rng.choice(b.critic_rows, cfg.batch_size))
            if self.step % cfg.policy_frequency == 0:
                stats |= self.algo.actor_step(b, self.rng.choice(b.actor_rows, cfg.batch_size))
            if self.step % cfg.log_every == 0 or self.step == cfg.total_steps:
                record = {"step": self.step, "wall_s": round(time.monotonic() - t0, 1)}
                log.write(json.dumps(record | {k: round(v, 5) for k, v in stats.items()}) + "\n")
                log.flush()
        log.close()
        return stats

    def evaluate(self, policy: Path) -> dict[str, Any]:
        """The new checkpoint (loaded as a worker loads it) and, optionally, the behaviour, in the twin."""
        cfg, rec = self.cfg, self.recorded
        new = evaluate_checkpoint(str(policy), cfg.eval_episodes, cfg.eval_seed)
        result: dict[str, Any] = {"new": new}
        if cfg.eval_behaviour:
            result["behaviour"] = evaluate_checkpoint(
                str(self.behaviour_path),
                cfg.eval_episodes,
                cfg.eval_seed,
                delay=rec["inference_ticks"],
                episode_steps=cfg.episode_steps,
            )
        return result


def parse_args(argv: Sequence[str] | None) -> tuple[OfflineConfig, argparse.Namespace]:
    p = argparse.ArgumentParser(
        prog="rt-rl train-offline",
        description="TD3+BC for the pipelined actor from a recorded Minari dataset, evaluated in the twin.",
    )
    p.add_argument("dataset", metavar="DATASET_ID", help=field_help(OfflineConfig)["dataset"])
    add_config_arguments(p, OfflineConfig, skip=("dataset",))
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    return config_from_args(OfflineConfig, args), args


def main(argv: Sequence[str] | None = None) -> int:
    cfg, args = parse_args(argv)
    try:
        trainer = OfflineTrainer(cfg)
    except (OfflineError, ValueError) as err:
        print(f"rt-rl train-offline: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    about = trainer.describe()
    rec = trainer.recorded
    print(
        f"data: {about['steps']} ticks in {about['episodes']} episodes, recorded at "
        f"{rec['control_period'] * 1e3:g} ms, N = {rec['num_workers']}, D = {rec['inference_ticks']} "
        f"(worker stride {rec['stride']}, fresh {rec['fresh_ratio']:.3f}, action age p50 "
        f"{rec['action_age_p50'] * 1e3:.1f} ms); actor trained on {about['actor_ticks']} fresh ticks; "
        f"behaviour {about['behaviour']}",
        flush=True,
    )
    stats = trainer.train(progress=not args.no_progress)
    path = trainer.out / "policy.pt"
    trainer.save(path, {**about, "steps_trained": trainer.step})
    result = trainer.evaluate(path)
    new = result["new"]
    summary = {
        **about,
        "train": stats,
        "new_mean_return": new["mean_return"],
        "new_std_return": new["std_return"],
    }
    if "behaviour" in result:
        summary |= {
            "behaviour_mean_return": result["behaviour"]["mean_return"],
            "behaviour_std_return": result["behaviour"]["std_return"],
        }
    trainer.save(path, summary)  # the same weights, with the evaluation in the checkpoint
    (trainer.out / "eval.json").write_text(json.dumps(summary | {"evaluations": result}, indent=2))
    twin = f"twin at the recorded timing, {new['episodes']} episodes"
    partial = ""
    if about["complete_episodes"] is not None and about["complete_episodes"] < about["episodes"]:
        partial = (
            f" ({about['complete_episodes']} complete; --complete-episodes in rt-rl dataset for only those)"
        )
    print(
        f"data        {cfg.dataset} (live): mean episode return {about['data_mean_return']:.0f} "
        f"+- {about['data_std_return']:.0f} over {about['episodes']} episodes{partial}"
    )
    if "behaviour" in result:
        bh = result["behaviour"]
        print(
            f"behaviour   {trainer.behaviour_path} ({twin}): {bh['mean_return']:.0f} +- {bh['std_return']:.0f}"
        )
    print(f"new policy  {path} ({twin}): {new['mean_return']:.0f} +- {new['std_return']:.0f}")
    print(json.dumps({k: v for k, v in summary.items() if k != "recorded_timing"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
