"""Superseded actions, episode boundaries in the arbiter, the JointState picker and the outside probe."""

import numpy as np
import pytest

from rt_rl.bench.probe import inter_arrival_ms
from rt_rl.core.arbiter import ArbiterConfig, ArbiterCore, Rejection, TickKind, TimedAction, episode_after
from rt_rl.core.measurement import percentiles_ms
from rt_rl.core.observation import JointPicker, reorder_joint_state


def action(value, stamp, seq, worker=0, episode=-1):
    return TimedAction(np.full(2, value, dtype=float), stamp, seq, worker, episode=episode)


def core():
    return ArbiterCore(ArbiterConfig(action_dim=2, max_action_age=0.1))


def test_action_replaced_by_fresher_observation_is_counted_superseded():
    a = core()
    assert a.offer(action(0.1, 1.00, 1), 1.01) is None
    assert a.offer(action(0.2, 1.01, 2, worker=1), 1.02) is None
    assert a.superseded == 1
    d = a.tick(1.03)
    assert d.kind is TickKind.FRESH and d.action.observation_seq == 2
    np.testing.assert_allclose(d.command, [0.2, 0.2])


def test_older_action_arriving_after_fresher_one_is_superseded_and_never_actuated():
    a = core()
    a.offer(action(0.2, 1.01, 2, worker=1), 1.02)
    assert a.offer(action(0.1, 1.00, 1), 1.025) is None  # no tick between: not out of order yet
    assert a.superseded == 1
    assert a.tick(1.03).action.observation_seq == 2
    assert a.tick(1.04).kind is TickKind.FALLBACK
    np.testing.assert_allclose(a.last_command, [0.2, 0.2])
    assert sum(a.rejected.values()) == 0


def test_action_of_an_ended_episode_is_rejected_on_offer():
    a = core()
    a.set_episode(3)
    assert a.offer(action(0.1, 1.0, 1, episode=2), 1.0) is Rejection.ENDED_EPISODE
    assert a.rejected[Rejection.ENDED_EPISODE] == 1
    a.set_episode(1)  # episodes never go back
    assert a.offer(action(0.1, 1.0, 1, episode=2), 1.0) is Rejection.ENDED_EPISODE
    assert a.offer(action(0.3, 1.0, 1, episode=3), 1.0) is None
    assert a.tick(1.01).kind is TickKind.FRESH


def test_pending_action_of_old_episode_is_dropped_at_the_tick():
    a = core()
    a.set_episode(1)
    a.offer(action(0.5, 1.00, 1, episode=1), 1.00)
    assert a.tick(1.01).kind is TickKind.FRESH
    assert a.offer(action(0.9, 1.02, 2, episode=1), 1.02) is None
    a.set_episode(2)  # the episode ended while the action waited for its tick
    d = a.tick(1.03)
    assert d.kind is TickKind.FALLBACK and d.action is None
    assert a.rejected[Rejection.ENDED_EPISODE] == 1
    np.testing.assert_allclose(d.command, [0.0, 0.0])  # a new episode starts at zero, not the old action


def test_unknown_episode_is_never_rejected_for_episode():
    a = core()
    a.set_episode(5)
    assert a.offer(action(0.4, 1.0, 1, episode=-1), 1.0) is None
    assert a.tick(1.01).kind is TickKind.FRESH
    assert a.rejected[Rejection.ENDED_EPISODE] == 0


@pytest.mark.parametrize("episode", [0, 7])
def test_episode_after_reward(episode):
    assert episode_after(episode, True) == episode + 1
    assert episode_after(episode, False) == episode


WANTED = ["hip", "knee", "ankle"]


def test_joint_picker_matches_reorder_for_shuffled_and_changing_orders():
    rng = np.random.default_rng(0)
    pick = JointPicker(WANTED)
    names = [*WANTED, "gripper", "wrist"]
    for _ in range(20):  # the name order changes between calls
        order = [names[i] for i in rng.permutation(len(names))]
        pos, vel = rng.normal(size=len(names)).tolist(), rng.normal(size=len(names)).tolist()
        for got, want in zip(
            pick(order, pos, vel), reorder_joint_state(order, pos, vel, WANTED), strict=True
        ):
            np.testing.assert_array_equal(got, want)


def test_joint_picker_names_the_missing_joint():
    pick = JointPicker(WANTED)
    good = (["ankle", "knee", "hip"], [3.0, 2.0, 1.0], [30.0, 20.0, 10.0])
    np.testing.assert_array_equal(pick(*good)[0], [1.0, 2.0, 3.0])
    with pytest.raises(KeyError, match="ankle"):
        pick(["hip", "knee", "toe"], [0.0] * 3, [0.0] * 3)
    np.testing.assert_array_equal(pick(*good)[1], [10.0, 20.0, 30.0])  # still works afterwards
    with pytest.raises(ValueError, match="velocity"):
        pick(["hip", "knee", "ankle"], [0.0] * 3, [])


def test_inter_arrival_counts_window_messages_and_uses_monotonic_gaps():
    wall = [99.0, 100.0, 100.5, 101.0, 102.0, 103.0]
    mono = [5.0, 7.0, 7.01, 7.03, 7.06, 8.0]  # different gaps from the wall stamps
    got = inter_arrival_ms(wall, mono, start_wall=100.0, end_wall=102.0)
    gaps = np.diff(mono[1:5])
    assert got["messages"] == 4
    for key, ref in percentiles_ms(gaps).items():
        assert got[key] == ref
    assert got["max"] == pytest.approx(30.0) and got["p50"] == pytest.approx(np.median(gaps) * 1e3)
    assert got["rate_hz"] == pytest.approx(3 / (7.06 - 7.0), abs=1e-3)
    empty = inter_arrival_ms(wall, mono, start_wall=200.0, end_wall=300.0)
    assert empty["messages"] == 0 and empty["p50"] is None and empty["rate_hz"] is None


def test_a_new_episode_holds_zero_until_its_first_fresh_action():
    a = core()
    a.set_episode(0)
    a.offer(action(0.7, 1.00, 1, episode=0), 1.005)
    np.testing.assert_allclose(a.tick(1.01).command, [0.7, 0.7])
    np.testing.assert_allclose(a.tick(1.02).command, [0.7, 0.7])  # held within the episode
    a.set_episode(1)  # the robot was reset
    d = a.tick(1.03)
    assert d.kind is TickKind.FALLBACK
    np.testing.assert_allclose(d.command, [0.0, 0.0])
    a.offer(action(0.3, 1.035, 2, episode=1), 1.04)
    np.testing.assert_allclose(a.tick(1.05).command, [0.3, 0.3])
