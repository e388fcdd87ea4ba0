"""`rt-rl dataset`: rosbag2 bags of the graph turned into one Minari dataset (arrow storage).

  rt-rl dataset BAG... --out DIR [--name rt_rl/NAME-v0]

Read it back with `MINARI_DATASETS_PATH=DIR` and `minari.load_dataset("rt_rl/NAME-v0")`.

One step per control tick of the arbiter's measurement window (the `in_window` ticks of
/rt_rl/actuation), in tick order:

- action: the command executed at the tick (fallback and watchdog ticks included), as published;
- observation: the observation the command depends on, the one behind the actuated action (on a
  fallback or watchdog tick, the last actuated one: the observation `action_age` is measured from).
  At an episode's start, before an action of that episode was actuated, the episode's first
  observation (the reset state; the command then depends on none of this episode's observations).
  The final observation of an episode is the
  newest one of that episode in the bag (the terminal state itself is never published: the
  simulator resets before it publishes the next state);
- reward: the rewards of the simulation steps credited to the tick (a step is credited to the last
  tick of its episode at or before its stamp, a step of a new episode before that episode's first
  tick to that tick);
- termination / truncation: from the episode ends (/rt_rl/reward, /rt_rl/episode_end). The last
  episode of a bag, when its end is not in the bag, is truncated at its last recorded tick;
- infos (Gymnasium's and Minari's convention: each array is one longer than the episode, row 0
  belongs to the reset, row t + 1 to step t): `tick`, `tick_stamp`, `tick_kind` (fresh, fallback,
  watchdog; "reset" in row 0), `action_age`, `worker_id`, `inference_start`, `inference_end`,
  `policy_version` of the action behind the command (-1, NaN, "" if none); and, row t describing
  observation t, `observation_seq`, `observation_stamp` and the robot's `episode`. Times are wall
  clock seconds; ages seconds.

Episodes whose start (the leading one, begun before the window) or end (the trailing one) is not in
the bag are kept, so that the steps are exactly the window's ticks; `--complete-episodes` keeps only
the episodes recorded from start to end. The alignment (`align`) is a pure function of plain records.
"""

from __future__ import annotations

import argparse
import bisect
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rt_rl.core.arbiter import TickKind, episode_after
from rt_rl.graph import TOPICS

# The topics read (graph.TOPICS keys); a bag's params.yaml may rename them for the recorder.
READ_TOPICS = ("actuation", "observation", "action", "reward", "episode_end")
REQUIRED_TOPICS = ("actuation", "observation", "action", "reward")  # episode_end: none in a short run


DESCRIPTION = (
    "Recorded live by rt_rl (ROS 2): one step per control tick of the actuator arbiter's measurement "
    "window. action: the command executed (fallback and watchdog ticks included); observation: the "
    "observation the command depends on. infos[key][t + 1] describes step t: tick, tick_stamp, "
    "tick_kind (fresh/fallback/watchdog), action_age, worker_id, inference_start, inference_end, "
    "policy_version; infos[key][t] describes observation t: observation_seq, observation_stamp, episode. "
    "Times are wall-clock seconds. See `rt-rl dataset --help`."
)


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


# ---------------------------------------------------------------------------------------------------
# Reading bags


@dataclass
class BagRecords:
    path: Path
    task: str | None  # the run's task (params.yaml), None if unknown
    ticks: list[TickRecord]
    observations: list[ObservationRecord]
    actions: list[ActionRecord]
    rewards: list[RewardRecord]
    episode_ends: list[RewardRecord]


def _s(stamp) -> float:
    return int(stamp.sec) + int(stamp.nanosec) * 1e-9


def bag_directory(path: Path) -> Path:
    """A bag directory from the directory or a file inside it (metadata.yaml, the .mcap)."""
    if not path.exists():
        raise DatasetError(f"{path}: no such file or directory")
    if path.is_file() and (path.parent / "metadata.yaml").is_file():
        return path.parent
    if not (path.is_dir() and (path / "metadata.yaml").is_file()):
        raise DatasetError(f"{path}: not a rosbag2 bag (a directory with metadata.yaml)")
    return path


def bag_settings(bag: Path) -> tuple[dict[str, str], str | None]:
    """The topic names the recorder used and the run's task, from the params.yaml next to the bag."""
    from rt_rl.report import node_params, parse_params

    params_file = bag / "params.yaml"
    params = parse_params(params_file.read_text(errors="replace")) if params_file.is_file() else {}
    recorder = node_params(params, "bag_recorder")
    topics = {key: str(recorder.get(TOPICS[key].param) or TOPICS[key].default) for key in READ_TOPICS}
    task = node_params(params, "actuator_arbiter").get("task")
    return topics, str(task) if task else None


def read_bag(path: Path, progress: bool = True) -> BagRecords:
    """The records `align` needs from one rosbag2 bag."""
    from tqdm import tqdm

    from rt_rl.bagfile import bag_typestore, open_bag

    bag = bag_directory(path)
    topics, task = bag_settings(bag)
    reader, conns = open_bag(bag, topics, DatasetError)
    try:
        for key in REQUIRED_TOPICS:
            if sum(c.msgcount for c in conns[key]) == 0:
                hint = " (recorded before the arbiter published it)" if key == "actuation" else ""
                raise DatasetError(
                    f"{bag}: no {topics[key]} messages{hint}; it holds "
                    f"{', '.join(sorted(reader.topics)) or 'no topics'}"
                )
        store = bag_typestore(reader)
        records = BagRecords(bag, task, [], [], [], [], [])
        wanted = [c for key in READ_TOPICS for c in conns[key]]
        key_of = {c.id: key for key in READ_TOPICS for c in conns[key]}
        with tqdm(
            total=sum(c.msgcount for c in wanted),
            desc=f"reading {bag.name}",
            unit="msg",
            unit_scale=True,
            disable=None if progress else True,  # None: only on a terminal
        ) as bar:
            for conn, _, raw in reader.messages(connections=wanted):
                bar.update()
                _add(records, key_of[conn.id], store.deserialize_cdr(raw, conn.msgtype))
        return records
    except DatasetError:
        raise
    except Exception as e:  # a truncated chunk, a type that does not match
        raise DatasetError(f"{bag}: unreadable message: {' '.join(str(e).split())}") from None
    finally:
        reader.close()


def _add(records: BagRecords, key: str, msg) -> None:
    if key == "actuation":
        records.ticks.append(
            TickRecord(
                _s(msg.header.stamp),
                int(msg.tick),
                str(msg.kind),
                bool(msg.in_window),
                np.asarray(msg.command, dtype=np.float64),
                float(msg.action_age),
                int(msg.worker_id),
                int(msg.observation_seq),
            )
        )
    elif key == "observation":
        records.observations.append(
            ObservationRecord(
                int(msg.seq), int(msg.episode), _s(msg.header.stamp), np.asarray(msg.data, dtype=np.float32)
            )
        )
    elif key == "action":
        records.actions.append(
            ActionRecord(
                int(msg.worker_id),
                int(msg.observation_seq),
                _s(msg.header.stamp),
                _s(msg.inference_start),
                _s(msg.inference_end),
                str(msg.policy_version),
            )
        )
    else:
        reward = RewardRecord(
            _s(msg.header.stamp),
            int(msg.episode),
            int(msg.step),
            float(msg.reward),
            bool(msg.terminated),
            bool(msg.truncated),
        )
        (records.rewards if key == "reward" else records.episode_ends).append(reward)


# ---------------------------------------------------------------------------------------------------
# Writing the Minari dataset


def check_dataset_id(name: str, out: Path) -> None:
    """A well-formed id not yet taken under `out` (checked before the bags are read)."""
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        parse_dataset_id(name)
    except (ValueError, TypeError):
        raise DatasetError(
            f"--name {name}: not a Minari dataset id (NAMESPACE/NAME-vN, e.g. rt_rl/hopper-v0)"
        ) from None
    if (out / name).exists():
        raise DatasetError(f"{out / name}: a dataset of that name exists already (choose another --name)")


@contextmanager
def datasets_path(out: Path) -> Iterator[None]:
    """minari reads its root directory from MINARI_DATASETS_PATH when it is called."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(out.resolve())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def spaces(episodes: Sequence[Episode], task: str | None):
    """Observation and action spaces: the observation's size as recorded, the task's command limits."""
    import gymnasium as gym

    from rt_rl.tasks import TASKS

    obs_dim, act_dim = episodes[0].observations.shape[1], episodes[0].actions.shape[1]
    spec = TASKS.get(task) if task else None
    low, high = (
        (spec.action_low, spec.action_high) if spec and spec.action_dim == act_dim else (-np.inf, np.inf)
    )
    observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    action_space = gym.spaces.Box(low, high, (act_dim,), np.float32)
    return observation_space, action_space


def write_dataset(out: Path, name: str, episodes: Sequence[Episode], task: str | None, meta: dict):
    """The episodes as Minari dataset `name` under `out`, with minari's own writer (arrow storage)."""
    import minari
    from minari.data_collector import EpisodeBuffer

    observation_space, action_space = spaces(episodes, task)
    buffers = [
        EpisodeBuffer(
            id=i,
            observations=e.observations,
            actions=e.actions,
            rewards=e.rewards.tolist(),
            terminations=e.terminations.tolist(),
            truncations=e.truncations.tolist(),
            # lists: minari 0.5.4's arrow storage cannot read back 1-D ndarray infos (empty shape)
            infos={key: values.tolist() for key, values in e.infos.items()},
        )
        for i, e in enumerate(episodes)
    ]
    versions = sorted({v for e in episodes for v in e.infos["policy_version"][1:] if v})
    out.mkdir(parents=True, exist_ok=True)
    with datasets_path(out), warnings.catch_warnings():
        # minari's advice for datasets published on its server (author, code permalink, eval env)
        warnings.filterwarnings("ignore", category=UserWarning, module="minari")
        try:
            dataset = minari.create_dataset_from_buffers(
                dataset_id=name,
                buffer=buffers,
                observation_space=observation_space,
                action_space=action_space,
                algorithm_name=f"rt_rl pipelined policy ({', '.join(versions) or 'unknown version'})",
                description=DESCRIPTION,
                data_format="arrow",
            )
        except ValueError as e:  # "already exists", a malformed id
            raise DatasetError(f"{out}: {' '.join(str(e).split())}") from None
        dataset.storage.update_metadata({"rt_rl": meta})
    return dataset


# ---------------------------------------------------------------------------------------------------
# Command line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="rt-rl dataset", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("bags", nargs="+", metavar="BAG", help="rosbag2 bag directories recorded from the graph")
    ap.add_argument(
        "--out", required=True, help="the Minari datasets root (MINARI_DATASETS_PATH) to write into"
    )
    ap.add_argument("--name", help="dataset id NAMESPACE/NAME-vN (default rt_rl/<task>-v0)")
    ap.add_argument(
        "--complete-episodes",
        action="store_true",
        help="keep only episodes recorded from start to end (drops the window's partial first and last)",
    )
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    started = time.monotonic()
    try:
        if a.name:
            check_dataset_id(a.name, Path(a.out))
        episodes: list[Episode] = []
        tasks: set[str] = set()
        totals = {
            "bags": [],
            "window_ticks": 0,
            "tick_gaps": 0,
            "missing_observations": 0,
            "missing_actions": 0,
        }
        for path in a.bags:
            records = read_bag(Path(path), progress=not a.no_progress)
            try:
                aligned = align(
                    records.ticks,
                    records.observations,
                    records.actions,
                    records.rewards,
                    records.episode_ends,
                    a.complete_episodes,
                )
            except DatasetError as e:
                raise DatasetError(f"{records.path}: {e}") from None
            if episodes and aligned.episodes:
                want = (episodes[0].observations.shape[1], episodes[0].actions.shape[1])
                got = (aligned.episodes[0].observations.shape[1], aligned.episodes[0].actions.shape[1])
                if got != want:
                    raise DatasetError(
                        f"{records.path}: observation/action sizes {got} differ from the first bag's {want}"
                    )
            episodes += aligned.episodes
            tasks |= {records.task} if records.task else set()
            steps = sum(len(e) for e in aligned.episodes)
            totals["bags"].append({
                "path": str(records.path), "window_ticks": aligned.window_ticks, "steps": steps,
                "episodes": len(aligned.episodes), "complete_episodes": sum(e.complete for e in aligned.episodes),
                "tick_kinds": aligned.kinds,
            })  # fmt: skip
            for key in ("window_ticks", "tick_gaps", "missing_observations", "missing_actions"):
                totals[key] += getattr(aligned, key)
            print(
                f"{records.path}: {aligned.window_ticks} ticks in the window ({aligned.kinds}), "
                f"{steps} steps in {len(aligned.episodes)} episodes "
                f"({sum(e.complete for e in aligned.episodes)} complete)"
                + (f", {aligned.tick_gaps} ticks missing" if aligned.tick_gaps else "")
                + (
                    f", {aligned.missing_observations} observations missing"
                    if aligned.missing_observations
                    else ""
                )
                + (f", {aligned.missing_actions} actions missing" if aligned.missing_actions else "")
            )
        if not episodes:
            raise DatasetError(
                "no episode to write (every episode was partial; try without --complete-episodes)"
            )
        if len(tasks) > 1:
            raise DatasetError(f"the bags come from different tasks: {', '.join(sorted(tasks))}")
        task = next(iter(tasks), None)
        name = a.name or f"rt_rl/{(task or 'rt_rl').split('-')[0].lower()}-v0"
        check_dataset_id(name, Path(a.out))
        dataset = write_dataset(Path(a.out), name, episodes, task, {**totals, "task": task})
    except DatasetError as e:
        print(f"rt-rl dataset: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(
        f"rt-rl dataset: wrote {name} to {a.out}: {dataset.total_steps} steps, {dataset.total_episodes} episodes "
        f"in {time.monotonic() - started:.1f} s; read it with MINARI_DATASETS_PATH={a.out} and "
        f'minari.load_dataset("{name}")'
    )
    return 0
