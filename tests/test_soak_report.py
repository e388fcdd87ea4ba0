"""The soak run's report: memory growth after the first minute and the period p99 drift."""

import pytest

from rt_rl.bench.soak import soak_report


def record(t, rss, p99):
    return {"t": t, "rss_kb": rss, "recent_period_ms": {"p99": p99}}


def test_growth_and_drift_are_measured_from_the_first_minute_to_the_end():
    records = [
        record(5, {"a": 50_000}, 12.0),  # startup: not compared
        record(60, {"a": 100_000, "b": 200_000}, 10.4),
        record(300, {"a": 104_000, "b": 200_000}, 10.6),
        record(600, {"a": 108_000, "b": 190_000}, 10.9),
    ]
    r = soak_report(records)
    assert r["memory"]["a"]["growth_pct"] == pytest.approx(8.0)
    assert r["memory"]["b"]["growth_pct"] == pytest.approx(-5.0)
    assert r["max_growth_pct"] == pytest.approx(8.0)
    assert r["period_p99_change_ms"] == pytest.approx(0.5)
    assert (r["t_first"], r["t_last"]) == (60, 600)


def test_a_run_shorter_than_the_settling_minute_is_refused():
    with pytest.raises(ValueError, match="beyond 60 s"):
        soak_report([record(5, {"a": 1}, 10.0), record(50, {"a": 1}, 10.0)])
