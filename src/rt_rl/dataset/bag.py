"""Reading the records `align` needs from one rosbag2 bag of the graph."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rt_rl.dataset.align import (
    ActionRecord,
    DatasetError,
    ObservationRecord,
    RewardRecord,
    TickRecord,
)
from rt_rl.runparams import node_params, parse_params, recorded_topics

# The topics read (graph.TOPICS keys); a bag's params.yaml may rename them for the recorder.
READ_TOPICS = ("actuation", "observation", "action", "reward", "episode_end")
REQUIRED_TOPICS = ("actuation", "observation", "action", "reward")  # episode_end: none in a short run


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
    params_file = bag / "params.yaml"
    params = parse_params(params_file.read_text(errors="replace")) if params_file.is_file() else {}
    topics = recorded_topics(params, READ_TOPICS)
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
