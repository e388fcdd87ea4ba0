"""rt-rl dataset: the alignment of ticks, observations, actions and rewards on hand-built records, and
a Minari dataset written from a small synthetic bag (rosbags; no ROS graph starts) and loaded back.

The scenario: 20 ticks of 10 ms, the window opens at tick 2. Episode 0 (begun before the window)
ends terminated in tick 9's interval, episode 1 runs ticks 10-14 and ends truncated, episode 2 runs
from tick 15 to the end of the bag. A fresh tick k actuates worker k % 2's action on observation k - 1;
tick 5 is a fallback (hold), tick 6 a watchdog, ticks 10, 15 and 16 fallbacks at an episode's start.
Simulation step k is stamped 4 ms after tick k with reward k.
"""

import math
import sys
from pathlib import Path

import conftest
import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from rt_rl import cli
from rt_rl.dataset.align import (
    ActionRecord,
    DatasetError,
    ObservationRecord,
    RewardRecord,
    TickRecord,
    align,
    credit_rewards,
    merge_episode_ends,
    tick_episodes,
)
from rt_rl.typestore import rt_rl_typestore

T0 = 1_795_500_000.0  # s, wall clock
P = 0.01
KINDS = {5: "fallback", 6: "watchdog", 10: "fallback", 15: "fallback", 16: "fallback"}
ENDS = {9: (True, False), 14: (False, True)}  # tick -> (terminated, truncated)


def episode_of_step(k: int) -> int:
    return 0 if k <= 9 else 1 if k <= 14 else 2


def scenario(n: int = 20, window_from: int = 2):
    ticks, observations, actions, rewards = [], [], [], []
    command = np.zeros(3)
    for k in range(n):
        t = T0 + k * P
        kind = KINDS.get(k, "fresh")
        if kind == "fresh":
            command = np.array([k, -k, 0.5]) / 100
        elif kind == "watchdog":
            command = np.zeros(3)
        fresh = kind == "fresh" and k >= 1
        ticks.append(
            TickRecord(
                t, k, kind, k >= window_from, command.copy(), 0.011,
                k % 2 if fresh else -1, k - 1 if fresh else -1,
            )
        )  # fmt: skip
        observations.append(ObservationRecord(k, episode_of_step(k), t - 0.002, np.full(4, k, np.float32)))
        if k >= 1:
            actions.append(
                ActionRecord(k % 2, k - 1, t - 0.001, t - 0.006, t - 0.001, "v1" if k < 12 else "v2")
            )
        terminated, truncated = ENDS.get(k, (False, False))
        step = k + 1 if k <= 9 else k - 9 if k <= 14 else k - 14
        rewards.append(RewardRecord(t + 0.004, episode_of_step(k), step, float(k), terminated, truncated))
    return ticks, observations, actions, rewards


@pytest.fixture
def aligned():
    return align(*scenario())


def by_episode(result):
    return {e.episode: e for e in result.episodes}


def test_one_step_per_window_tick_and_none_before_the_window(aligned):
    assert aligned.window_ticks == 18
    assert sum(len(e) for e in aligned.episodes) == 18
    ticks = np.concatenate([e.infos["tick"][1:] for e in aligned.episodes])
    assert ticks.tolist() == list(range(2, 20))
    assert aligned.kinds == {"fresh": 13, "fallback": 4, "watchdog": 1}


def test_episodes_split_at_the_tick_of_the_terminal_step(aligned):
    eps = by_episode(aligned)
    assert [len(eps[e]) for e in (0, 1, 2)] == [8, 5, 5]
    assert eps[0].terminations.tolist() == [False] * 7 + [True]
    assert not eps[0].truncations.any()
    assert eps[1].truncations.tolist() == [False] * 4 + [True]
    assert not eps[1].terminations.any()


def test_the_episodes_cut_by_the_window_are_kept_but_not_complete(aligned):
    eps = by_episode(aligned)
    assert [eps[e].complete for e in (0, 1, 2)] == [False, True, False]
    assert eps[2].truncations[-1] and not eps[2].terminations.any()  # the bag ends inside it
    only = align(*scenario(), complete_only=True)
    assert [e.episode for e in only.episodes] == [1]


def test_rewards_are_the_simulation_steps_after_each_tick(aligned):
    eps = by_episode(aligned)
    assert eps[0].rewards.tolist() == [float(k) for k in range(2, 10)]
    assert eps[2].rewards.tolist() == [float(k) for k in range(15, 20)]


def test_actions_are_the_commands_executed_fallback_and_watchdog_included(aligned):
    eps = by_episode(aligned)
    a = eps[0].actions  # ticks 2..9
    np.testing.assert_allclose(a[3], a[2])  # tick 5 holds tick 4's command
    np.testing.assert_allclose(a[4], 0.0)  # tick 6: the watchdog's safe command
    np.testing.assert_allclose(a[2], np.array([4, -4, 0.5], np.float32) / 100)
    assert a.dtype == np.float32


def test_observation_is_the_one_behind_the_command(aligned):
    eps = by_episode(aligned)
    seqs = eps[0].infos["observation_seq"]  # ticks 2..9, then the final observation
    # fresh tick k: observation k - 1; tick 5 (hold) and 6 (watchdog): still tick 4's observation 3
    assert seqs.tolist() == [1, 2, 3, 3, 3, 6, 7, 8, 9]
    np.testing.assert_allclose(eps[0].observations[:, 0], seqs)


def test_an_episode_start_before_its_first_action_sees_the_episodes_first_observation(aligned):
    eps = by_episode(aligned)
    # tick 10 holds episode 0's action on observation 8: the step observes episode 1's first, 10;
    # ticks 15 and 16 hold episode 1's: both observe episode 2's first, 15 (not 16: no step back after)
    assert eps[1].infos["observation_seq"].tolist() == [10, 10, 11, 12, 13, 14]
    assert eps[2].infos["observation_seq"].tolist() == [15, 15, 16, 17, 18, 19]
    assert set(eps[1].infos["episode"].tolist()) == {1}


def test_step_infos_follow_gymnasiums_convention_row_zero_is_the_reset(aligned):
    info = by_episode(aligned)[0].infos
    assert all(len(v) == 9 for v in info.values())
    assert (
        info["tick_kind"].tolist()
        == ["reset", "fresh", "fresh", "fresh", "fallback", "watchdog"] + ["fresh"] * 3
    )
    assert info["worker_id"].tolist() == [-1, 0, 1, 0, 0, 0, 1, 0, 1]  # ticks 5, 6 hold tick 4's worker
    assert math.isnan(info["inference_start"][0]) and info["policy_version"][0] == ""
    np.testing.assert_allclose(info["inference_end"][1:4], [T0 + k * P - 0.001 for k in (2, 3, 4)])
    np.testing.assert_allclose(info["inference_start"][1], T0 + 2 * P - 0.006)
    np.testing.assert_allclose(info["action_age"][1:], 0.011)
    assert by_episode(aligned)[1].infos["policy_version"].tolist() == ["", "v1", "v1", "v2", "v2", "v2"]


def test_a_fresh_tick_whose_action_is_not_in_the_bag_is_counted():
    ticks, observations, actions, rewards = scenario()
    result = align(ticks, observations, [a for a in actions if a.observation_seq != 3], rewards)
    assert result.missing_actions == 1
    assert by_episode(result)[0].infos["policy_version"][3] == ""


def test_a_lost_observation_is_counted_and_the_newest_at_the_tick_stands_in():
    ticks, observations, actions, rewards = scenario()
    result = align(ticks, [o for o in observations if o.seq != 3], actions, rewards)
    assert result.missing_observations == 3  # ticks 4, 5 and 6 depend on it
    assert by_episode(result)[0].infos["observation_seq"].tolist()[2:5] == [4, 5, 6]


def test_missing_tick_indices_inside_the_window_are_counted():
    ticks, *rest = scenario()
    assert align([t for t in ticks if t.index not in (7, 8)], *rest).tick_gaps == 2


def test_no_tick_in_the_window_is_an_error():
    ticks, *rest = scenario(window_from=99)
    with pytest.raises(DatasetError, match="measurement window"):
        align(ticks, *rest)


def test_episode_end_fills_a_terminal_step_missing_from_the_rewards():
    ticks, observations, actions, rewards = scenario()
    lost = [r for r in rewards if not r.terminated]
    ends = [r for r in rewards if r.terminated or r.truncated]
    merged = merge_episode_ends(lost, ends)
    assert len(merged) == len(rewards)  # the truncated end is in both: counted once
    assert by_episode(align(ticks, observations, actions, lost, ends))[0].terminations[-1]


def test_a_new_episodes_step_before_its_first_tick_is_credited_to_that_tick():
    stamps = [0.0, 0.01, 0.02]
    rewards = [
        RewardRecord(0.001, 0, 1, 1.0, False, False),
        RewardRecord(0.005, 0, 2, 2.0, True, False),  # terminal inside tick 0's interval
        RewardRecord(0.008, 1, 1, 4.0, False, False),  # episode 1's first step, before tick 1
        RewardRecord(0.015, 1, 2, 8.0, False, False),
        RewardRecord(0.035, 1, 3, 16.0, False, False),  # after the window's end
    ]
    episodes = tick_episodes(stamps, rewards)
    assert episodes == [0, 1, 1]
    reward, terminated, _ = credit_rewards(stamps, episodes, rewards, end=0.03)
    assert reward.tolist() == [3.0, 12.0, 0.0]
    assert terminated.tolist() == [True, False, False]


# ---------------------------------------------------------------------------------------------------
# A bag written with rosbags, through the command line, loaded with minari

PARAMS_YAML = """\
/**:
  ros__parameters:
    task: Hopper-v5
    num_workers: 2
"""


def stamp(store, seconds):
    ns = round(seconds * 1e9)
    return store.types["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)


def header(store, seconds):
    return store.types["std_msgs/msg/Header"](stamp=stamp(store, seconds), frame_id="")


def slot_field(store, msg, name) -> dict:
    """{name: zero time} where the store's definition of `msg` has that field (bags before 85e36c2 lack it)."""
    fields = [f[0] for f in store.fielddefs[f"rt_rl_interfaces/msg/{msg}"][1]]
    return {name: stamp(store, 0.0)} if name in fields else {}


def tag_field(store, msg) -> dict:
    """{auth_tag: zeros} where the store's definition of `msg` has it (bags before rt_rl.core.auth lack it)."""
    fields = [f[0] for f in store.fielddefs[f"rt_rl_interfaces/msg/{msg}"][1]]
    return {"auth_tag": np.zeros(16, dtype=np.uint8)} if "auth_tag" in fields else {}


def write_bag(path, store, skip=(), offset=0.0):
    """The scenario as the recorder writes it (log time = the message's own time + 0.5 ms)."""
    t = store.types
    ticks, observations, actions, rewards = scenario()
    messages = []  # (time, topic, type, message)
    for r in ticks:
        msg = t["rt_rl_interfaces/msg/Actuation"](
            header=header(store, r.stamp + offset), tick=r.index, kind=r.kind, in_window=r.in_window,
            command=r.command, action_age=r.action_age, worker_id=r.worker_id,
            observation_seq=r.observation_seq, observation_stamp=stamp(store, 0.0), episode=-1,
        )  # fmt: skip
        messages.append((r.stamp, "/rt_rl/actuation", "rt_rl_interfaces/msg/Actuation", msg))
    for o in observations:
        msg = t["rt_rl_interfaces/msg/Observation"](
            header=header(store, o.stamp + offset), seq=o.seq, episode=o.episode, data=o.data,
            **slot_field(store, "Observation", "slot_start"), **tag_field(store, "Observation"),
        )  # fmt: skip
        messages.append((o.stamp, "/rt_rl/observation", "rt_rl_interfaces/msg/Observation", msg))
    for a in actions:
        msg = t["rt_rl_interfaces/msg/Action"](
            header=header(store, a.stamp + offset), observation_stamp=stamp(store, a.stamp - 0.01),
            input_stamp=stamp(store, a.stamp - 0.01), observation_seq=a.observation_seq, episode=0, worker_id=a.worker_id,
            inference_start=stamp(store, a.inference_start + offset),
            inference_end=stamp(store, a.inference_end + offset), inference_time=0.005, turnaround=0.0003,
            policy_version=a.policy_version, schedule_revision=1, data=np.zeros(3),
            **slot_field(store, "Action", "slot_end"), **tag_field(store, "Action"),
        )  # fmt: skip
        messages.append((a.stamp, "/rt_rl/action", "rt_rl_interfaces/msg/Action", msg))
    for r in rewards:
        msg = t["rt_rl_interfaces/msg/Reward"](
            header=header(store, r.stamp + offset), episode=r.episode, step=r.step, reward=r.reward,
            terminated=r.terminated, truncated=r.truncated, episode_return=0.0, **tag_field(store, "Reward"),
        )  # fmt: skip
        messages.append((r.stamp, "/rt_rl/reward", "rt_rl_interfaces/msg/Reward", msg))
        if r.terminated or r.truncated:
            messages.append((r.stamp, "/rt_rl/episode_end", "rt_rl_interfaces/msg/Reward", msg))
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    conns = {}
    for seconds, topic, msgtype, msg in sorted(messages, key=lambda m: m[0]):
        if topic in skip:
            continue
        if topic not in conns:
            conns[topic] = writer.add_connection(topic, msgtype, typestore=store)
        log_ns = round((seconds + offset + 0.0005) * 1e9)
        writer.write(conns[topic], log_ns, store.serialize_cdr(msg, msgtype))
    writer.close()
    (path / "params.yaml").write_text(PARAMS_YAML)
    return path


@pytest.fixture(scope="module")
def store():
    return rt_rl_typestore()


def test_dataset_of_two_bags_loads_with_minari(tmp_path, store, monkeypatch, capsys):
    import minari

    bags = [write_bag(tmp_path / "bag_a", store), write_bag(tmp_path / "bag_b", store, offset=60.0)]
    out = tmp_path / "datasets"
    args = ["dataset", *map(str, bags), "--out", str(out), "--name", "rt_rl/test-v0", "--no-progress"]
    assert cli.main(args) == 0
    assert "36 steps, 6 episodes" in capsys.readouterr().out
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(out))
    dataset = minari.load_dataset("rt_rl/test-v0")
    assert dataset.total_steps == 2 * 18  # the window's ticks of both bags
    assert dataset.total_episodes == 6
    assert dataset.storage.metadata["data_format"] == "arrow"
    assert dataset.action_space.shape == (3,) and dataset.action_space.high.tolist() == [1.0] * 3
    assert dataset.observation_space.shape == (4,)
    episodes = list(dataset.iterate_episodes())
    assert [len(e) for e in episodes] == [8, 5, 5] * 2
    first = episodes[0]
    for key in ("action_age", "worker_id", "tick_kind", "inference_start", "inference_end", "policy_version"):
        assert len(first.infos[key]) == len(first) + 1, key
    assert first.infos["tick_kind"][5] == "watchdog"
    assert first.infos["worker_id"].tolist() == [-1, 0, 1, 0, 0, 0, 1, 0, 1]
    assert first.terminations[-1] and episodes[1].truncations[-1]
    np.testing.assert_allclose(first.rewards, np.arange(2, 10))
    np.testing.assert_allclose(first.infos["tick_stamp"][1], T0 + 2 * P, atol=1e-6)
    np.testing.assert_allclose(episodes[3].infos["tick_stamp"][1], T0 + 60 + 2 * P, atol=1e-6)
    assert dataset.storage.metadata["rt_rl"]["window_ticks"] == 36


def assert_one_line_error(capsys, path) -> str:
    return conftest.assert_one_line_error(capsys, path, "rt-rl dataset")


def test_a_directory_that_is_not_a_bag_is_one_line_error_naming_it(tmp_path, capsys):
    not_bag = tmp_path / "notes"
    not_bag.mkdir()
    assert cli.main(["dataset", str(not_bag), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "not a rosbag2 bag" in assert_one_line_error(capsys, not_bag)


def test_a_damaged_bag_is_one_line_error_naming_it(tmp_path, capsys):
    bag = tmp_path / "bag_bad"
    bag.mkdir()
    (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 9}\n")
    assert cli.main(["dataset", str(bag), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert_one_line_error(capsys, bag)


def test_a_bag_without_the_actuation_topic_is_one_line_error_naming_it(tmp_path, store, capsys):
    good = write_bag(tmp_path / "bag_good", store)
    bag = write_bag(tmp_path / "bag_old", store, skip=("/rt_rl/actuation",))
    out = tmp_path / "out"
    assert cli.main(["dataset", str(good), str(bag), "--out", str(out), "--no-progress"]) == 2
    assert "/rt_rl/actuation" in assert_one_line_error(capsys, bag)
    assert not (out / "rt_rl").exists()  # nothing written when one bag is bad


def test_an_existing_dataset_is_not_overwritten(tmp_path, store, capsys):
    bag = write_bag(tmp_path / "bag", store)
    args = ["dataset", str(bag), "--out", str(tmp_path / "out"), "--no-progress"]
    assert cli.main(args) == 0
    assert "rt_rl/hopper-v0" in capsys.readouterr().out  # the default name: the task's
    assert cli.main(args) == 2
    assert "exists already" in assert_one_line_error(capsys, tmp_path / "out" / "rt_rl" / "hopper-v0")


def test_a_malformed_dataset_name_is_one_line_error(tmp_path, store, capsys):
    bag = write_bag(tmp_path / "bag", store)
    args = ["dataset", str(bag), "--out", str(tmp_path / "out"), "--name", "no version", "--no-progress"]
    assert cli.main(args) == 2
    assert "no version" in capsys.readouterr().err


def test_a_bag_recorded_before_the_slot_fields_converts_with_its_own_definitions(tmp_path, store, capsys):
    from rosbags.typesys import get_types_from_msg

    old = {}  # Observation and Action as recorded before slot_start / slot_end existed
    for name in ("Observation", "Action"):
        text = (Path(sys.prefix) / "share/rt_rl_interfaces/msg" / f"{name}.msg").read_text()
        text = "\n".join(
            line for line in text.splitlines() if not line.startswith("builtin_interfaces/Time slot_")
        )
        old.update(get_types_from_msg(text, f"rt_rl_interfaces/msg/{name}"))
    old_store = rt_rl_typestore(recorded=old)
    assert not slot_field(old_store, "Observation", "slot_start") and slot_field(
        store, "Observation", "slot_start"
    )
    bag = write_bag(tmp_path / "bag_old", old_store)
    assert cli.main(["dataset", str(bag), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert "18 steps, 3 episodes" in capsys.readouterr().out
