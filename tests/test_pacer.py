"""The drift-free pacer: ticks on the start + n*period grid, the overrun rule, and its counters."""

import math

import numpy as np
import pytest

from rt_rl.core.pacer import Pacer


class FakeTime:
    """A clock that only moves when slept on (plus a fixed oversleep) or when the test moves it."""

    def __init__(self, t: float = 0.0, oversleep: float = 0.0) -> None:
        self.t, self.oversleep, self.sleeps = t, oversleep, []

    def clock(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds + self.oversleep


def test_ticks_stay_on_grid_when_every_wake_up_is_late():
    ft = FakeTime(t=100.0, oversleep=0.0004)
    p = Pacer(0.01, start=100.0)
    starts, dues = [], []
    for i in range(1, 2001):
        n, due = p.wait(ft.clock, ft.sleep)
        assert n == i
        starts.append(ft.t)
        dues.append(due)
        ft.t += 0.003  # the tick's work
    grid = 100.0 + 0.01 * np.arange(1, 2001)
    np.testing.assert_allclose(dues, grid, rtol=0, atol=1e-9)
    lateness = np.array(starts) - grid
    # "last wake-up + period" pacing would be 2000 * 0.4 ms = 0.8 s late by now
    assert lateness.min() >= 0 and lateness.max() <= 0.0004 + 1e-9
    assert p.counters() == {"ticks": 2000, "late": 0, "skipped": 0, "caught_up": 0, "clock_steps": 0}


def test_late_counts_ticks_started_later_than_tolerance():
    ft = FakeTime()
    p = Pacer(0.01, start=0.0, late_tolerance=0.001)
    oversleeps = [0.0005, 0.002, 0.0, 0.0011, 0.0009, 0.003]
    late_by = []
    for o in oversleeps:
        ft.oversleep = o
        _, due = p.wait(ft.clock, ft.sleep)
        late_by.append(ft.t - due)
    assert p.late == sum(x > 0.001 for x in late_by) == 3


def test_pacer_skips_missed_ticks_instead_of_bursting():
    ft = FakeTime()
    p = Pacer(0.25, start=0.0)
    ticks = [p.wait(ft.clock, ft.sleep)[0]]
    ft.t = 1.1  # tick 1's work stalled: ticks 2 (0.5), 3 (0.75) and 4 (1.0) are all in the past
    slept = len(ft.sleeps)
    n, due = p.wait(ft.clock, ft.sleep)
    ticks.append(n)
    assert (n, due) == (4, 1.0)  # the newest past tick runs at once, on the original grid
    assert len(ft.sleeps) == slept
    assert p.skipped == 2 and p.late == 1
    n, due = p.wait(ft.clock, ft.sleep)
    ticks.append(n)
    assert (n, due) == (5, 1.25) and ft.t == 1.25  # slept to the grid, not to "now + period"
    # every grid tick is either run or counted as skipped
    assert p.skipped == ticks[-1] - len(ticks) and ticks == [1, 4, 5]


@pytest.mark.parametrize("now,expected_tick,skipped", [(0.74, 2, 0), (0.75, 3, 1), (1.0, 4, 2)])
def test_skip_starts_at_exactly_one_period_behind(now, expected_tick, skipped):
    p = Pacer(0.25, start=0.0)
    p.next_due(0.25)  # tick 1
    n, due = p.next_due(now)  # tick 2 is due at 0.5
    assert n == expected_tick and due == 0.25 * expected_tick
    assert p.skipped == skipped


def test_catch_up_runs_missed_ticks_back_to_back_and_counts_them():
    ft = FakeTime()
    p = Pacer(0.25, start=0.0, catch_up=True)
    assert p.wait(ft.clock, ft.sleep) == (1, 0.25)
    ft.t = 1.1
    slept = len(ft.sleeps)
    burst = [p.wait(ft.clock, ft.sleep) for _ in range(3)]
    assert burst == [(2, 0.5), (3, 0.75), (4, 1.0)]
    assert len(ft.sleeps) == slept  # no sleep between them
    assert p.wait(ft.clock, ft.sleep) == (5, 1.25) and ft.t == 1.25
    assert p.skipped == 0 and p.late == 3
    # the same stall without catch-up skips exactly the ticks that were caught up here
    skipping = Pacer(0.25, start=0.0)
    skipping.next_due(0.25)
    skipping.next_due(1.1)
    assert p.caught_up == skipping.skipped == 2


@pytest.mark.parametrize("period", [0.0, -0.01, math.nan])
def test_invalid_period_is_refused(period):
    with pytest.raises(ValueError, match="period"):
        Pacer(period, start=0.0)


def test_a_clock_stepped_backwards_re_anchors_the_grid_instead_of_sleeping_through_it():
    pacer = Pacer(0.01, 1000.0)
    pacer.next_due(1000.0)
    n, due = pacer.next_due(990.0)  # the wall clock stepped back by 10 s
    assert due == pytest.approx(990.01)
    assert pacer.clock_steps == 1
    n2, due2 = pacer.next_due(990.01)
    assert n2 == n + 1 and due2 == pytest.approx(990.02)


def test_shift_moves_every_later_tick_and_only_stretches_one_period():
    t = FakeTime(0.0)
    p = Pacer(0.01, 0.0)
    first = [p.wait(t.clock, t.sleep)[1] for _ in range(3)]
    p.shift(0.0015)
    later = [p.wait(t.clock, t.sleep)[1] for _ in range(3)]
    np.testing.assert_allclose(first, [0.01, 0.02, 0.03])
    np.testing.assert_allclose(later, [0.0415, 0.0515, 0.0615])
