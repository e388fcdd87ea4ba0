"""Writing aligned episodes as one Minari dataset (arrow storage)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from rt_rl.dataset.align import DatasetError, Episode

DESCRIPTION = (
    "Recorded live by rt_rl (ROS 2): one step per control tick of the actuator arbiter's measurement "
    "window. action: the command executed (fallback and watchdog ticks included); observation: the "
    "observation the command depends on. infos[key][t + 1] describes step t: tick, tick_stamp, "
    "tick_kind (fresh/fallback/watchdog), action_age, worker_id, inference_start, inference_end, "
    "policy_version; infos[key][t] describes observation t: observation_seq, observation_stamp, episode. "
    "Times are wall-clock seconds. See `rt-rl dataset --help`."
)


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
