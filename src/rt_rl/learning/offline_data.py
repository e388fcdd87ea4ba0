"""`rt-rl train-offline`'s data (the method is described there): the Minari dataset as per-tick arrays,
the timing recorded in it, the per-worker chains of calls, and the tensors an update reads."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rt_rl.policy.networks import observation_delay, receptive_ticks
from rt_rl.policy.timing_check import live_delay_ticks

INFO_KEYS = ("tick", "tick_stamp", "tick_kind", "worker_id", "action_age", "inference_start")


class OfflineError(Exception):
    """A one-line reason (exit code 2)."""


# ---------------------------------------------------------------------------------------------------
# 1. The dataset as per-tick arrays, and the recorded timing


def load_dataset(dataset_id: str, root: str = ""):
    import minari

    old = os.environ.get("MINARI_DATASETS_PATH")
    if root:
        os.environ["MINARI_DATASETS_PATH"] = str(Path(root).resolve())
    try:
        return minari.load_dataset(dataset_id)
    except Exception as err:  # FileNotFoundError, a malformed id, a damaged file
        where = root or os.environ.get("MINARI_DATASETS_PATH") or "minari's default root"
        raise OfflineError(f"dataset '{dataset_id}' ({where}): {' '.join(str(err).split())}") from None
    finally:
        if root:
            if old is None:
                os.environ.pop("MINARI_DATASETS_PATH", None)
            else:
                os.environ["MINARI_DATASETS_PATH"] = old


@dataclass
class Ticks:
    """One row per step (control tick) of the dataset, episodes contiguous, in dataset order."""

    obs: np.ndarray  # [n, obs_size] float32: the observation behind the tick's command, as recorded
    cmd: np.ndarray  # [n, A] float32: the command executed, in actuator units
    rew: np.ndarray  # [n] float32
    term: np.ndarray  # [n] float32
    has_next: np.ndarray  # [n] bool: a target exists (not the last step of a truncated episode)
    kind: np.ndarray  # [n] str: fresh | fallback | watchdog
    worker: np.ndarray  # [n] int64, -1 if none
    tick: np.ndarray  # [n] int64: the arbiter's tick index
    stamp: np.ndarray  # [n] float64: tick time, s
    age: np.ndarray  # [n] float64: action age at actuation, s (nan if none)
    start: np.ndarray  # [n] float64: inference start of the actuated action, s (nan if none)
    episode: np.ndarray  # [n] int64: dataset episode index
    first: np.ndarray  # [n] int64: the row of the episode's first step
    versions: list[str]  # policy versions seen
    returns: list[float]  # per dataset episode

    def __len__(self) -> int:
        return len(self.rew)

    @property
    def fresh(self) -> np.ndarray:
        return (self.kind == "fresh") & (self.worker >= 0)


def load_ticks(dataset) -> Ticks:
    parts: dict[str, list] = {k: [] for k in ("obs", "cmd", "rew", "term", "has_next", "episode", "first")}
    parts |= {k: [] for k in INFO_KEYS}
    versions: set[str] = set()
    returns, row = [], 0
    for i, ep in enumerate(dataset.iterate_episodes()):
        n = len(ep)
        if n == 0:
            continue
        missing = [k for k in INFO_KEYS if k not in ep.infos]
        if missing:
            raise OfflineError(
                f"dataset '{dataset.id}' has no infos {', '.join(missing)} (write it with rt-rl dataset)"
            )
        parts["obs"].append(np.asarray(ep.observations, np.float32)[:n])
        parts["cmd"].append(np.asarray(ep.actions, np.float32))
        parts["rew"].append(np.asarray(ep.rewards, np.float32))
        term = np.asarray(ep.terminations, bool)
        parts["term"].append(term.astype(np.float32))
        parts["has_next"].append((np.arange(n) < n - 1) | term)
        parts["episode"].append(np.full(n, i))
        parts["first"].append(np.full(n, row))
        for k in INFO_KEYS:  # row t + 1 describes step t (row 0: the reset)
            parts[k].append(np.asarray(ep.infos[k])[1 : n + 1])
        versions |= {str(v) for v in np.asarray(ep.infos.get("policy_version", []))[1:] if str(v)}
        returns.append(float(np.sum(ep.rewards)))
        row += n
    if row == 0:
        raise OfflineError(f"dataset '{dataset.id}' holds no step")
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    return Ticks(
        obs=cat["obs"],
        cmd=cat["cmd"],
        rew=cat["rew"],
        term=cat["term"],
        has_next=cat["has_next"],
        kind=cat["tick_kind"].astype(str),
        worker=cat["worker_id"].astype(np.int64),
        tick=cat["tick"].astype(np.int64),
        stamp=cat["tick_stamp"].astype(np.float64),
        age=cat["action_age"].astype(np.float64),
        start=cat["inference_start"].astype(np.float64),
        episode=cat["episode"].astype(np.int64),
        first=cat["first"].astype(np.int64),
        versions=sorted(versions),
        returns=returns,
    )


def previous_fresh(t: Ticks) -> np.ndarray:
    """For each fresh row, the row of the same worker's previous fresh tick in its episode (-1: none)."""
    prev = np.full(len(t), -1, np.int64)
    last: dict[tuple[int, int], int] = {}
    for r in np.flatnonzero(t.fresh):
        key = (int(t.episode[r]), int(t.worker[r]))
        prev[r] = last.get(key, -1)
        last[key] = r
    return prev


def recorded_timing(t: Ticks, sensor_period: float, fallback: str) -> dict[str, Any]:
    """The timing the data was recorded at (see the module doc); `fallback` if no fallback tick says."""
    same = (np.diff(t.episode) == 0) & (np.diff(t.tick) == 1)
    steps = np.diff(t.stamp)[same]
    steps = steps[np.isfinite(steps) & (steps > 0)]
    if len(steps) == 0:
        raise OfflineError("the dataset has no two consecutive ticks with stamps: no control period")
    measured_period = float(np.median(steps))
    m = max(1, round(measured_period / sensor_period))
    period = m * sensor_period
    fresh = t.fresh
    workers = sorted({int(w) for w in t.worker[fresh]})
    if not workers:
        raise OfflineError("the dataset has no fresh tick with a worker id: no action to learn from")
    prev = previous_fresh(t)
    has_prev = prev >= 0
    gaps = t.tick[has_prev] - t.tick[prev[has_prev]]
    stride = int(np.bincount(gaps).argmax()) if len(gaps) else len(workers)
    lead = (t.stamp - t.start)[fresh]
    lead = lead[np.isfinite(lead)]
    delay = live_delay_ticks(float(np.median(lead)), period) if len(lead) else 1
    kinds = t.kind
    fb = np.flatnonzero((kinds == "fallback")[1:]) + 1
    fb = fb[t.episode[fb] == t.episode[fb - 1]]
    if len(fb):
        held = np.mean(np.all(t.cmd[fb] == t.cmd[fb - 1], axis=1))
        zero = np.mean(np.all(t.cmd[fb] == 0, axis=1))
        fallback = "zero" if zero > held else "hold"
    ages = t.age[np.isfinite(t.age)]
    return {
        "control_period": period,
        "measured_period": measured_period,
        "num_workers": len(workers),
        "stride": stride,
        "inference_ticks": int(delay),
        "fallback": fallback,
        "fresh_ratio": float(np.mean(fresh)),
        "action_age_p50": float(np.median(ages)) if len(ages) else math.nan,
        "action_age_p99": float(np.percentile(ages, 99)) if len(ages) else math.nan,
    }


def worker_chains(t: Ticks, stride: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose observations a fresh row's actuating call depends on, newest (the row itself) first:
    [n, length], -1 before the episode's first call (or for a non-fresh row); and `ok`: the chain is
    complete (no call missing between two of its links: each link is exactly `stride` ticks back)."""
    n = len(t)
    prev = previous_fresh(t)
    gap = np.zeros(n, bool)
    has = prev >= 0
    gap[has] = t.tick[has] - t.tick[prev[has]] != stride
    chain = np.full((n, length), -1, np.int64)
    fresh = t.fresh
    chain[:, 0] = np.where(fresh, np.arange(n), -1)
    ok = fresh.copy()
    for i in range(1, length):
        cur = chain[:, i - 1]
        valid = cur >= 0
        safe = np.maximum(cur, 0)
        broken = valid & gap[safe]
        ok &= ~broken
        chain[:, i] = np.where(valid & ~broken, prev[safe], -1)
    return chain, ok


# ---------------------------------------------------------------------------------------------------
# 2. Inputs: the actor's per-worker sequences and the critic's state, for every row


@dataclass
class Batchable:
    """Tensors indexed by row (everything an update reads)."""

    seq: torch.Tensor  # [n, T, input_dim] the actor's unroll input
    mask: torch.Tensor  # [n, T] bool
    x: torch.Tensor  # [n, critic_dim]
    act: torch.Tensor  # [n, A] the command executed, in [-1, 1]
    rew: torch.Tensor  # [n]
    term: torch.Tensor  # [n]
    policy_next: torch.Tensor  # [n] bool: row's command is the actor's (fresh, chain complete)
    actor_rows: np.ndarray  # rows for the actor's loss
    critic_rows: np.ndarray  # rows with a target


def build_inputs(
    t: Ticks,
    obs: np.ndarray,
    act: np.ndarray,
    arch: str,
    depth: int,
    stride: int,
    k_commands: int,
    period: float,
) -> Batchable:
    """`obs` re-normalised observations, `act` commands in [-1, 1] (both [n, ...], rows of `t`)."""
    n = len(obs)
    steps = receptive_ticks(arch, depth) + 1  # T: the unroll last_head takes
    dep = steps - 1 - observation_delay(arch, depth)  # entry of the call the output depends on
    chain, ok = worker_chains(t, stride, dep + 1)
    seq = np.repeat(obs[:, None, :], steps, axis=1)  # entries after `dep`: not read by the network
    mask = np.ones((n, steps), bool)
    for i in range(dep + 1):
        rows = chain[:, i]
        seq[:, dep - i] = obs[np.maximum(rows, 0)]
        mask[:, dep - i] = rows >= 0
    # critic: observation, the K commands executed before the tick (zeros before the episode), age
    past = np.zeros((n, k_commands, act.shape[1]), np.float32)
    for j in range(1, k_commands + 1):
        src = np.arange(n) - j
        inside = src >= t.first
        past[:, k_commands - j] = np.where(inside[:, None], act[np.maximum(src, 0)], 0.0)
    age = np.where(np.isfinite(t.age), t.age / period, k_commands) / max(k_commands, 1)
    x = np.concatenate((obs, past.reshape(n, -1), age[:, None].astype(np.float32)), 1)
    return Batchable(
        seq=torch.from_numpy(seq.astype(np.float32)),
        mask=torch.from_numpy(mask),
        x=torch.from_numpy(x.astype(np.float32)),
        act=torch.from_numpy(act.astype(np.float32)),
        rew=torch.from_numpy(t.rew.astype(np.float32)),
        term=torch.from_numpy(t.term.astype(np.float32)),
        policy_next=torch.from_numpy(ok),
        actor_rows=np.flatnonzero(ok),
        critic_rows=np.flatnonzero(t.has_next),
    )
