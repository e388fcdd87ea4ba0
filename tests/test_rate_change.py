"""A live change of the control rate: the grid for the new period takes over at a tick, none is lost."""

import math

import pytest

from rt_rl.core.grid import GridTimeline, Retuner
from rt_rl.core.pacer import Pacer
from rt_rl.core.planner import SchedulePlanner
from rt_rl.core.pool import InferenceTimeEstimator

T = 0.04  # inference time, s


def planner(period: float, n: int = 5) -> SchedulePlanner:
    p = SchedulePlanner(n, period, 0.002, 3, Retuner(0.1, 2.0), InferenceTimeEstimator(window=10))
    for _ in range(3):
        for w in range(n):
            p.add_inference(w, T)
    return p


def served_completions(timeline: GridTimeline, workers, since: float, until: float) -> list[float]:
    """Every worker takes its next served slot when free (busy T per slot): the completions."""
    done = []
    for w in workers:
        t = since
        while t < until:
            found = timeline.next_start(w, t)
            if found is None:
                break
            start, k, g = found
            done.append(g.completion(k))
            t = start + T
    return sorted(done)


@pytest.mark.parametrize("old_hz, new_hz", [(100.0, 50.0), (50.0, 100.0), (100.0, 30.0)])
def test_every_tick_across_a_rate_change_has_its_action(old_hz, new_hz):
    old_p, new_p = 1.0 / old_hz, 1.0 / new_hz
    p = planner(old_p)
    first = p.plan(now=1.0, tick_phase=1.0, subscribers=5, monotonic_now=0.0)
    timeline = GridTimeline()
    timeline.update(first)
    now = first.epoch + 1.0
    # the switch: the first tick of the old clock at least `switch_lead` ahead
    switch_at = 1.0 + math.ceil((now + p.switch_lead() - 1.0) / old_p) * old_p
    new = p.change_period(new_p, switch_at)
    assert new.epoch == pytest.approx(switch_at) and new.control_period == new_p
    assert new.lead == pytest.approx(first.lead)  # the same margin before each tick as any grid
    assert min(new.start(k) for k in range(5)) >= now + p.notice - 1e-9  # every worker hears first
    timeline.update(new)
    done = served_completions(timeline, new.workers, first.epoch, switch_at + 1.0)
    old_ticks = [switch_at - i * old_p for i in range(1, 40)]
    new_ticks = [switch_at + i * new_p for i in range(0, int(0.9 / new_p))]
    for tick, period in [(t, old_p) for t in old_ticks if t > first.epoch + T] + [
        (t, new_p) for t in new_ticks
    ]:
        assert any(tick - period < c <= tick + 1e-9 for c in done), (
            f"tick {tick - switch_at:+.3f} s has no action"
        )


def test_pacer_rebase_keeps_the_switch_tick_and_spaces_later_ones_by_the_new_period():
    pacer = Pacer(0.01, 0.0)
    for _ in range(5):
        pacer.next_due(pacer.due(pacer.tick + 1))
    pacer.rebase(pacer.tick, pacer.due(pacer.tick), 0.02)
    assert pacer.due(6) == pytest.approx(0.07) and pacer.due(7) == pytest.approx(0.09)


def test_rate_change_before_the_first_grid_only_sets_the_period():
    p = SchedulePlanner(2, 0.01, 0.002, 3, Retuner(0.1, 2.0))
    assert p.change_period(0.02, 5.0) is None and p.control_period == 0.02


def test_overload_is_said_when_it_starts_and_when_it_ends():
    from rt_rl.core.pacer import OverloadWatch

    w = OverloadWatch(late_share=0.05)
    assert w.update(100, 0, 0) is None  # the first reading only sets the reference
    assert w.update(200, 2, 0) is None  # 2 % late: not an overload
    assert w.update(300, 20, 0) == "overload"
    assert w.update(400, 40, 3) is None  # still overloaded: said once
    assert w.update(500, 41, 3) == "recovered" and w.seconds == 2


def test_starved_workers_are_an_overload_once_scheduled():
    from rt_rl.core.pacer import OverloadWatch

    w = OverloadWatch(fresh_floor=0.8)
    assert w.update(100, 0, 0, None) is None
    assert w.update(200, 0, 0, 0) is None  # the first fresh count only sets the reference
    assert w.update(300, 0, 0, 95) is None
    assert w.update(400, 0, 0, 150) == "overload"  # 55 of 100 fresh
    assert w.update(500, 0, 0, 248) == "recovered"
