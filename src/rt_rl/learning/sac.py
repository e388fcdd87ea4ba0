"""SAC for the delayed, pipelined actor (`rt-rl train`; the method is described there): the squashed
Gaussian head, the per-tick replay and one gradient step."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rt_rl.learning.common import Critic, polyak
from rt_rl.policy.networks import LayeredActor, build_network

if TYPE_CHECKING:
    from rt_rl.learning.train import SACConfig

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # CleanRL's bounds for the squashed Gaussian


def squashed_gaussian(head: torch.Tensor, act_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample an action in [-1, 1] and its log-probability from a head [B, 2A] (reparameterised)."""
    mean, log_std = head[:, :act_dim], torch.tanh(head[:, act_dim:])
    log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1)
    normal = torch.distributions.Normal(mean, log_std.exp())
    x = normal.rsample()
    y = torch.tanh(x)
    logp = (normal.log_prob(x) - torch.log(1 - y.pow(2) + 1e-6)).sum(-1)
    return y, logp


class TickReplay:
    """Per-tick rows in a ring of `capacity` rows (the oldest are overwritten), episodes contiguous.

    Rows are numbered by an absolute count (row p lives at p % capacity). Row p: the observation at
    that tick, then the command applied, reward and termination of the tick, the decision of the worker
    starting at it, its episode's first row and delay. The last row of an episode holds its final
    observation only (`has_next` false).
    """

    def __init__(self, obs_dim: int, act_dim: int, capacity: int = 4096) -> None:
        if capacity < 2:
            raise ValueError(f"replay capacity must be >= 2 ticks, got {capacity}")
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.cmd = np.zeros((capacity, act_dim), np.float32)
        self.dec = np.zeros((capacity, act_dim), np.float32)  # decision of the worker starting at the tick
        self.rew = np.zeros(capacity, np.float32)
        self.term = np.zeros(capacity, np.float32)
        self.ep_start = np.zeros(capacity, np.int64)  # absolute first row of each row's episode
        self.delay = np.zeros(capacity, np.int64)  # D of each row's episode
        self.offset = np.zeros(capacity, np.float32)  # actuation offset of each row's episode (s)
        self.has_next = np.zeros(capacity, bool)
        self.n = 0  # rows written
        self._start = 0
        self._delay = 0
        self._offset = 0.0

    def __len__(self) -> int:
        return min(self.n, self.capacity)

    def slot(self, rows: np.ndarray) -> np.ndarray:
        return rows % self.capacity

    def _write(self, obs: np.ndarray) -> None:
        i = self.n % self.capacity
        self.obs[i], self.ep_start[i], self.delay[i], self.has_next[i] = obs, self._start, self._delay, False
        self.offset[i] = self._offset
        self.n += 1

    def start_episode(self, obs: np.ndarray, delay: int = 0, offset: float = 0.0) -> None:
        self._start, self._delay, self._offset = self.n, delay, offset
        self._write(obs)

    def add_tick(
        self, cmd: np.ndarray, reward: float, terminated: bool, next_obs: np.ndarray, decision: np.ndarray
    ) -> None:
        i = (self.n - 1) % self.capacity
        self.cmd[i], self.rew[i], self.term[i] = cmd, reward, float(terminated)
        self.dec[i], self.has_next[i] = decision, True
        self._write(next_obs)

    def sample(self, rng: np.random.Generator, batch: int, lookback: int) -> np.ndarray:
        """`batch` absolute rows with a transition whose `lookback` earlier rows are still stored (or
        precede the episode's start, where readers clamp)."""
        lo = 0 if self.n <= self.capacity else self.n - self.capacity + lookback
        if lo >= self.n - 1 or not self.has_next.any():
            raise ValueError("the replay holds no transition to sample (buffer smaller than the look-back?)")
        rows = np.empty(0, np.int64)
        while len(rows) < batch:  # episode-final rows (one per episode) are redrawn
            cand = rng.integers(lo, self.n - 1, batch)
            rows = np.concatenate((rows, cand[self.has_next[self.slot(cand)]]))
        return rows[:batch]

    def state(self) -> dict:
        idx = self.slot(np.arange(self.n - len(self), self.n))
        keys = ("obs", "cmd", "dec", "rew", "term", "ep_start", "delay", "offset", "has_next")
        return {k: getattr(self, k)[idx].copy() for k in keys} | {
            "n": self.n,
            "start": self._start,
            "cur_delay": self._delay,
            "cur_offset": self._offset,
        }

    @classmethod
    def from_state(cls, s: dict, capacity: int) -> TickReplay:
        r = cls(s["obs"].shape[1], s["cmd"].shape[1], capacity)
        n = int(s["n"])
        if "has_next" not in s:  # resume.pt written before the ring: rows 0..n-1 and a valid list
            s = dict(s, has_next=np.isin(np.arange(n), s["valid"]), start=int(s["ep_start"][n - 1]))
            s["delay"] = np.zeros(n, np.int64)
        if "offset" not in s:  # resume.pt written before the actuation offset
            s = dict(s, offset=np.zeros(len(s["obs"]), np.float32))
        keep = min(capacity, len(s["obs"]))
        idx = r.slot(np.arange(n - keep, n))
        for k in ("obs", "cmd", "dec", "rew", "term", "ep_start", "delay", "offset", "has_next"):
            getattr(r, k)[idx] = s[k][len(s[k]) - keep :]
        r.n, r._start, r._delay = n, int(s["start"]), int(s.get("cur_delay", 0))
        r._offset = float(s.get("cur_offset", 0.0))
        return r


class SAC:
    """Networks, optimisers and one gradient step."""

    def __init__(
        self, cfg: SACConfig, input_dim: int, act_dim: int, stride: int, control_period: float = 1.0
    ) -> None:
        self.cfg, self.act_dim, self.stride = cfg, act_dim, stride
        self.control_period = control_period
        self.actor: LayeredActor = build_network(cfg.arch, input_dim, act_dim, cfg.hidden, cfg.depth)
        self.delays = np.array(cfg.delays)
        self.d_max = int(self.delays.max())
        n_onehot = len(self.delays) if len(self.delays) > 1 else 0  # the critic is told D when it varies
        # the critic is told the episode's actuation offset (in periods) when it varies
        critic_in = input_dim + self.d_max * act_dim + n_onehot + int(cfg.offset_varies)
        self.q1, self.q2, self.q1_t, self.q2_t = (
            Critic(critic_in, act_dim, cfg.critic_hidden) for _ in range(4)
        )
        self.q1_t.load_state_dict(self.q1.state_dict())
        self.q2_t.load_state_dict(self.q2.state_dict())
        self.q_opt = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], lr=cfg.q_lr)
        self.pi_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.policy_lr)
        self.target_entropy = -float(act_dim)
        self.log_alpha = torch.tensor(math.log(cfg.alpha), requires_grad=True)
        self.a_opt = torch.optim.Adam([self.log_alpha], lr=cfg.q_lr)
        self.updates = 0
        self.reference: LayeredActor | None = None  # fine-tuning: the initial actor (bc_weight)
        self._offsets = stride * np.arange(-(cfg.seq_len - 1), 1)  # L+1 ticks at the worker stride
        self.lookback = max(-int(self._offsets[0]), self.d_max)  # earlier rows an update reads

    def modules(self) -> dict[str, nn.Module | torch.optim.Optimizer]:
        return {
            "actor": self.actor,
            "q1": self.q1,
            "q2": self.q2,
            "q1_t": self.q1_t,
            "q2_t": self.q2_t,
            "q_opt": self.q_opt,
            "pi_opt": self.pi_opt,
            "a_opt": self.a_opt,
        }

    @property
    def alpha(self) -> float:
        return float(self.log_alpha.detach().exp()) if self.cfg.autotune else self.cfg.alpha

    def _sequences(self, rb: TickReplay, anchor: np.ndarray, start: np.ndarray):
        idx = anchor[:, None] + self._offsets[None, :]
        mask = idx >= start[:, None]
        idx = np.where(mask, idx, start[:, None])
        return torch.from_numpy(rb.obs[rb.slot(idx)]), torch.from_numpy(mask)

    def _policy(self, seq: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # only the last returned head is needed: the exact one-pass diagonal of the unroll (tested)
        return squashed_gaussian(self.actor.last_head(seq, mask), self.act_dim)

    def _pending(self, rb: TickReplay, base: np.ndarray, start: np.ndarray) -> tuple[torch.Tensor, ...]:
        """Critic state and action at tick `base`: obs ++ the D commands in flight (applied at
        base..base+D-1: the decisions of the workers that started at base-D..base-1, or the executed
        fallback before any had started), and the decision of the worker starting at base.

        Decisions are recorded even when the episode ends before they land, so the critic never sees
        padding that would tell it, in hindsight, that the episode is about to end.

        With several delays the episode's D (from the replay) fills the first D of max(D) slots, zeros
        after, and a one-hot of D follows.
        """
        k = np.arange(self.d_max)[None, :]
        varies = len(self.delays) > 1
        d = rb.delay[rb.slot(base)][:, None] if varies else np.full((len(base), 1), self.d_max)
        src = base[:, None] + k - d  # worker starts whose actions are in flight
        started = (src >= start[:, None])[..., None]
        fallback = rb.cmd[rb.slot(np.minimum(base[:, None] + k, rb.n - 1))]
        pend = np.where(started, rb.dec[rb.slot(np.maximum(src, 0))], fallback)
        pend = np.where((k < d)[..., None], pend, 0.0).astype(np.float32)
        parts = [rb.obs[rb.slot(base)], pend.reshape(len(base), -1)]
        if varies:
            parts.append((d == self.delays[None, :]).astype(np.float32))
        if self.cfg.offset_varies:
            parts.append((rb.offset[rb.slot(base)][:, None] / self.control_period).astype(np.float32))
        return torch.from_numpy(np.concatenate(parts, 1)), torch.from_numpy(rb.dec[rb.slot(base)])

    def update(self, rb: TickReplay, rng: np.random.Generator, critic_only: bool = False) -> dict[str, float]:
        cfg = self.cfg
        rows = rb.sample(rng, cfg.batch_size, self.lookback)
        start = rb.ep_start[rb.slot(rows)]
        # Delayed MDP made Markov for the critic (training only): x_t = (o_t, commands in flight), its
        # action = the command the worker starting at t decides, applied at t + D.
        x, a_taken = self._pending(rb, rows, start)
        nx, _ = self._pending(rb, rows + 1, start)
        rew, term = (torch.from_numpy(a[rb.slot(rows)]) for a in (rb.rew, rb.term))
        alpha = self.alpha
        with torch.no_grad():
            nseq, nmask = self._sequences(rb, rows + 1, start)
            na, nlogp = self._policy(nseq, nmask)
            q_next = torch.min(self.q1_t(nx, na), self.q2_t(nx, na)) - alpha * nlogp
            target = rew + (1 - term) * cfg.gamma * q_next
        q1, q2 = self.q1(x, a_taken), self.q2(x, a_taken)
        q_loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        self.q_opt.zero_grad()
        q_loss.backward()
        self.q_opt.step()
        stats = {"q_loss": float(q_loss.detach()), "q": float(q1.detach().mean())}
        self.updates += 1
        if self.updates % cfg.policy_frequency == 0 and not critic_only:
            seq, mask = self._sequences(rb, rows, start)
            if self.reference is not None:
                with torch.no_grad():
                    ref = torch.tanh(self.reference.last_head(seq, mask)[:, : self.act_dim])
            for _ in range(cfg.policy_frequency):
                if self.reference is None:
                    a, logp = self._policy(seq, mask)
                    q = torch.min(self.q1(x, a), self.q2(x, a))
                    pi_loss = (alpha * logp - q).mean()
                else:
                    head = self.actor.last_head(seq, mask)
                    a, logp = squashed_gaussian(head, self.act_dim)
                    q = torch.min(self.q1(x, a), self.q2(x, a))
                    mean = torch.tanh(head[:, : self.act_dim])
                    pi_loss = (
                        alpha * logp - q
                    ).mean() / q.detach().abs().mean() + cfg.bc_weight * F.mse_loss(mean, ref)
                self.pi_opt.zero_grad()
                pi_loss.backward()
                self.pi_opt.step()
                if cfg.autotune:
                    a_loss = (-self.log_alpha.exp() * (logp.detach() + self.target_entropy)).mean()
                    self.a_opt.zero_grad()
                    a_loss.backward()
                    self.a_opt.step()
                    alpha = self.alpha
            stats |= {
                "pi_loss": float(pi_loss.detach()),
                "alpha": alpha,
                "entropy": float(-logp.detach().mean()),
            }
        polyak(((self.q1, self.q1_t), (self.q2, self.q2_t)), cfg.tau)
        return stats
