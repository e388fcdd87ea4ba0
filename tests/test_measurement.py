"""The measurement window: bounded rings, statistics against a numpy reference, gate and CPU window."""

import math

import numpy as np
import pytest

from rt_rl.core.measurement import (
    DEFAULT_CAPACITY,
    CpuWindow,
    Measurement,
    Ring,
    WindowGate,
    percentiles_ms,
    summarize,
)

PERIOD, WORKERS = 0.01, 3


def test_ring_keeps_newest_values_oldest_first_after_wrap_around():
    r = Ring(5)
    for x in range(3):
        r.append(x)
    np.testing.assert_array_equal(r.values(), [0, 1, 2])
    for x in range(3, 13):
        r.append(x)
    assert r.total == 13 and len(r) == 5 and r.capacity == 5
    np.testing.assert_array_equal(r.values(), [8, 9, 10, 11, 12])
    np.testing.assert_array_equal(r.values(last=2), [11, 12])
    np.testing.assert_array_equal(r.values(last=99), [8, 9, 10, 11, 12])
    assert r.values(last=0).size == 0
    r.values()[:] = -1  # a copy: the ring is untouched
    np.testing.assert_array_equal(r.values(), [8, 9, 10, 11, 12])
    with pytest.raises(ValueError, match="capacity"):
        Ring(0)


def _pct(x, q):
    return float(np.percentile(x, q)) * 1e3


@pytest.mark.parametrize("n_ticks,capacity", [(500, DEFAULT_CAPACITY), (3000, 256)])
def test_summary_matches_numpy_reference(n_ticks, capacity):
    rng = np.random.default_rng(7)
    times = 50.0 + np.cumsum(PERIOD + rng.normal(0.0, 0.0005, n_ticks))
    kinds = rng.choice(["fresh", "fallback", "watchdog"], n_ticks, p=[0.8, 0.15, 0.05])
    ages = rng.uniform(0.02, 0.06, n_ticks)
    workers = rng.integers(0, 2, n_ticks // 2)  # worker 2 is never heard
    inference = rng.uniform(0.03, 0.07, workers.size)
    m = Measurement(PERIOD, WORKERS, capacity=capacity, recent_window=0.5)
    for t, k, a in zip(times, kinds, ages, strict=True):
        m.add_tick(str(k), float(t), float(a))
    for w, x in zip(workers, inference, strict=True):
        m.add_action(int(w), float(x))
    m.add_superseded(3)
    for reason in ("stale", "stale", "duplicate"):
        m.add_rejected(reason)
    s = summarize(m.snapshot())

    tail = times[-capacity:]
    periods = np.diff(tail)
    c = s["control"]
    assert c["ticks"] == n_ticks
    assert c["rate_hz_achieved"] == pytest.approx((tail.size - 1) / (tail[-1] - tail[0]), abs=1e-3)
    for q, key in ((50, "p50"), (99, "p99"), (100, "max")):
        assert c["period_ms"][key] == pytest.approx(_pct(periods, q), abs=1e-3)
    recent = np.diff(times[-(round(0.5 / PERIOD) + 1) :])
    assert c["recent_period_ms"]["p99"] == pytest.approx(_pct(recent, 99), abs=1e-3)

    fresh = int((kinds == "fresh").sum())
    assert s["fresh_ticks"] == fresh
    assert s["fresh_action_ratio"] == pytest.approx(fresh / n_ticks, abs=1e-4)
    assert s["watchdog_ticks"] == int((kinds == "watchdog").sum())
    assert s["fallback_ticks"] == n_ticks - fresh
    fresh_ages = ages[kinds == "fresh"][-capacity:]
    for q, key in ((50, "p50"), (99, "p99"), (100, "max")):
        assert s["action_age_ms"][key] == pytest.approx(_pct(fresh_ages, q), abs=1e-3)

    kept = {w: inference[workers == w][-min(capacity, 8192) :] for w in (0, 1)}
    t_mean = np.concatenate(list(kept.values())).mean()
    assert s["inference_ms_mean"] == pytest.approx(t_mean * 1e3, abs=1e-3)
    assert s["predicted_fresh_action_ratio"] == pytest.approx(min(1.0, WORKERS * PERIOD / t_mean), abs=1e-4)
    assert [w["id"] for w in s["workers"]] == [0, 1, 2]
    for w in (0, 1):
        entry = s["workers"][w]
        assert entry["actions"] == int((workers == w).sum())
        assert entry["inference_ms"]["p50"] == pytest.approx(_pct(kept[w], 50), abs=1e-3)
        assert entry["inference_ms"]["p99"] == pytest.approx(_pct(kept[w], 99), abs=1e-3)
    assert s["workers"][2] == {"id": 2, "actions": 0, "inference_ms": {"p50": None, "p99": None}}
    assert s["superseded_actions"] == 3
    assert s["rejected_actions"] == 3 and s["rejected_by_reason"] == {"duplicate": 1, "stale": 2}


@pytest.mark.parametrize("model", [0.02, 0.06])
def test_predicted_ratio_uses_the_schedule_inference_model_when_given(model):
    m = Measurement(PERIOD, WORKERS)
    for i in range(10):
        m.add_tick("fresh", i * PERIOD, 0.03)
        m.add_action(i % WORKERS, 0.09)
    assert summarize(m.snapshot(inference_model=model))["predicted_fresh_action_ratio"] == pytest.approx(
        min(1.0, WORKERS * PERIOD / model), abs=1e-4
    )


def test_memory_stays_bounded_over_a_million_ticks():
    m = Measurement(PERIOD, 1, capacity=1024)
    bufs = (m.tick_times._buf, m.ages._buf)
    n = 1_000_000
    for i in range(n):
        m.add_tick("fresh", i * PERIOD, 0.03)
    for ring, buf in zip((m.tick_times, m.ages), bufs, strict=True):
        assert ring._buf is buf and buf.size == 1024  # never reallocated
        assert len(ring) == ring.capacity == 1024 and ring.total == n
    np.testing.assert_array_equal(m.tick_times.values(), np.arange(n - 1024, n) * PERIOD)
    assert summarize(m.snapshot())["control"]["ticks"] == n


def test_window_gate_opens_at_first_fresh_tick_after_opens_after_and_stays_open():
    g = WindowGate(opens_after=10.0)
    assert not g.update(9.5, fresh=True)  # too early
    assert not g.update(10.5, fresh=False)  # not fresh
    assert g.update(11.0, fresh=True) and g.opened_at == 11.0
    assert g.update(12.0, fresh=False) and g.update(13.0, fresh=True)
    assert g.opened_at == 11.0
    at_edge = WindowGate(opens_after=10.0)
    assert at_edge.update(10.0, fresh=True) and at_edge.opened_at == 10.0
    assert not WindowGate().update(1e9, fresh=True)  # no schedule yet: never opens


def test_cpu_window_percent_per_process():
    w = CpuWindow()
    assert w.percent(5.0, {"a": 1.0}) == {"a": None}  # not opened
    w.open(10.0, {"a": 1.0, "b": None, "c": 2.0})
    got = w.percent(12.0, {"a": 1.5, "b": 3.0, "c": 2.2, "d": 1.0, "e": None})
    assert got["a"] == pytest.approx(100 * 0.5 / 2.0) and got["c"] == pytest.approx(100 * 0.2 / 2.0)
    assert got["b"] is None and got["d"] is None and got["e"] is None  # no start value / no value
    assert w.percent(10.0, {"a": 1.5}) == {"a": None}  # no wall time elapsed


def test_percentiles_ms_ignores_nan_and_handles_empty():
    samples = [0.004, math.nan, 0.001, math.inf, 0.003, 0.002]
    finite = np.array([0.004, 0.001, 0.003, 0.002])
    got = percentiles_ms(samples, ("p50", "p90", "max", "mean"))
    assert got["p50"] == pytest.approx(_pct(finite, 50), abs=1e-3)
    assert got["p90"] == pytest.approx(_pct(finite, 90), abs=1e-3)
    assert got["max"] == pytest.approx(4.0) and got["mean"] == pytest.approx(finite.mean() * 1e3)
    assert percentiles_ms(np.array(samples))["p50"] == got["p50"]
    assert percentiles_ms([]) == {"p50": None, "p99": None, "max": None}
    assert percentiles_ms([math.nan]) == {"p50": None, "p99": None, "max": None}


def test_running_reports_copy_only_the_last_minute_but_count_the_whole_window():
    m = Measurement(period=0.01, num_workers=1, capacity=50_000, recent_window=1.0)
    for i in range(20_000):
        m.add_tick("fresh" if i % 4 else "fallback", i * 0.01, 0.04)
    running = m.snapshot(recent_only=True)
    final = m.snapshot()
    assert running.tick_times.size == 101 and running.ages.size <= 100  # 1 s of 100 Hz ticks
    assert final.tick_times.size == 20_000
    assert summarize(running)["control"]["ticks"] == summarize(final)["control"]["ticks"] == 20_000
    assert summarize(running)["fresh_action_ratio"] == summarize(final)["fresh_action_ratio"] == 0.75
    assert summarize(running)["percentiles_over"] == "last 1 s (counts: whole window)"
    assert summarize(final)["percentiles_over"] == "whole window"
