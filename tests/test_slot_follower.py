"""A worker following the slot grid (late starts, no slot twice) and the arbiter's schedule planner."""

import numpy as np
import pytest

from rt_rl.core.grid import Retuner, make_schedule
from rt_rl.core.planner import SchedulePlanner
from rt_rl.core.pool import InferenceTimeEstimator
from rt_rl.core.slots import SlotFollower, for_this_slot

PERIOD = 0.01


def grid(n=3, t=0.025, **kw):
    return make_schedule(n, PERIOD, t, **{"tick_phase": 0.0, "not_before": 0.0, "margin": 0.001, **kw})


def start_of(s, k):
    """Slot k's start time, from the grid's definition: epoch + k * spacing - lead."""
    return s.epoch + k * s.spacing - s.lead


def test_worker_waking_within_slack_takes_its_slot_at_once_and_counts_late_start():
    s = grid()
    f = SlotFollower(0, late_fraction=0.5)
    now = start_of(s, 0) + 0.3 * s.spacing
    start, k = f.next_slot(s, now)
    assert k == 0 and start == pytest.approx(start_of(s, 0)) and start < now  # start at once
    f.started(s, k, start, now)
    assert f.late_starts == 1 and f.skipped_slots == 0


def test_on_time_start_is_not_late():
    s = grid()
    f = SlotFollower(1)
    start, k = f.next_slot(s, start_of(s, 1) - 0.002)
    assert k == 1 and start == pytest.approx(start_of(s, 1))
    f.started(s, k, start, start)
    assert f.late_starts == 0


def test_worker_waking_past_slack_waits_for_its_next_slot():
    s = grid()
    now = start_of(s, 0) + 0.7 * s.spacing
    start, k = SlotFollower(0, late_fraction=0.5).next_slot(s, now)
    assert k == s.num_workers and start == pytest.approx(start_of(s, k)) and start > now


@pytest.mark.parametrize("after", [0.0, 0.001])
def test_slot_is_never_run_twice(after):
    s = grid()
    f = SlotFollower(0, late_fraction=0.5)
    start, k = f.next_slot(s, start_of(s, 0))
    f.started(s, k, start, start)
    again, k2 = f.next_slot(s, start + after)  # the inference was shorter than the slack
    assert k2 == k + s.num_workers and again == pytest.approx(start_of(s, k2))


def test_slots_passed_over_are_counted():
    s = grid()
    f = SlotFollower(0, late_fraction=0.5)
    start, k = f.next_slot(s, start_of(s, 0))
    f.started(s, k, start, start)
    start, k2 = f.next_slot(s, start_of(s, 0) + 9.6 * s.spacing)  # slot 9 is 0.6 spacing ago
    f.started(s, k2, start, start)
    assert k2 == 12
    assert f.skipped_slots == len([j for j in range(k + 1, k2) if j % s.num_workers == 0])


def test_workers_get_interleaved_slots_each_once():
    s = grid()
    taken = []
    for w in range(s.num_workers):
        f, now = SlotFollower(w), 0.0
        while True:
            start, k = f.next_slot(s, now)
            if k >= 30:
                break
            assert k % s.num_workers == w
            f.started(s, k, start, max(start, now))
            taken.append(k)
            now = max(start, now) + s.inference_time  # busy until the inference ends
    assert sorted(taken) == list(range(30))


def test_new_revision_restarts_slot_numbering():
    old, new = grid(), grid(revision=2, not_before=5.0)
    f = SlotFollower(0)
    f.started(old, 9, start_of(old, 9), start_of(old, 9))
    start, k = f.next_slot(new, 4.0)
    assert k == 0 and start == pytest.approx(start_of(new, 0))


@pytest.mark.parametrize("fraction", [-0.1, 1.0])
def test_bad_late_fraction_is_refused(fraction):
    with pytest.raises(ValueError, match="late_fraction"):
        SlotFollower(0, late_fraction=fraction)


def test_next_slot_start_is_earliest_start_of_any_worker():
    s = grid(tick_phase=0.0037, not_before=2.0)
    rng = np.random.default_rng(0)
    for now in [*rng.uniform(0.0, 3.0, 200), start_of(s, 0), start_of(s, 7)]:
        expected = min(s.next_start(w, now)[0] for w in range(s.num_workers))
        got = s.next_slot_start(now)
        assert got == pytest.approx(expected, abs=1e-9) and got >= now - 1e-9


def planner(n=2, warmup=3, hold=1.0):
    return SchedulePlanner(
        n, PERIOD, 0.001, warmup, Retuner(0.1, hold), InferenceTimeEstimator(window=10, percentile=95)
    )


def test_no_grid_before_every_worker_is_heard_and_subscribed():
    p = planner()
    for t in (0.02, 0.021, 0.019):
        p.add_inference(0, t)
    for t in (0.02, 0.022):
        p.add_inference(1, t)
    p.add_inference(7, 0.02)  # an unknown worker does not count as heard
    assert p.plan(5.0, 0.0, subscribers=2, monotonic_now=0.0) is None
    p.add_inference(1, 0.02)
    assert p.plan(5.0, 0.0, subscribers=1, monotonic_now=0.0) is None
    assert p.plan(5.0, 0.0, subscribers=2, monotonic_now=0.0) is not None


def test_first_grid_uses_estimate_and_starts_on_a_tick_after_now():
    p, ref = planner(), InferenceTimeEstimator(window=10, percentile=95)
    samples = [0.018, 0.02, 0.022, 0.019, 0.025, 0.021]
    for i, t in enumerate(samples):
        p.add_inference(i % 2, t)
        ref.add(t)
    now, phase = 5.0, 0.1234
    s = p.plan(now, phase, subscribers=2, monotonic_now=0.0)
    assert s.revision == 1 and s.inference_time == ref.estimate()
    ticks = (s.epoch - phase) / PERIOD
    assert ticks == pytest.approx(round(ticks), abs=1e-6)
    assert s.epoch - s.lead >= now and all(s.next_start(w, 0.0)[0] >= now for w in range(2))
    assert p.plan(now + 1, phase, subscribers=2, monotonic_now=1.0) is None  # nothing changed


def _warm(p, t):
    for _ in range(3):
        for w in range(p.num_workers):
            p.add_inference(w, t)


def test_retune_waits_for_hold_on_monotonic_clock_and_avoids_in_flight_inferences():
    p = planner(hold=1.0)
    _warm(p, 0.02)
    first = p.plan(5.0, 0.0, subscribers=2, monotonic_now=100.0)
    for _ in range(10):
        p.add_inference(0, 0.03)
    for now, mono in ((15.0, 100.2), (25.0, 100.7), (35.0, 100.99)):  # grid clock jumps, hold does not
        assert p.plan(now, 0.0, subscribers=2, monotonic_now=mono) is None
    now = 45.0
    s = p.plan(now, 0.0, subscribers=2, monotonic_now=101.2)
    assert s.revision == 2 and s.inference_time == pytest.approx(0.03)
    assert s.epoch - s.lead >= now + first.lead - 1e-9  # every old inference has finished


def _completions(s, t, horizon=1.0):
    """Completion times when every worker follows the grid and an inference takes t."""
    out = []
    for w in range(s.num_workers):
        f, now = SlotFollower(w), s.epoch - s.lead
        while now < s.epoch - s.lead + horizon:
            start, k = f.next_slot(s, now)
            f.started(s, k, start, max(start, now))
            now = max(start, now) + t
            out.append(now)
    return np.diff(sorted(out))


def test_underestimated_inference_time_recovers_even_spacing():
    p = planner(n=2, hold=0.5)
    _warm(p, 0.015)
    first = p.plan(1.0, 0.0, subscribers=2, monotonic_now=0.0)
    real_t = 0.05
    for _ in range(10):
        p.add_inference(1, real_t)
    assert first.cycle < real_t  # the first grid cannot be kept up with
    assert np.ptp(_completions(first, real_t)) > 0.01  # uneven completions
    assert p.plan(2.0, 0.0, subscribers=2, monotonic_now=10.0) is None
    s = p.plan(2.5, 0.0, subscribers=2, monotonic_now=10.5)
    assert real_t <= s.num_workers * s.spacing <= real_t * 1.01  # the typical slot + 0.5 % headroom
    np.testing.assert_allclose(_completions(s, real_t), s.spacing, atol=1e-9)


def test_first_slow_inferences_of_a_fresh_process_do_not_size_the_first_grid():
    planner = SchedulePlanner(2, 0.01, 0.002, warmup_samples=3, retuner=Retuner(0.1, 2.0), discard=2)
    for w in (0, 1):
        planner.add_inference(w, 0.070)  # cold start
        planner.add_inference(w, 0.065)
    assert planner.plan(now=100.0, tick_phase=100.0, subscribers=2, monotonic_now=0.0) is None
    for w in (0, 1):
        for _ in range(3):
            planner.add_inference(w, 0.006)
    grid = planner.plan(now=100.0, tick_phase=100.0, subscribers=2, monotonic_now=0.0)
    assert grid is not None
    assert grid.inference_time == pytest.approx(0.006)
    assert grid.spacing == pytest.approx(0.01)


def test_next_slot_names_the_worker_that_owns_it():
    s = grid(tick_phase=0.0037, not_before=2.0)
    rng = np.random.default_rng(1)
    for now in rng.uniform(0.0, 3.0, 200):
        start, owner = s.next_slot(now)
        assert start == pytest.approx(s.next_start(owner, now)[0], abs=1e-9)
        others = [s.next_start(w, now)[0] for w in range(s.num_workers) if w != owner]
        assert all(t > start + 1e-9 for t in others)


def test_observation_built_for_this_slot_is_used():
    start = 1.795e9 + 0.04
    assert for_this_slot([start], start) == (0, 0)
    assert for_this_slot([start + 1e-9], start) == (0, 0)  # the ingest's rounding of the same start


def test_leftover_of_an_earlier_slot_is_dropped_not_used():
    start = 1.795e9 + 0.04
    # the observation for this worker's previous slot (80 ms earlier) arrived after that slot gave up
    assert for_this_slot([start - 0.08], start) == (None, 1)
    assert for_this_slot([start - 0.08, start], start) == (1, 1)


def test_observation_before_the_schedule_serves_any_slot():
    assert for_this_slot([0.0], 1.795e9) == (0, 0)
    assert for_this_slot([], 1.795e9) == (None, 0)
