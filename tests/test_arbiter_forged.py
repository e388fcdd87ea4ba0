"""Forged or malformed inputs: the arbiter core refuses (and counts by reason) any action that cannot be
an output of this graph's workers, and no forged stamp or sequence can lock or switch off the arbiter.
The ingest's joint picker refuses non-finite or mismatched joint states."""

import math

import numpy as np
import pytest

from rt_rl.core.arbiter import (
    IMPLAUSIBLE,
    MAX_SEQ,
    ArbiterConfig,
    ArbiterCore,
    Rejection,
    TickKind,
    TimedAction,
)
from rt_rl.core.observation import JointPicker


def act(seq, stamp, worker=0, data=(0.1, 0.1), **kw):
    return TimedAction(np.asarray(data, dtype=float), stamp, seq, worker, **kw)


def core(**kw):
    cfg = dict(action_dim=2, lower=[-1, -1], upper=[1, 1], max_action_age=0.1, pool_size=2)
    cfg.update(kw)
    return ArbiterCore(ArbiterConfig(**cfg))


def running(**kw):
    """A core that has actuated worker 0's action of seq 100 at t = 10.0."""
    a = core(**kw)
    assert a.offer(act(100, 9.99), 10.0) is None
    assert a.tick(10.0).kind is TickKind.FRESH
    return a


def test_worker_not_in_schedule_is_refused_as_unknown_worker():
    a = running()
    a.set_workers([0, 1])
    assert a.offer(act(101, 10.005, worker=7), 10.01) is Rejection.UNKNOWN_WORKER
    assert a.rejected[Rejection.UNKNOWN_WORKER] == 1
    assert a.tick(10.01).kind is TickKind.FALLBACK


def test_worker_dropped_from_schedule_is_refused():
    a = running()
    a.set_workers([1])
    assert a.offer(act(101, 10.005, worker=0), 10.01) is Rejection.UNKNOWN_WORKER
    assert a.offer(act(101, 10.005, worker=1), 10.01) is None


def test_before_schedule_only_pool_ids_are_accepted():
    a = core(pool_size=2)
    assert a.offer(act(1, 9.99, worker=2), 10.0) is Rejection.UNKNOWN_WORKER
    assert a.offer(act(1, 9.99, worker=1), 10.0) is None


def test_seq_near_2_pow_63_is_refused_and_real_actions_continue():
    a = running()
    assert a.offer(act(2**63 - 5, 10.005, worker=1), 10.01) is Rejection.SEQ_JUMP
    assert a.offer(act(101, 10.005, worker=1), 10.01) is None
    d = a.tick(10.01)
    assert d.kind is TickKind.FRESH and d.action.observation_seq == 101


def test_huge_or_negative_seq_is_refused_even_first():
    a = core()
    assert a.offer(act(MAX_SEQ, 9.99), 10.0) is Rejection.SEQ_JUMP
    assert a.offer(act(-1, 9.99), 10.0) is Rejection.SEQ_JUMP
    assert a.rejected[Rejection.SEQ_JUMP] == 2


def test_seq_far_ahead_of_last_actuated_is_refused():
    a = running(max_seq_jump=10_000)
    assert a.offer(act(100 + 10_001, 10.005, worker=1), 10.01) is Rejection.SEQ_JUMP
    assert a.offer(act(100 + 10_000, 10.005, worker=1), 10.01) is None


def test_bad_order_reference_expires_with_the_held_command():
    """A plausible-looking action that gets through cannot lock out the real ones for longer than
    max_action_age: order is judged only against a held command that is still current."""
    a = running()
    assert a.offer(act(9_000, 10.005, worker=1), 10.006) is None  # accepted: within every bound
    assert a.tick(10.01).kind is TickKind.FRESH
    assert a.offer(act(102, 10.02, worker=0), 10.03) is Rejection.OUT_OF_ORDER
    # once the held observation is older than max_action_age (0.1 s), the real sequence is accepted
    assert a.tick(10.2).kind is TickKind.WATCHDOG
    assert a.offer(act(120, 10.19, worker=0), 10.2) is None
    assert a.tick(10.21).kind is TickKind.FRESH


def test_stamp_in_the_future_is_refused():
    a = running(future_tolerance=0.05)
    assert a.offer(act(101, 20.0, worker=1), 10.01) is Rejection.FUTURE_STAMP
    assert a.offer(act(101, 10.07, worker=1), 10.01) is Rejection.FUTURE_STAMP
    assert a.offer(act(101, 10.05, worker=1), 10.01) is None  # within the tolerance (clock skew)


def test_input_stamp_in_the_future_or_not_finite_is_refused():
    a = running()
    assert a.offer(act(101, 10.0, worker=1, input_stamp=30.0), 10.01) is Rejection.FUTURE_STAMP
    assert a.offer(act(101, math.inf, worker=1), 10.01) is Rejection.FUTURE_STAMP
    assert a.offer(act(101, -math.inf, worker=1), 10.01) is Rejection.FUTURE_STAMP
    assert a.offer(act(101, math.nan, worker=1), 10.01) is Rejection.FUTURE_STAMP
    assert a.rejected[Rejection.FUTURE_STAMP] == 4


def test_forged_future_stamp_cannot_switch_the_watchdog_off():
    a = running()
    a.offer(act(101, 1e9, worker=1), 10.01)  # refused: it would hold the command "fresh" for decades
    assert a.tick(10.05).kind is TickKind.FALLBACK
    assert a.tick(10.2).kind is TickKind.WATCHDOG
    # the most a stamp can extend the held command is future_tolerance
    b = running(future_tolerance=0.05)
    assert b.offer(act(101, 10.06, worker=1), 10.015) is None
    assert b.tick(10.02).kind is TickKind.FRESH
    assert b.tick(10.06 + 0.1 + 1e-6).kind is TickKind.WATCHDOG


def test_episode_more_than_one_ahead_is_refused_and_not_believed():
    a = running()
    a.set_episode(3)
    assert a.offer(act(101, 10.005, worker=1, episode=5), 10.01) is Rejection.EPISODE_JUMP
    assert a.episode == 3
    assert a.offer(act(101, 10.005, worker=1, episode=4), 10.01) is None
    assert a.episode == 4


def test_forged_action_cannot_end_the_episode():
    """An implausible action is refused before it may start the next episode."""
    a = running()
    a.set_workers([0, 1])
    a.set_episode(3)
    assert a.offer(act(101, 10.005, worker=9, episode=4), 10.01) is Rejection.UNKNOWN_WORKER
    assert a.episode == 3


@pytest.mark.parametrize("field", ["inference_time", "turnaround"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -0.01])
def test_non_finite_or_negative_inference_timing_is_refused(field, value):
    a = running()
    assert a.offer(act(101, 10.005, worker=1, **{field: value}), 10.01) is Rejection.BAD_TIMING
    assert a.rejected[Rejection.BAD_TIMING] == 1


def test_nan_data_still_refused_as_not_finite():
    a = running()
    assert a.offer(act(101, 10.005, worker=1, data=(math.nan, 0.0)), 10.01) is Rejection.NOT_FINITE


def test_heartbeat_from_outside_the_pool_or_with_bad_timing_is_refused():
    a = core(pool_size=3)
    assert a.check_heartbeat(2, 0.01, 0.001) is None
    assert a.check_heartbeat(3, 0.01, 0.001) is Rejection.UNKNOWN_WORKER
    assert a.check_heartbeat(1, math.nan, 0.001) is Rejection.BAD_TIMING
    assert a.check_heartbeat(1, 0.01, -1.0) is Rejection.BAD_TIMING
    assert a.rejected[Rejection.UNKNOWN_WORKER] == 1 and a.rejected[Rejection.BAD_TIMING] == 2


def test_forgery_reasons_are_implausible_and_ordinary_ones_are_not():
    assert {Rejection.UNKNOWN_WORKER, Rejection.SEQ_JUMP, Rejection.FUTURE_STAMP} <= IMPLAUSIBLE
    assert {Rejection.EPISODE_JUMP, Rejection.BAD_TIMING} <= IMPLAUSIBLE
    assert not {Rejection.STALE, Rejection.OUT_OF_ORDER, Rejection.DUPLICATE} & IMPLAUSIBLE


def test_stream_of_forgeries_never_displaces_real_actions():
    a = core()
    a.set_workers([0, 1])
    fresh = 0
    for k in range(200):
        now = 10.0 + 0.01 * k
        a.offer(act(2**63 - 1, now, worker=1), now)
        a.offer(act(k, now + 10.0, worker=0), now)
        a.offer(act(k, now - 0.001, worker=99), now)
        a.offer(act(k, now - 0.001, worker=k % 2, data=(math.nan, 1.0)), now)
        a.offer(act(k, now - 0.002, worker=k % 2), now)
        d = a.tick(now)
        fresh += d.kind is TickKind.FRESH
        if d.action is not None:
            assert d.action.observation_seq == k and d.action.worker_id == k % 2
    assert fresh == 200
    r = a.rejected
    assert r[Rejection.SEQ_JUMP] == r[Rejection.FUTURE_STAMP] == r[Rejection.UNKNOWN_WORKER] == 200
    assert r[Rejection.NOT_FINITE] == 200


def test_joint_state_with_nan_position_or_velocity_is_refused():
    pick = JointPicker(["a", "b"])
    with pytest.raises(ValueError, match="not finite"):
        pick(["a", "b"], [0.0, math.nan], [0.0, 0.0])
    with pytest.raises(ValueError, match="not finite"):
        pick(["b", "a"], [0.0, 0.0], [math.inf, 0.0])
    pos, vel = pick(["b", "a", "x"], [1.0, 2.0, math.nan], [3.0, 4.0, math.nan])  # unused joint: fine
    np.testing.assert_array_equal(pos, [2.0, 1.0])
    np.testing.assert_array_equal(vel, [4.0, 3.0])


def test_joint_state_with_mismatched_lengths_is_refused():
    pick = JointPicker(["a", "b"])
    with pytest.raises(ValueError, match="one position and one velocity"):
        pick(["a", "b"], [0.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="one position and one velocity"):
        pick(["a", "b"], [0.0, 0.0], [])
