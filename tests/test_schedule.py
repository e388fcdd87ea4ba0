"""The staggering schedule: spacing, alignment with arbiter ticks, predicted fresh ratio, retuning."""

import math

import numpy as np
import pytest

from rt_rl.core.grid import Retuner, make_schedule, needs_retune
from rt_rl.core.pool import InferenceTimeEstimator

PERIOD = 0.01


def completions(schedule, horizon: float) -> list[tuple[float, int]]:
    """(completion time, worker) of every slot each worker starts in [0, horizon)."""
    out = []
    for w in range(schedule.num_workers):
        now = 0.0
        while True:
            start, _ = schedule.next_start(w, now)
            if start >= horizon:
                break
            out.append((start + schedule.inference_time, w))
            now = start + schedule.inference_time  # a worker is busy until its inference ends
    return sorted(out)


@pytest.mark.parametrize("n,t", [(1, 0.04), (2, 0.04), (4, 0.04), (5, 0.04), (8, 0.04), (3, 0.013)])
def test_fresh_ratio_matches_theory(n, t):
    """Simulate ticks: a tick is fresh if a completion landed since the previous tick."""
    s = make_schedule(n, PERIOD, t, tick_phase=0.0, not_before=0.0, margin=0.001)
    done = np.array([c for c, _ in completions(s, 20.0)])
    ticks = np.arange(1.0, 19.0, PERIOD)
    fresh = np.histogram(done, bins=np.append(ticks[0] - PERIOD, ticks))[0] > 0
    assert fresh.mean() == pytest.approx(min(1.0, n * PERIOD / t), abs=0.01)
    assert s.predicted_fresh_ratio() == pytest.approx(min(1.0, n * PERIOD / t))


def test_enough_workers_complete_just_before_every_tick():
    s = make_schedule(5, PERIOD, 0.04, tick_phase=0.1234, not_before=1.0, margin=0.001)
    assert s.spacing == pytest.approx(PERIOD)
    for c, _ in completions(s, 3.0):
        if c < s.epoch:
            continue
        # completion + margin is an arbiter tick
        phase = (c + 0.001 - 0.1234) / PERIOD
        assert phase == pytest.approx(round(phase), abs=1e-6)


def test_workers_take_turns_evenly():
    s = make_schedule(4, PERIOD, 0.08, tick_phase=0.0, not_before=0.0)
    seq = completions(s, 5.0)
    owners = [w for _, w in seq[4:40]]
    assert owners == [owners[0], *owners[1:4]] * 9  # round robin
    gaps = np.diff([c for c, _ in seq[4:]])
    assert np.allclose(gaps, 0.02)  # T / N


def test_no_slot_before_not_before_and_worker_gets_its_own_slots():
    s = make_schedule(3, PERIOD, 0.025, tick_phase=0.0, not_before=5.0)
    for w in range(3):
        start, k = s.next_start(w, 0.0)
        assert start >= 5.0 - 1e-9
        assert k % 3 == w
        later, k2 = s.next_start(w, start + 1e-5)
        assert later == pytest.approx(start + s.cycle) and k2 == k + 3


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="num_workers"):
        make_schedule(0, PERIOD, 0.04, 0.0, 0.0)
    with pytest.raises(ValueError):
        make_schedule(1, 0.0, 0.04, 0.0, 0.0)
    s = make_schedule(2, PERIOD, 0.04, 0.0, 0.0)
    with pytest.raises(ValueError, match="not in this schedule"):
        s.next_start(2, 0.0)


def test_retune_on_overrun_and_shrink_but_not_noise():
    s = make_schedule(6, PERIOD, 0.04, 0.0, 0.0, margin=0.002)  # a whole-tick grid with slack
    assert not needs_retune(s, 0.0415, 0.15)  # within the margin: the action still makes its tick
    assert needs_retune(s, 0.0425, 0.15)  # beyond it: every action misses its tick
    assert not needs_retune(s, 0.0392, 0.15)  # a small shrink is noise
    assert needs_retune(s, 0.0385, 0.15)  # 1.5 ms of age on every action: beyond 0.1 P, re-laid
    assert needs_retune(s, 0.03, 0.15)


def test_back_to_back_workers_retune_on_any_overrun_of_their_cycle():
    s = make_schedule(2, PERIOD, 0.04, 0.0, 0.0, margin=0.002)  # spacing T/N: no slack in a cycle
    assert s.cycle == pytest.approx(0.04)
    assert needs_retune(s, 0.0405, 0.15)  # each start would be later than the last
    assert not needs_retune(s, 0.04, 0.15)


def test_estimator_uses_a_high_percentile_of_recent_samples():
    est = InferenceTimeEstimator(window=10, percentile=90)
    with pytest.raises(ValueError):
        est.estimate()
    for x in [0.01] * 9 + [0.05]:
        est.add(x)
    est.add(math.nan)  # ignored
    assert len(est) == 10
    assert est.estimate() == pytest.approx(0.01)  # 90th of ten samples: the 9th
    for _ in range(10):
        est.add(0.02)  # old samples leave the window
    assert est.estimate() == pytest.approx(0.02)


def test_retuner_ignores_bursts_and_follows_sustained_change():
    s = make_schedule(6, PERIOD, 0.04, 0.0, 0.0, margin=0.002)
    r = Retuner(tolerance=0.1, hold_time=2.0)
    assert not r.update(0.0, s, 0.05)  # slow burst starts
    assert not r.update(1.0, s, 0.05)
    assert not r.update(1.5, s, 0.041)  # over: back within tolerance resets the clock
    assert not r.update(2.5, s, 0.05)
    assert not r.update(4.0, s, 0.05)
    assert r.update(4.6, s, 0.05)  # off for 2.1 s in a row
