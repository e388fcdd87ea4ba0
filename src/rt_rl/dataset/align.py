"""The alignment of a bag's records into per-tick episodes: a pure function of plain records (see
`rt-rl dataset --help` for what a step holds)."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rt_rl.core.arbiter import TickKind, episode_after


class DatasetError(Exception):
    """A one-line reason why no dataset was written (exit code 2)."""


# ---------------------------------------------------------------------------------------------------
# Plain records (what the bag holds, times in wall-clock seconds)


@dataclass(frozen=True)
class TickRecord:
    """One /rt_rl/actuation message."""

    stamp: float
    index: int
    kind: str  # TickKind value
    in_window: bool
    command: np.ndarray
    action_age: float
    worker_id: int = -1  # the actuated action, fresh ticks only
    observation_seq: int = -1


@dataclass(frozen=True)
class ObservationRecord:
    seq: int
    episode: int
    stamp: float  # sensor stamp
    data: np.ndarray


@dataclass(frozen=True)
class ActionRecord:
    worker_id: int
    observation_seq: int
    stamp: float  # publish time
    inference_start: float
    inference_end: float
    policy_version: str


@dataclass(frozen=True)
class RewardRecord:
    stamp: float
    episode: int
    step: int
    reward: float
    terminated: bool
    truncated: bool

    @property
    def terminal(self) -> bool:
        return self.terminated or self.truncated


@dataclass
class Episode:
    episode: int  # the robot's episode number
    observations: np.ndarray  # (steps + 1, obs_dim) float32
    actions: np.ndarray  # (steps, action_dim) float32
    rewards: np.ndarray  # (steps,)
    terminations: np.ndarray  # (steps,) bool
    truncations: np.ndarray  # (steps,) bool
    infos: dict[str, np.ndarray]  # each (steps + 1,)
    complete: bool  # its first and its last step are in the bag's window

    def __len__(self) -> int:
        return len(self.rewards)


@dataclass
class Alignment:
    episodes: list[Episode]
    window_ticks: int  # ticks in the measurement window: the steps
    tick_gaps: int = 0  # tick indices missing inside the window (a lossy recording)
    missing_observations: int = 0  # steps whose action's observation is not in the bag
    missing_actions: int = 0  # fresh ticks whose action is not in the bag (no provenance)
    kinds: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------
# Pure alignment


def merge_episode_ends(rewards: Sequence[RewardRecord], ends: Sequence[RewardRecord]) -> list[RewardRecord]:
    """The per-step rewards plus the episode ends missing from them (the same step is in both
    topics), in stamp order."""
    have = {(r.episode, r.step) for r in rewards}
    merged = list(rewards) + [e for e in ends if (e.episode, e.step) not in have]
    return sorted(merged, key=lambda r: (r.stamp, r.episode, r.step))


def tick_episodes(tick_stamps: Sequence[float], rewards: Sequence[RewardRecord]) -> list[int]:
    """The robot's episode at each tick: after the last reward at or before it (the next episode
    when that reward was terminal); before any reward, the first reward's episode (0 if none)."""
    stamps = [r.stamp for r in rewards]
    first = rewards[0].episode if rewards else 0
    out = []
    for t in tick_stamps:
        i = bisect.bisect_right(stamps, t) - 1
        out.append(first if i < 0 else episode_after(rewards[i].episode, rewards[i].terminal))
    return out


def credit_rewards(
    tick_stamps: Sequence[float], episodes: Sequence[int], rewards: Sequence[RewardRecord], end: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per tick: summed reward, terminated, truncated. A simulation step is credited to the last tick
    of its episode at or before its stamp, or to its episode's first tick when it came before it;
    steps before the first tick or at/after `end` are outside the window."""
    n = len(tick_stamps)
    reward = np.zeros(n)
    terminated = np.zeros(n, dtype=bool)
    truncated = np.zeros(n, dtype=bool)
    first_tick: dict[int, int] = {}
    for k, e in enumerate(episodes):
        first_tick.setdefault(e, k)
    for r in rewards:
        if r.stamp >= end:
            continue
        k = bisect.bisect_right(tick_stamps, r.stamp) - 1
        if k < 0:
            continue
        if r.episode > episodes[k]:  # the robot reset between two ticks: the new episode's first tick
            k = first_tick.get(r.episode, -1)
            if k < 0:
                continue
        elif r.episode < episodes[k]:  # not possible from one robot (its episodes only grow)
            continue
        reward[k] += r.reward
        terminated[k] |= r.terminated
        truncated[k] |= r.truncated
    return reward, terminated, truncated


class _Observations:
    """Observations by seq, and per episode in stamp order."""

    def __init__(self, observations: Sequence[ObservationRecord]) -> None:
        self.by_seq = {o.seq: o for o in observations}
        self.of_episode: dict[int, list[ObservationRecord]] = {}
        for o in sorted(observations, key=lambda o: (o.stamp, o.seq)):
            self.of_episode.setdefault(o.episode, []).append(o)
        self._stamps = {e: [o.stamp for o in obs] for e, obs in self.of_episode.items()}

    def at(self, episode: int, t: float) -> ObservationRecord | None:
        """The newest observation of `episode` at or before `t`, else its first, else None."""
        obs = self.of_episode.get(episode)
        if not obs:
            return None
        i = bisect.bisect_right(self._stamps[episode], t) - 1
        return obs[max(i, 0)]

    def first(self, episode: int) -> ObservationRecord | None:
        obs = self.of_episode.get(episode)
        return obs[0] if obs else None

    def last(self, episode: int) -> ObservationRecord | None:
        obs = self.of_episode.get(episode)
        return obs[-1] if obs else None


def align(
    ticks: Sequence[TickRecord],
    observations: Sequence[ObservationRecord],
    actions: Sequence[ActionRecord],
    rewards: Sequence[RewardRecord],
    episode_ends: Sequence[RewardRecord] = (),
    complete_only: bool = False,
) -> Alignment:
    """The episodes of one bag: one step per window tick (see the module docstring)."""
    ticks = sorted(ticks, key=lambda t: t.index)
    first = next((i for i, t in enumerate(ticks) if t.in_window), None)
    if first is None:
        raise DatasetError("no control tick in the measurement window (was the run long enough?)")
    window = ticks[first:]
    gaps = window[-1].index - window[0].index + 1 - len(window)

    # The action behind each tick's command: the actuated one, held on non-fresh ticks.
    by_key: dict[tuple[int, int], list[ActionRecord]] = {}
    for a in sorted(actions, key=lambda a: a.stamp):
        by_key.setdefault((a.worker_id, a.observation_seq), []).append(a)
    behind: list[tuple[int, int, ActionRecord | None]] = []  # (worker, seq, action) per window tick
    current: tuple[int, int, ActionRecord | None] = (-1, -1, None)
    missing_actions = 0
    for i, t in enumerate(ticks):
        if t.kind == TickKind.FRESH and t.observation_seq >= 0:
            candidates = by_key.get((t.worker_id, t.observation_seq), [])
            stamps = [a.stamp for a in candidates]
            j = bisect.bisect_right(stamps, t.stamp) - 1
            action = candidates[max(j, 0)] if candidates else None
            missing_actions += action is None and i >= first
            current = (t.worker_id, t.observation_seq, action)
        if i >= first:
            behind.append(current)

    rewards = merge_episode_ends(rewards, episode_ends)
    stamps = [t.stamp for t in window]
    period = float(np.median(np.diff(stamps))) if len(stamps) > 1 else 0.0
    end = stamps[-1] + period if period > 0 else math.inf
    episodes = tick_episodes(stamps, rewards)
    reward, terminated, truncated = credit_rewards(stamps, episodes, rewards, end)

    obs = _Observations(observations)
    out: list[Episode] = []
    missing_obs = 0
    start = 0
    while start < len(window):
        stop = start
        while stop + 1 < len(window) and episodes[stop + 1] == episodes[start]:
            stop += 1
        e = episodes[start]
        steps = range(start, stop + 1)
        chosen: list[ObservationRecord] = []
        for k in steps:
            _, seq, _ = behind[k]
            o = obs.by_seq.get(seq) if seq >= 0 else None
            missing_obs += seq >= 0 and o is None
            if o is None and seq >= 0:  # lost: the newest of the episode at the tick stands in
                o = obs.at(e, window[k].stamp)
            elif o is None or o.episode != e:  # no action of this episode yet: its first observation
                o = obs.first(e)
            if o is None:
                raise DatasetError(f"episode {e} has no observation in the bag")
            chosen.append(o)
        final = obs.last(e) or chosen[-1]
        ended = bool(terminated[stop] or truncated[stop])
        trunc = truncated[stop] or not ended  # the bag ends inside this episode: truncated there
        began_before = start == 0 and any(r.episode == e and r.stamp < stamps[0] for r in rewards)
        complete = ended and not began_before
        if complete or not complete_only:
            out.append(
                _episode(e, window, steps, chosen, final, behind, reward, terminated, truncated, complete)
            )
            out[-1].truncations[-1] = bool(trunc)
        start = stop + 1

    kinds = {k.value: sum(t.kind == k.value for t in window) for k in TickKind}
    return Alignment(out, len(window), gaps, missing_obs, missing_actions, kinds)


def _episode(
    e: int,
    window: Sequence[TickRecord],
    steps: range,
    chosen: list[ObservationRecord],
    final: ObservationRecord,
    behind: list[tuple[int, int, ActionRecord | None]],
    reward: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    complete: bool,
) -> Episode:
    n = len(steps)
    nan_row = [math.nan]
    seen = [*chosen, final]
    step_ticks = [window[k] for k in steps]
    acts = [behind[k] for k in steps]
    infos = {
        "tick": np.array([-1] + [t.index for t in step_ticks], dtype=np.int64),
        "tick_stamp": np.array(nan_row + [t.stamp for t in step_ticks]),
        "tick_kind": np.array(["reset"] + [t.kind for t in step_ticks]),
        "action_age": np.array(nan_row + [t.action_age for t in step_ticks]),
        "worker_id": np.array([-1] + [w for w, _, _ in acts], dtype=np.int64),
        "inference_start": np.array(nan_row + [a.inference_start if a else math.nan for _, _, a in acts]),
        "inference_end": np.array(nan_row + [a.inference_end if a else math.nan for _, _, a in acts]),
        "policy_version": np.array([""] + [a.policy_version if a else "" for _, _, a in acts]),
        "observation_seq": np.array([o.seq for o in seen], dtype=np.int64),
        "observation_stamp": np.array([o.stamp for o in seen]),
        "episode": np.full(n + 1, e, dtype=np.int64),
    }
    return Episode(
        episode=e,
        observations=np.stack([np.asarray(o.data, dtype=np.float32) for o in seen]),
        actions=np.stack([np.asarray(t.command, dtype=np.float32) for t in step_ticks]),
        rewards=reward[steps.start : steps.stop].copy(),
        terminations=terminated[steps.start : steps.stop].copy(),
        truncations=truncated[steps.start : steps.stop].copy(),
        infos=infos,
        complete=complete,
    )
