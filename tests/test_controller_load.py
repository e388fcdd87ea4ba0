"""The controller stand-in's statistics (rt-rl bench controller-load), without a graph."""

import numpy as np

from rt_rl.bench.controller_load import load_summary, run_load

P = 0.002


def test_latency_is_wakeup_minus_deadline_in_microseconds():
    deadlines = np.arange(100) * P
    wakeups = deadlines + 20e-6
    wakeups[7] += 480e-6
    s = load_summary(wakeups, wakeups + 0.001, deadlines, P)
    assert s["periods"] == 100 and s["missed"] == 0
    assert s["latency_us"]["p50"] == 20.0 and s["latency_us"]["max"] == 500.0


def test_a_period_whose_work_ends_after_the_next_deadline_is_missed():
    deadlines = np.arange(10) * P
    finishes = deadlines + 0.001
    finishes[3] = deadlines[3] + P + 1e-6
    assert load_summary(deadlines, finishes, deadlines, P)["missed"] == 1


def test_the_stand_in_does_its_work_every_period_at_normal_priority():
    s = run_load(P, 0.0002, 0.1, priority=0)
    assert s["periods"] == 50 and s["latency_us"]["p50"] < 2000
