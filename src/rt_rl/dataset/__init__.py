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
import sys
import time
from pathlib import Path

from rt_rl.dataset.align import DatasetError, Episode, align
from rt_rl.dataset.bag import read_bag
from rt_rl.dataset.write import check_dataset_id, write_dataset

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
