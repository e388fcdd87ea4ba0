"""The arbiter's decision: freshest valid action, rejections, fallbacks, watchdog, clamping."""

import math

import numpy as np
import pytest

from rt_rl.core.arbiter import ArbiterConfig, ArbiterCore, Fallback, Rejection, TickKind, TimedAction


def action(data, stamp, seq, worker=0):
    return TimedAction(np.asarray(data, dtype=float), stamp, seq, worker)


def slotted(data, stamp, seq, slot_end, worker=0):
    return TimedAction(np.asarray(data, dtype=float), stamp, seq, worker, slot_end=slot_end)


def core(**kw):
    cfg = dict(action_dim=2, lower=[-1, -1], upper=[1, 1], max_action_age=0.1)
    cfg.update(kw)
    return ArbiterCore(ArbiterConfig(**cfg))


def test_freshest_observation_wins_not_latest_arrival():
    a = core()
    a.offer(action([0.1, 0.1], stamp=10.02, seq=2, worker=1), now=10.05)
    a.offer(action([0.2, 0.2], stamp=10.01, seq=1, worker=0), now=10.051)  # older obs, arrived later
    d = a.tick(10.06)
    assert d.kind is TickKind.FRESH and d.action.worker_id == 1
    assert d.action_age == pytest.approx(0.04)
    np.testing.assert_allclose(d.command, [0.1, 0.1])


def test_each_action_actuated_once_then_fallback():
    a = core(fallback="hold")
    a.offer(action([0.5, -0.5], 1.0, 1), 1.0)
    assert a.tick(1.01).kind is TickKind.FRESH
    d = a.tick(1.02)
    assert d.kind is TickKind.FALLBACK
    np.testing.assert_allclose(d.command, [0.5, -0.5])  # held


@pytest.mark.parametrize("fallback,expected", [("zero", [0, 0]), ("default", [0.3, -0.2])])
def test_zero_and_default_fallbacks(fallback, expected):
    a = core(fallback=fallback, default_command=[0.3, -0.2])
    a.offer(action([0.5, 0.5], 1.0, 1), 1.0)
    a.tick(1.01)
    np.testing.assert_allclose(a.tick(1.02).command, expected)


@pytest.mark.parametrize(
    "data,reason",
    [
        ([0.1], Rejection.SIZE),
        ([0.1, 0.2, 0.3], Rejection.SIZE),
        ([math.nan, 0], Rejection.NOT_FINITE),
        ([math.inf, 0], Rejection.NOT_FINITE),
    ],
)
def test_malformed_actions_rejected(data, reason):
    a = core()
    assert a.offer(action(data, 1.0, 1), 1.0) is reason
    assert a.rejected[reason] == 1
    assert a.tick(1.01).kind is TickKind.WATCHDOG  # nothing valid ever came: safe command


def test_out_of_order_and_stale_rejected():
    a = core()
    a.offer(action([0, 0], 1.0, 5), 1.0)
    a.tick(1.01)
    assert a.offer(action([0, 0], 0.99, 4), 1.02) is Rejection.OUT_OF_ORDER
    assert a.offer(action([0, 0], 1.0, 5), 1.02) is Rejection.DUPLICATE  # same worker, same observation
    assert a.offer(action([0, 0], 1.0, 5, worker=1), 1.02) is None  # another worker's take on it is new
    assert a.offer(action([0, 0], 1.5, 6), 1.7) is Rejection.STALE


def test_action_that_goes_stale_before_its_tick_is_not_actuated():
    a = core()
    assert a.offer(action([0.2, 0.2], 1.0, 1), 1.05) is None
    d = a.tick(1.2)
    assert d.kind is TickKind.WATCHDOG
    assert a.rejected[Rejection.STALE] == 1


def test_watchdog_goes_to_safe_command_when_hold_gets_too_old():
    a = core(fallback="hold", safe_command=[0.0, 0.1])
    a.offer(action([0.9, 0.9], 1.0, 1), 1.0)
    a.tick(1.01)
    assert a.tick(1.05).kind is TickKind.FALLBACK
    d = a.tick(1.11)
    assert d.kind is TickKind.WATCHDOG
    np.testing.assert_allclose(d.command, [0.0, 0.1])


def test_commands_are_clamped():
    a = core(lower=[-0.5, 0.0], upper=[0.5, 1.0])
    a.offer(action([3.0, -3.0], 1.0, 1), 1.0)
    np.testing.assert_allclose(a.tick(1.01).command, [0.5, 0.0])


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(action_dim=0), "action_dim"),
        (dict(lower=[0, 0, 0]), "lower"),
        (dict(max_action_age=0), "max_action_age"),
        (dict(fallback="brake"), "brake"),
        (dict(lower=[1, 1], upper=[0, 0]), "lower limits"),
    ],
)
def test_bad_config_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        core(**kw)


def test_fallback_enum_accepts_strings():
    assert ArbiterConfig(action_dim=1, fallback="zero").fallback is Fallback.ZERO


def test_early_finisher_waits_for_its_slot_tick():
    c = core()
    # variable inference times: the slot planned to end at 1.019 finished early, beside the one due at 1.009
    c.offer(slotted([0.1, 0.1], 0.990, 1, slot_end=1.009), now=1.004)
    c.offer(slotted([0.2, 0.2], 1.000, 2, slot_end=1.019, worker=1), now=1.006)
    first = c.tick(1.010)
    assert first.kind is TickKind.FRESH and first.action.observation_seq == 1
    second = c.tick(1.020)
    assert (
        second.kind is TickKind.FRESH and second.action.observation_seq == 2
    )  # its own tick, not superseded
    assert c.tick(1.030).kind is TickKind.FALLBACK and c.superseded == 0


def test_late_slot_action_is_superseded_by_the_next_slots_when_both_are_due():
    c = core()
    assert c.tick(1.010).kind is not TickKind.FRESH  # nothing yet (before any action: the safe command)
    c.offer(slotted([0.1, 0.1], 0.990, 1, slot_end=1.009), now=1.0105)  # missed its tick at 1.010
    c.offer(slotted([0.2, 0.2], 1.000, 2, slot_end=1.019, worker=1), now=1.018)
    assert c.tick(1.020).action.observation_seq == 2 and c.superseded == 1


def test_has_due_ignores_actions_waiting_for_their_slot():
    c = core()
    c.offer(slotted([0.1, 0.1], 0.990, 1, slot_end=1.019), now=1.004)
    assert not c.has_due(1.010) and c.has_due(1.020)


def test_without_holding_the_newest_wins_and_the_other_is_superseded():
    c = core()
    c.offer(action([0.1, 0.1], 1.000, 1), now=1.005)
    c.offer(action([0.2, 0.2], 1.010, 2), now=1.015)
    assert c.tick(1.020).action.observation_seq == 2 and c.superseded == 1
    assert c.tick(1.030).kind is TickKind.FALLBACK


def test_has_due_until_the_tick_takes_the_action():
    a = core()
    assert not a.has_due(10.005)
    a.offer(action([0.1, 0.1], stamp=10.0, seq=1), now=10.005)
    assert a.has_due(10.005)
    a.tick(10.01)
    assert not a.has_due(10.01)


def test_actuation_delay_holds_each_action_until_its_observation_is_that_old():
    a = core(actuation_delay=0.02)
    a.offer(action([0.1, 0.1], stamp=1.000, seq=1), now=1.006)
    a.offer(action([0.2, 0.2], stamp=1.010, seq=2, worker=1), now=1.016)  # fresher, not due yet
    assert a.tick(1.015).kind is not TickKind.FRESH  # neither is 20 ms old
    d = a.tick(1.0201)
    assert d.kind is TickKind.FRESH and d.action.observation_seq == 1  # due; the fresher one waits
    d = a.tick(1.0301)
    assert d.kind is TickKind.FRESH and d.action.observation_seq == 2
    assert a.superseded == 0


def test_actuation_delay_takes_the_freshest_due_action_and_counts_the_older_as_superseded():
    a = core(actuation_delay=0.02)
    for seq in range(3):
        a.offer(action([0.1 * seq, 0.0], stamp=1.0 + 0.005 * seq, seq=seq, worker=seq), now=1.011)
    d = a.tick(1.0301)
    assert d.action.observation_seq == 2 and a.superseded == 2


def test_actuation_delay_must_be_shorter_than_the_age_limit():
    with pytest.raises(ValueError, match="actuation_delay"):
        core(actuation_delay=0.1)


def test_action_whose_slot_never_comes_in_time_expires_as_stale():
    c = core()  # max_action_age 0.1 s
    c.offer(slotted([0.1, 0.1], 1.000, 1, slot_end=5.0), now=1.005)  # e.g. a worker's clock far ahead
    assert c.tick(1.050).kind is not TickKind.FRESH and c.rejected[Rejection.STALE] == 0
    c.tick(1.150)
    assert c.rejected[Rejection.STALE] == 1 and not c.has_due(6.0)


def test_watchdog_spells_are_reported_once_on_entry_and_once_on_recovery():
    from rt_rl.core.arbiter import WatchdogSpells

    w = WatchdogSpells()
    kinds = [TickKind.WATCHDOG] * 3 + [TickKind.FRESH] + [TickKind.FALLBACK] * 2 + [TickKind.WATCHDOG] * 4
    kinds += [TickKind.FRESH, TickKind.FRESH]
    events = [w.update(k) for k in kinds]
    assert [e for e in events if e] == ["enter", "leave"]  # the warm-up's watchdog is not a spell
    assert events[6] == "enter" and events[10] == "leave" and w.spells == 1
