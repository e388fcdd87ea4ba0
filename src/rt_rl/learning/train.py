"""SAC for delayed, pipelined policies, trained under the live graph's timing (CleanRL-style; the
algorithm, its replay and gradient step, in `sac.py`).

    python -m rt_rl.learning.train --task Hopper-v5 --arch pipelined_skip --delay 2 --workers 2 \
        --history 2 --frame-skip 5 --total-ticks 100000 --out runs/hopper

What is learned, in the time units of `timing_env` (tick = one control period of m env steps):

- Acting: N worker copies of the actor, one pipeline state each (reset at episode starts), take turns
  at the slots of the timing env; each worker's pipeline advances once per worker cycle (stride N*s
  ticks). Actions are sampled from the squashed Gaussian head during training, tanh(mean) at
  evaluation and deployment.
- Replay: one row per tick: the observation at that tick (with the executed-command history), the
  command the actuator really applied (fallbacks included), the tick's reward, termination. Rows of an
  episode are contiguous; sampled ticks never reach across an episode boundary.
- Critic (training only): the delayed problem made Markov. At tick t the D commands already in flight
  (applied at t..t+D-1) are known; the decision of the worker starting at t is applied at t+D. The
  critic sees x_t = (o_t, those D commands) with o_t the current, undelayed observation (with history),
  and scores the decision: Q(x_t, c_{t+D}), target r_t + gamma * Q(x_{t+1}, pi(t+1)). With D = 0 this
  is the plain critic Q(o_t, c_t) of paper B.
- Actor: the worker starting at tick t acts on the observations at t - i*N*s, i = L..0 (its own pipeline
  ticks). Those L+1 observations are unrolled through the pipeline from the reset state (ticks before
  the episode start masked, as the live state was reset there) and the last returned action is scored
  by the critic at x_t. With L+1 observations the zero start state no longer matters (see
  networks.receptive_ticks), so training sees exactly what deployment does. The trainer computes only
  the diagonal of that unroll the last action depends on (`last_head`, equal to `unroll`, tested).
  Approximation: when s > 1 some ticks hold an older command; every tick is still treated as a decision.
- Delay across runs (--delay-choices): each episode draws its D from the list (timing_env; the slot
  spacing stays that of --delay). The actor is not told D (the live worker does not know it); the
  critic is: x_t holds max(D) command slots (the D in flight first, zeros after) and a one-hot of D.
  Evaluation runs --eval-episodes at each listed D (same seeds); `mean_return` is their mean weighted
  as the list is, and best_policy.pt is chosen on it.

Outputs in --out: progress.csv (one row per episode), eval.jsonl (periodic deterministic evaluation
and losses), policy.pt (the worker-loadable checkpoint, runtime.save_checkpoint), best_policy.pt (the
one with the best evaluation so far), policies/policy_<tick>.pt (with --keep-evaluated: every evaluated
one), resume.pt (everything to continue with --resume: networks, optimisers, replay, counters, RNG
states). The replay is a ring of --buffer-size ticks: the oldest are overwritten. --resume refuses
another timing or architecture; it takes the command's learning rates (to anneal them) and may
re-weight --delay-choices over the same delays (a curriculum).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from rt_rl.learning.common import add_config_arguments, config_from_args
from rt_rl.learning.evaluate import run_episodes
from rt_rl.learning.sac import SAC, TickReplay, squashed_gaussian
from rt_rl.learning.timing_env import TimingEnv
from rt_rl.policy.networks import receptive_ticks
from rt_rl.policy.runtime import PolicyInfo, save_checkpoint


@dataclass
class SACConfig:
    """Hyper-parameters. Defaults follow CleanRL's SAC / the paper's MuJoCo setting unless noted."""

    # task and timing (what the policy is deployed with)
    task: str = "Hopper-v5"  # Gymnasium id of a task in rt_rl.tasks
    arch: str = "pipelined_skip"  # mlp | pipelined | pipelined_skip
    hidden: int = 256  # actor layer width
    depth: int = 3  # actor hidden layers; L = depth + 1 layers incl. the head
    history: int = 0  # k executed commands appended to the observation (paper: 2 for MuJoCo)
    delay: int = 0  # D: inference ticks from a worker's observation to its action's actuation
    delay_choices: str = ""  # e.g. "1,2,3": D drawn per episode (repeat to weight); s stays that of --delay
    workers: int = 1  # N staggered workers
    control_steps: int = 1  # m: env steps per control tick
    frame_skip: int = 0  # physics steps per env step; 0 = the task's default
    fallback: str = "hold"  # command applied at ticks with no fresh action: hold | zero
    episode_steps: int = 1000  # episode time limit in env steps (Gymnasium default)
    actuation_offset: str = "0"  # s from tick to command acting on the robot: "x" or "lo,hi" per episode
    offset_jitter: float = 0.0  # s, U[0, jitter) added to the offset at every tick (transport jitter)
    # fine-tuning a trained actor (e.g. for another timing): its weights, critics learn first
    init_actor: str = ""  # checkpoint whose actor weights start the run ('' = random init)
    actor_freeze_ticks: int = 0  # after learning_starts, ticks of critic-only updates (init_actor)
    bc_weight: float = 0.0  # > 0: actor loss (normalised by |Q|) + this * MSE to the initial actor's action
    # SAC
    total_ticks: int = 100_000  # environment ticks (= replay rows = gradient steps after warm-up)
    learning_starts: int = 5_000  # random-action warm-up ticks (paper: 10k; smaller fits this machine)
    buffer_size: int = 1_000_000  # replay capacity in ticks (a ring: the oldest are overwritten)
    batch_size: int = 256  # ticks per gradient step
    gamma: float = 0.99  # discount per tick
    tau: float = 0.005  # target-network Polyak rate
    policy_lr: float = 3e-4  # actor Adam learning rate
    q_lr: float = 1e-3  # critics' (and temperature's) Adam learning rate
    policy_frequency: int = 2  # delayed actor updates (TD3 style, as CleanRL), done in bursts
    alpha: float = 0.2  # initial entropy temperature
    autotune: bool = True  # learn alpha towards entropy -act_dim
    critic_hidden: int = 256  # width of the critics' two hidden layers
    # bookkeeping
    eval_every: int = 10_000  # ticks between deterministic evaluations
    eval_episodes: int = 5  # episodes per evaluation (per delay with --delay-choices)
    checkpoint_every: int = 10_000  # ticks between resume.pt / policy.pt writes
    keep_evaluated: bool = False  # also keep every evaluated policy as policies/policy_<tick>.pt
    seed: int = 0  # seeds torch, the replay sampler and the episodes
    threads: int = 1  # torch threads (the machine is shared: keep 1)
    out: str = "runs/train"  # output directory (see the module doc)

    @property
    def seq_len(self) -> int:
        return receptive_ticks(self.arch, self.depth) + 1

    @property
    def delay_list(self) -> list[int]:
        """The per-episode delay choices (empty: always --delay)."""
        try:
            out = [int(x) for x in self.delay_choices.split(",") if x.strip()]
        except ValueError:
            raise ValueError(
                f"--delay-choices must be comma-separated ticks, got '{self.delay_choices}'"
            ) from None
        if any(d < 0 for d in out):
            raise ValueError(f"--delay-choices must be >= 0, got '{self.delay_choices}'")
        return out

    @property
    def offset_range(self) -> tuple[float, float]:
        """(lo, hi) seconds of the per-episode actuation offset (timing_env)."""
        try:
            values = [float(x) for x in self.actuation_offset.split(",") if x.strip()]
        except ValueError:
            values = []
        if len(values) not in (1, 2) or min(values) < 0:
            raise ValueError(
                f"--actuation-offset must be 'x' or 'lo,hi' seconds >= 0, got '{self.actuation_offset}'"
            )
        return (values[0], values[-1])

    @property
    def offset_varies(self) -> bool:
        lo, hi = self.offset_range
        return hi > lo or self.offset_jitter > 0

    @property
    def delays(self) -> tuple[int, ...]:
        """The distinct delays trained over."""
        return tuple(sorted(set(self.delay_list))) or (self.delay,)


def make_env(cfg: SACConfig, delay_choices: Sequence[int] | None = None) -> TimingEnv:
    """The twin at the config's timing; episodes draw D from `delay_choices` (default: the config's)."""
    return TimingEnv(
        cfg.task,
        frame_skip=cfg.frame_skip or None,
        control_steps=cfg.control_steps,
        inference_ticks=cfg.delay,
        num_workers=cfg.workers,
        fallback=cfg.fallback,
        history_length=cfg.history,
        episode_steps=cfg.episode_steps,
        delay_choices=cfg.delay_list if delay_choices is None else delay_choices,
        actuation_offset=cfg.offset_range,
        offset_jitter=cfg.offset_jitter,
    )


class Trainer:
    def __init__(self, cfg: SACConfig) -> None:
        self.cfg = cfg
        torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.env = make_env(cfg)
        self.eval_envs = {d: make_env(cfg, [d]) for d in cfg.delays}  # evaluation at each D, same seeds
        t = self.env.spec_task
        self.scale = (t.action_high - t.action_low) / 2.0
        self.offset = (t.action_high + t.action_low) / 2.0
        self.input_dim = self.env.builder.size
        self.sac = SAC(
            cfg, self.input_dim, t.action_dim, self.env.timing.worker_stride, self.env.timing.control_period
        )
        if cfg.init_actor:
            self._init_actor(cfg.init_actor)
        self.rb = TickReplay(self.input_dim, t.action_dim, cfg.buffer_size)
        self.tick = 0
        self.episode = 0
        self.out = Path(cfg.out)
        self.last_eval: dict = {}
        self.best_eval = -math.inf

    def _init_actor(self, path: str) -> None:
        """Start from a trained actor of the same architecture and observation (fine-tuning)."""
        from rt_rl.policy.runtime import _load_blob

        info, blob = _load_blob(path)
        cfg = self.cfg
        mine = (cfg.arch, cfg.task, cfg.hidden, cfg.depth, cfg.history)
        theirs = (info.arch, info.task, info.hidden, info.depth, info.history_length)
        if mine != theirs:
            raise ValueError(
                f"--init-actor {path}: (arch, task, hidden, depth, history) {theirs}, run {mine}"
            )
        self.sac.actor.load_state_dict(blob["state_dict"])
        if cfg.bc_weight > 0:  # a frozen copy: the fine-tuned actor is kept near it (TD3+BC style)
            self.sac.reference = copy.deepcopy(self.sac.actor).requires_grad_(False)

    # ----- checkpoints -----
    def policy_info(self) -> PolicyInfo:
        cfg, t = self.cfg, self.env.spec_task
        return PolicyInfo(
            arch=cfg.arch,
            task=cfg.task,
            obs_dim=t.obs_dim,
            act_dim=t.action_dim,
            hidden=cfg.hidden,
            depth=cfg.depth,
            history_length=cfg.history,
            obs_mean=[float(x) for x in self.env.builder.mean],
            obs_std=[float(x) for x in self.env.builder.std],
            timing=self.env.trained_timing(),
            version=f"{cfg.task}-{cfg.arch}-D{'-'.join(map(str, cfg.delays))}N{cfg.workers}"
            f"{'-robot' if cfg.offset_varies or cfg.offset_range[0] > 0 else ''}"
            f"-s{cfg.seed}-t{self.tick}",
        )

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        extra = {"train": {"ticks": self.tick, "eval": self.last_eval.get("mean_return")}}
        save_checkpoint(self.out / "policy.pt", self.policy_info(), self.sac.actor, extra)
        blob = {
            "config": asdict(self.cfg),
            "tick": self.tick,
            "episode": self.episode,
            "updates": self.sac.updates,
            "log_alpha": self.sac.log_alpha.detach().clone(),
            "modules": {k: m.state_dict() for k, m in self.sac.modules().items()},
            "replay": self.rb.state(),
            "rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "last_eval": self.last_eval,
            "best_eval": self.best_eval,
        }
        tmp = self.out / "resume.pt.tmp"
        torch.save(blob, tmp)
        tmp.replace(self.out / "resume.pt")  # atomic: a kill mid-write keeps the previous one

    def load(self) -> None:
        blob = torch.load(self.out / "resume.pt", map_location="cpu", weights_only=False)
        saved = blob["config"]
        for key in (
            "task",
            "arch",
            "hidden",
            "depth",
            "history",
            "delay",
            "workers",
            "control_steps",
            "frame_skip",
            "fallback",
            "actuation_offset",
            "offset_jitter",
        ):
            if key not in saved and key in ("actuation_offset", "offset_jitter"):
                saved[key] = SACConfig.__dataclass_fields__[key].default  # a run from before the offset
            if saved.get(key, "") != getattr(self.cfg, key):
                raise ValueError(
                    f"--resume: {key} is {getattr(self.cfg, key)!r}, the run used {saved.get(key, '')!r}"
                )
        # The delays drawn may be re-weighted (a curriculum: "1,2,3" -> "1,2,3,3"), not changed: the
        # critic has learned, and the replay holds, exactly these delays.
        was = SACConfig(**{**asdict(self.cfg), "delay_choices": saved.get("delay_choices", "")})
        if was.delays != self.cfg.delays:
            raise ValueError(
                f"--resume: --delay-choices {self.cfg.delay_choices!r} draws delays {self.cfg.delays}, "
                f"the run drew {was.delays} ({saved.get('delay_choices', '')!r}); only their weights may change"
            )
        for k, m in self.sac.modules().items():
            m.load_state_dict(blob["modules"][k])
        # An optimiser's state_dict carries its learning rate: the command's rates win (to anneal them).
        for opt, lr in (
            (self.sac.q_opt, self.cfg.q_lr),
            (self.sac.pi_opt, self.cfg.policy_lr),
            (self.sac.a_opt, self.cfg.q_lr),
        ):
            for group in opt.param_groups:
                group["lr"] = lr
        with torch.no_grad():
            self.sac.log_alpha.copy_(blob["log_alpha"])
        self.sac.updates = blob["updates"]
        self.rb = TickReplay.from_state(blob["replay"], self.cfg.buffer_size)
        self.tick, self.episode = blob["tick"], blob["episode"]
        self.rng.bit_generator.state = blob["rng"]
        torch.set_rng_state(blob["torch_rng"])
        self.last_eval = blob.get("last_eval", {})
        self.best_eval = blob.get("best_eval", -math.inf)

    # ----- evaluation -----
    def evaluate(self, episodes: int) -> dict:
        """Deterministic returns at each trained delay; mean_return weighted as the delay choices are."""
        by_delay = {d: self._evaluate_at(env, episodes) for d, env in self.eval_envs.items()}
        weights = self.cfg.delay_list or list(self.cfg.delays)  # a repeated choice counts as often
        returns = [r for d in self.cfg.delays for r in by_delay[d]]
        result = {
            "mean_return": float(np.mean([np.mean(by_delay[d]) for d in weights])),
            "std_return": float(np.std(returns)),
            "returns": [round(r, 1) for r in returns],
        }
        if len(by_delay) > 1:
            result["mean_by_delay"] = {str(d): round(float(np.mean(r)), 1) for d, r in by_delay.items()}
        return result

    def _evaluate_at(self, env: TimingEnv, episodes: int) -> list[float]:
        actor = self.sac.actor
        states: list = []

        def reset() -> None:
            states[:] = [actor.initial_state(1) for _ in range(self.cfg.workers)]

        @torch.no_grad()
        def act(w: int, obs: np.ndarray) -> np.ndarray:
            a, states[w] = actor.step(torch.as_tensor(obs).reshape(1, -1), states[w])
            return a[0].double().numpy() * self.scale + self.offset

        return run_episodes(env, act, reset, episodes, seed=10_000 + 1000 * self.cfg.seed)

    # ----- main loop -----
    def run(self, progress: bool = True, echo: bool = False) -> dict:
        """Train to total_ticks; `echo` prints each evaluation to stdout (the log of a detached run)."""
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
        new_csv = not (self.out / "progress.csv").exists()
        csv_file = (self.out / "progress.csv").open("a", newline="")
        log = csv.writer(csv_file)
        if new_csv:
            log.writerow(["tick", "episode", "return", "length_ticks", "wall_s"])
        jsonl = (self.out / "eval.jsonl").open("a")
        actor, act_dim = self.sac.actor, self.env.spec_task.action_dim
        t0 = time.monotonic()
        obs, info = self.env.reset(seed=cfg.seed * 100_003 + self.episode)
        self.rb.start_episode(obs, info["delay"], info["offset"])
        states = [actor.initial_state(1) for _ in range(cfg.workers)]
        ep_return, ep_len, stats = 0.0, 0, {}
        next_eval = (self.tick // cfg.eval_every + 1) * cfg.eval_every
        next_ckpt = (self.tick // cfg.checkpoint_every + 1) * cfg.checkpoint_every
        bar = tqdm(
            total=cfg.total_ticks, initial=self.tick, disable=not progress, unit="tick", mininterval=2.0
        )
        while self.tick < cfg.total_ticks:
            w = info["worker"]
            with torch.no_grad():  # the worker's pipeline advances at its slot, as live
                head, states[w] = actor.tick(torch.as_tensor(obs).reshape(1, -1), states[w])
                a, _ = squashed_gaussian(head, act_dim)
            warm = self.tick < cfg.learning_starts and not cfg.init_actor  # a trained actor acts from tick 0
            a = self.rng.uniform(-1, 1, act_dim) if warm else a[0].numpy()
            obs, _, term, trunc, info = self.env.step(a * self.scale + self.offset)
            for rec in info["ticks"]:
                cmd = (rec["command"] - self.offset) / self.scale
                self.rb.add_tick(cmd, rec["reward"], rec["terminated"], rec["next_obs"], a)
                ep_return += rec["reward"]
                ep_len += 1
                self.tick += 1
                bar.update(1)
                if self.tick > cfg.learning_starts:
                    critic_only = self.tick <= cfg.learning_starts + cfg.actor_freeze_ticks
                    stats = self.sac.update(self.rb, self.rng, critic_only=critic_only)
            if term or trunc:
                wall = round(time.monotonic() - t0, 1)
                log.writerow([self.tick, self.episode, round(ep_return, 3), ep_len, wall])
                csv_file.flush()
                last = self.last_eval.get("mean_return", float("nan"))
                bar.set_postfix(ret=f"{ep_return:.0f}", eval=f"{last:.0f}", refresh=False)
                self.episode += 1
                ep_return, ep_len = 0.0, 0
                obs, info = self.env.reset(seed=cfg.seed * 100_003 + self.episode)
                self.rb.start_episode(obs, info["delay"], info["offset"])
                states = [actor.initial_state(1) for _ in range(cfg.workers)]
            if self.tick >= next_eval or self.tick >= cfg.total_ticks:
                next_eval += cfg.eval_every
                self.last_eval = {
                    "tick": self.tick,
                    **self.evaluate(cfg.eval_episodes),
                    "wall_s": round(time.monotonic() - t0, 1),
                    "episodes": self.episode,
                    **{k: round(v, 4) for k, v in stats.items()},
                }
                jsonl.write(json.dumps(self.last_eval) + "\n")
                jsonl.flush()
                if echo:
                    print(json.dumps(self.last_eval), flush=True)
                if cfg.keep_evaluated:  # to pick later on a criterion other than mean_return
                    save_checkpoint(
                        self.out / "policies" / f"policy_{self.tick:08d}.pt",
                        self.policy_info(),
                        self.sac.actor,
                        {"train": {"ticks": self.tick, "eval": self.last_eval}},
                    )
                if self.last_eval["mean_return"] > self.best_eval:  # SAC can collapse late: keep the best
                    self.best_eval = self.last_eval["mean_return"]
                    save_checkpoint(
                        self.out / "best_policy.pt",
                        self.policy_info(),
                        self.sac.actor,
                        {"train": {"ticks": self.tick, "eval": self.best_eval}},
                    )
            if self.tick >= next_ckpt or self.tick >= cfg.total_ticks:
                next_ckpt += cfg.checkpoint_every
                self.save()
        bar.close()
        csv_file.close()
        jsonl.close()
        self.env.close()
        for env in self.eval_envs.values():
            env.close()
        return self.last_eval


def parse_args(argv: Sequence[str] | None) -> tuple[SACConfig, argparse.Namespace]:
    p = argparse.ArgumentParser(prog="rt-rl train", description="SAC under the live graph's timing.")
    add_config_arguments(p, SACConfig)
    p.add_argument("--resume", action="store_true", help="continue from OUT/resume.pt")
    p.add_argument("--export", default="", help="also copy the final policy.pt to this path")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    cfg = config_from_args(SACConfig, args)
    return cfg, args


def main(argv: Sequence[str] | None = None) -> int:
    cfg, args = parse_args(argv)
    try:
        trainer = Trainer(cfg)
        if args.resume:
            trainer.load()
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result = trainer.run(progress=not args.no_progress, echo=args.no_progress)
    if args.export:
        Path(args.export).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(cfg.out) / "policy.pt", args.export)
    print(json.dumps({"ticks": trainer.tick, "episodes": trainer.episode, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
