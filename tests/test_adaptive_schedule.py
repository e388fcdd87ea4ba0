"""The adaptive schedule in simulated time: recovery, re-spacing, lossless grid changes, auto pool,
sensor-phase alignment (the planner and followers the nodes run, on a simulated clock)."""

import math

import numpy as np
import pytest

from rt_rl.core.grid import GridTimeline, Retuner, make_schedule, needs_retune, next_grid
from rt_rl.core.planner import SchedulePlanner
from rt_rl.core.pool import InferenceTimeEstimator, PoolSizer, pool_processes
from rt_rl.core.pool_sim import simulate_pool
from rt_rl.core.slots import ALIGN_SLACK, SlotFollower, sensor_phase, tick_shift

P = 0.01


def planner(n, pool=None, **kw):
    return SchedulePlanner(
        n,
        P,
        0.001,
        warmup_samples=3,
        retuner=Retuner(0.1, 2.0, overrun_hold=0.2),
        estimator=InferenceTimeEstimator(window=30, percentile=95),
        pool=pool,
        **kw,
    )


def completion_gaps(run, start, end):
    ends = sorted(i.end for i in run.inferences if start <= i.end < end and i.revision > 0)
    return np.diff(ends)


def test_underestimated_first_inference_time_recovers_to_even_spacing():
    # first grid laid while inferences take 15 ms; from t = 1 s they take 45 ms (6 workers: enough)
    run = simulate_pool(planner(6), lambda w, t: 0.015 if t < 1.0 else 0.045, P, seconds=4.0)
    assert run.fresh_ratio(1.0, 1.5) < 0.95  # the 15 ms grid cannot be kept with 45 ms inferences
    assert run.grids[-1].inference_time == pytest.approx(0.045)
    assert run.fresh_ratio(2.0, 4.0) == 1.0
    np.testing.assert_allclose(completion_gaps(run, 2.0, 4.0), P, atol=2e-4)  # one per tick, even


def test_removing_a_worker_respaces_the_rest():
    # 6 workers, T = 35 ms; worker 5 dies at t = 2 s: the 5 left still cover every tick once re-spaced
    run = simulate_pool(planner(6), lambda w, t: 0.035, P, seconds=6.0, alive=lambda w, t: w != 5 or t < 2.0)
    last = run.grids[-1]
    assert set(last.workers) == {0, 1, 2, 3, 4}
    assert run.fresh_ratio(4.0, 6.0) == 1.0
    np.testing.assert_allclose(completion_gaps(run, 4.0, 6.0), P, atol=2e-4)
    owners = [i.worker for i in sorted(run.inferences, key=lambda i: i.end) if 4.0 <= i.end < 6.0]
    assert all(owners[j] != owners[j + 1] for j in range(len(owners) - 1))  # round robin, no gap


def _follow(timeline, t_actual, start, end):
    """Completions when each worker follows `timeline` from `start` and an inference takes t_actual."""
    out = []
    for w in {w for g in timeline.grids for w in g.workers}:
        f, now = SlotFollower(w), start
        while (found := f.next_in(timeline, now)) is not None and found[0] < end:
            s, k, g = found
            begin = max(s, now)
            assert begin - s <= 0.1 * g.spacing, "a worker is still busy when its slot starts"
            f.started(g, k, s, begin)
            out.append((begin + t_actual(g), w))
            now = begin + t_actual(g)
    return sorted(out)


@pytest.mark.parametrize(
    "new_t,new_workers",
    [
        (0.035, (0, 1, 2, 3, 4, 5)),
        (0.048, (0, 1, 2, 3, 4, 5)),
        (0.041, (0, 1, 2, 3, 4, 5, 6)),
        (0.041, (0, 1, 2, 3, 4)),
    ],
    ids=["T shrinks", "T grows", "worker joins", "worker leaves"],
)
def test_grid_change_drops_no_tick_the_old_grid_would_have_served(new_t, new_workers):
    old = make_schedule(6, P, 0.041, tick_phase=0.0, not_before=0.0, margin=0.001)
    new = next_grid(old, new_workers, P, new_t, tick_phase=0.0, now=1.003, margin=0.001, notice=0.06)
    timeline = GridTimeline()
    timeline.update(old)
    timeline.update(new)
    # inferences of the old grid take its T, of the new grid the new T (what the retune was for)
    done = _follow(timeline, lambda g: g.inference_time, old.epoch - old.lead, 2.0)
    ticks = np.arange(math.ceil(old.epoch / P), math.floor(1.9 / P)) * P
    served = [any(tick - P < c <= tick + 1e-9 for c, _ in done) for tick in ticks]
    assert all(served)  # every tick before, across and after the change has its fresh action
    assert new.epoch >= 1.003 + 0.06


def test_auto_pool_grows_at_once_and_shrinks_after_hold():
    sizer = PoolSizer(1, 10, extra=1, shrink_hold=5.0)
    assert sizer.update(0.041, P, now=0.0) == 6  # ceil(4.1) + 1
    assert sizer.update(0.081, P, now=1.0) == 10  # ceil(8.1) + 1: at once
    assert sizer.update(0.041, P, now=2.0) == 10  # smaller, not yet held
    assert sizer.update(0.041, P, now=6.9) == 10
    assert sizer.update(0.041, P, now=7.0) == 6


def test_pool_processes_keep_spares_and_never_retire_an_active_worker():
    start, retire = pool_processes(
        alive=[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], active=[0, 1, 2, 3, 4, 5], wanted=6, spares=2, max_workers=10
    )
    assert start == [] and retire == [9, 8]
    start, retire = pool_processes(
        alive=[0, 1, 2, 3, 4, 5, 6, 7], active=[0, 1, 2, 3, 4, 5, 6, 7], wanted=10, spares=2, max_workers=12
    )
    assert start == [8, 9, 10, 11] and retire == []
    start, retire = pool_processes(alive=[0, 1, 2, 3], active=[0, 1, 2, 3], wanted=2, spares=0, max_workers=4)
    assert start == [] and retire == []  # active ones stay until a new grid has dropped them


def test_auto_pool_uses_warm_spares_when_latency_doubles():
    # max 10 workers alive, T 41 ms -> 6 active; at t = 3 s T doubles: spares join within a second
    sizer = PoolSizer(1, 10, extra=1, shrink_hold=5.0)
    run = simulate_pool(planner(10, pool=sizer), lambda w, t: 0.041 if t < 3.0 else 0.082, P, seconds=6.0)
    before = [g for g in run.grids if g.epoch < 3.0][-1]
    assert before.num_workers == 6
    assert run.fresh_ratio(2.0, 3.0) == 1.0
    assert run.grids[-1].num_workers == 10
    assert run.fresh_ratio(4.0, 6.0) == 1.0
    assert run.fresh_ratio(3.0, 4.0) >= 0.8


def test_starts_move_to_just_after_a_sensor_sample_without_changing_the_sample_read():
    sensor = 0.004
    plain = make_schedule(3, P, 0.025, tick_phase=0.0, not_before=1.0)
    aligned = make_schedule(
        3, P, 0.025, tick_phase=0.0, not_before=1.0, sensor_period=sensor, sensor_phase=0.0011
    )
    for k in range(50):
        s, s0 = aligned.start(k), plain.start(k + (aligned.epoch - plain.epoch) / aligned.spacing)
        assert (s - 0.0011) / sensor == pytest.approx(round((s - 0.0011) / sensor), abs=1e-6)
        assert s0 - sensor < s <= s0 + 1e-12
        # the newest sample ready at s is the one ready at the unaligned start
        assert math.floor((s - 0.0011) / sensor + 1e-9) == math.floor((s0 - 0.0011) / sensor + 1e-9)


@pytest.mark.parametrize("phase", [0.0, 0.0005, 0.0039])
def test_sensor_phase_is_found_across_the_wrap(phase):
    rng = np.random.default_rng(0)
    stamps = [100.0 + phase + 0.004 * i + rng.normal(0, 5e-5) for i in range(40)]
    got = sensor_phase(stamps, 0.004)
    assert min(abs(got - phase), 0.004 - abs(got - phase)) < 2e-4


@pytest.mark.parametrize("sensor", [0.0, 0.002, 0.004])
def test_follower_advances_on_wall_clock_times(sensor):
    # at 1.8e9 s a 1 ns step does not change a float, and an aligned start sits before the unaligned
    # one: either way the follower must move on to its next slot (both once looped for ever live)
    s = make_schedule(
        5, P, 0.041, tick_phase=1.795e9, not_before=1.795e9 + 1.0, sensor_period=sensor, sensor_phase=0.0017
    )
    timeline = GridTimeline()
    timeline.update(s)
    f, now, ks = SlotFollower(2), 1.795e9 + 1.0, []
    for _ in range(50):
        start, k, g = f.next_in(timeline, now)
        f.started(g, k, start, start)
        ks.append(k)
        now = start  # an inference shorter than the late-start slack
    assert ks == [2 + 5 * j for j in range(50)]


def test_starts_are_aligned_to_the_sensor_only_with_a_whole_tick_spacing():
    p = planner(8, sensor_period=0.004, sensor_offset=0.0015)
    for i in range(10):
        p.add_observation_stamp(100.0007 + 0.004 * i)
    assert p.aligned_sensor(0.010)[0] == 0.004  # one tick: aligned
    assert p.aligned_sensor(0.020)[0] == 0.004
    assert p.aligned_sensor(0.01006) == (0.0, 0.0)  # N P < T: completions drift across ticks
    wide = planner(8, sensor_period=0.008)
    wide.add_observation_stamp(100.0)
    assert wide.aligned_sensor(0.010) == (0.0, 0.0)  # a move of up to 8 ms could cross a tick


@pytest.mark.parametrize("tick0", [0.0037, 1.795e9 + 0.0037])
def test_tick_lock_starts_every_slot_on_a_sample_and_lands_it_margin_before_its_tick(tick0):
    """500 Hz samples ready at 1.3 ms (+ 2 ms k), ticks at an arbitrary phase: after the shift each
    worker starts on a sample with no sensor period lost before its tick (wall-clock magnitudes too)."""
    sensor, ready, t, margin = 0.002, 0.0013, 0.0406, 0.001
    shift = tick_shift(tick0, t + margin, sensor, ready)
    assert 0.0 <= shift < sensor
    s = make_schedule(6, P, t, tick0 + shift, tick0, margin=margin, sensor_period=sensor, sensor_phase=ready)
    for k in range(200):
        start = s.start(k)
        assert s.completion(k) - s.lead - start == pytest.approx(ALIGN_SLACK, abs=2e-6)
        assert (start - ready) / sensor == pytest.approx(round((start - ready) / sensor), abs=1e-3)
        assert (s.completion(k) - tick0 - shift) / P == pytest.approx(
            round((s.completion(k) - tick0 - shift) / P)
        )


def test_tick_lock_is_off_without_a_sensor_rate():
    assert tick_shift(0.0037, 0.041, 0.0, 0.0013) == 0.0


def test_planner_moves_the_ticks_onto_the_sensor_only_when_asked():
    for lock in (False, True):
        p = planner(3, sensor_period=0.002, sensor_offset=0.001, lock_ticks=lock)
        for w in range(3):
            for _ in range(6):
                p.add_inference(w, 0.0205)
        for k in range(20):
            p.add_observation_stamp(100.0003 + 0.002 * k)
        s = p.plan(100.0, 99.9957, subscribers=3, monotonic_now=1.0)
        assert (p.tick_shift > 0) is lock
        waste = [s.completion(k) - s.lead - s.start(k) for k in range(10)]
        assert max(waste) < 1e-4 if lock else min(waste) > 1e-4


def test_a_tick_expects_an_action_only_where_a_slot_finishes_in_its_period():
    s = make_schedule(2, P, 0.0205, tick_phase=0.0, not_before=0.0, margin=0.001)  # spacing 10.25 ms
    margin = s.lead - s.inference_time
    ends = [s.completion(k) - margin for k in range(200)]
    ticks = [s.epoch + i * P for i in range(150)]
    expected = [any(t - P + 1e-6 < e <= t + 1e-6 for e in ends) for t in ticks]
    assert [s.completes_for(t) for t in ticks] == expected
    assert 0 < expected.count(False) < 10  # the ticks theory leaves without an action
    assert not s.completes_for(s.epoch - 2 * P)


def test_back_to_back_workers_are_spaced_by_the_mean_slot_and_lead_by_the_tail():
    """Fewer workers than T/P: the spacing follows the mean of what a slot occupies a worker
    (inference + turnaround: a late start only delays the next), the lead the 95th percentile of the
    inference alone (the action must make its tick)."""
    p = planner(2)
    rng = np.random.default_rng(0)
    times = 0.0205 + rng.gamma(2.0, 0.0001, size=30)
    for w in range(2):
        for t in times[:6]:
            p.add_inference(w, t, turnaround=0.0003)
    for t in times[6:]:
        p.add_inference(0, t, turnaround=0.0003)
    s = p.plan(0.0, 0.0, subscribers=2, monotonic_now=1.0)
    assert s.inference_time == pytest.approx(p.estimator.estimate())
    window = (list(times[:6]) * 2 + list(times[6:]))[-30:]
    mean, p75 = float(np.mean(window)) + 0.0003, float(np.percentile(window, 75)) + 0.0003
    assert mean <= p.slots.typical() < p75  # steady: the mean, or the newest samples' median above it
    assert s.spacing == pytest.approx(p.slots.typical() * 1.005 / 2)
    assert s.spacing < (s.inference_time + 0.0003) / 2


def test_a_typical_slot_beyond_the_cycle_re_lays_but_noise_within_the_headroom_does_not():
    s = make_schedule(2, P, 0.0212, 0.0, 0.0, cycle_time=0.0205)
    r = Retuner(0.1, 2.0, overrun_hold=0.2)
    assert not r.update(0.0, s, 0.0212, typical=0.0205 * 1.004)
    assert not r.update(0.1, s, 0.0212, typical=0.0205 * 1.01)  # over: held for 0.2 s
    assert r.update(0.35, s, 0.0212, typical=0.0205 * 1.01)


def test_a_back_to_back_cycle_laid_too_long_shrinks_to_the_typical_slot_after_the_hold():
    s = make_schedule(1, P, 0.0113, 0.0, 0.0, cycle_time=0.0113)  # laid during a slow start
    r = Retuner(0.1, 2.0, overrun_hold=0.2)
    assert not r.update(0.0, s, 0.0113, typical=0.0113 * 0.995)  # within the band: kept
    assert not r.update(0.0, s, 0.0111, typical=0.0111)  # 1.8 % shorter: held for 2 s
    assert not r.update(1.9, s, 0.0111, typical=0.0111)
    assert r.update(2.1, s, 0.0111, typical=0.0111)


def test_a_whole_tick_grid_is_not_re_laid_for_a_short_slot():
    s = make_schedule(6, P, 0.04, 0.0, 0.0, margin=0.002, cycle_time=0.0405)  # spacing = P, slack
    assert not needs_retune(s, 0.04, 0.1, typical=0.0405)  # its cycle is N P, not the slot length


def test_a_fixed_actuation_delay_acts_exactly_d_ticks_after_the_observation_tick():
    """100 Hz samples and ticks at unrelated phases, T = 6 ms, D = 2: with the ticks locked onto the
    sensor and the arbiter holding each action until it is due, every tick actuates the action of its
    own slot, computed from the sample taken just before the tick two periods earlier."""
    from rt_rl.core.arbiter import ArbiterConfig, ArbiterCore, TickKind, TimedAction

    sensor, first_sample, t, d, ready = P, 100.00737, 0.006, 2, 0.001  # a sample is usable 1 ms on
    p = planner(2, sensor_period=sensor, sensor_offset=ready, lock_ticks=True, min_lead=d * P)
    for w in range(2):
        for _ in range(6):
            p.add_inference(w, t)
    for k in range(20):
        p.add_observation_stamp(first_sample + sensor * k)
    s = p.plan(100.3, 100.0021, subscribers=2, monotonic_now=1.0)
    assert s.lead == pytest.approx(d * P) and p.tick_shift > 0
    arbiter = ArbiterCore(ArbiterConfig(action_dim=1, max_action_age=0.25, actuation_delay=d * P))
    delays = []
    for k in range(100):
        start = s.start(k)
        stamp = first_sample + math.floor((start - ready - first_sample + 1e-9) / sensor) * sensor
        arbiter.offer(TimedAction(np.zeros(1), stamp, k, s.owner(k)), now=start + t)
        if k >= 1:  # slot k-1's tick comes after slot k's action arrived (20 ms lead, 6 ms inference)
            tick = s.completion(k - 1) + 1e-4
            decision = arbiter.tick(tick)
            assert decision.kind is TickKind.FRESH and decision.action.observation_seq == k - 1
            delays.append(math.floor((tick - decision.action.observation_stamp) / P))
    assert set(delays) == {d}


def test_a_lead_left_long_by_a_passing_tail_shrinks_beyond_a_tenth_of_a_period():
    s = make_schedule(8, P, 0.0439, 0.0, 0.0)  # laid on a tail: the steady T is 40.9 ms
    r = Retuner(0.1, 2.0, overrun_hold=0.2)
    assert not r.update(0.0, s, 0.0431) and not r.update(5.0, s, 0.0431)  # 0.8 ms shorter: within 0.1 P, kept
    assert not r.update(0.0, s, 0.0409) and not r.update(1.9, s, 0.0409)  # 3 ms (7 %): held 2 s
    assert r.update(2.1, s, 0.0409)
