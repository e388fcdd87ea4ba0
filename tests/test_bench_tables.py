"""The benchmark's tables: median (min-max) over the runs, never the best run."""

import pytest

from rt_rl.bench.graph import cpu_table, spread


def test_spread_quotes_the_median_and_the_range_not_the_best_run():
    assert spread([0.99, 0.97, 0.995, 0.98, 0.985]) == "0.985 (0.970-0.995)"
    assert spread([10.0], "{:.1f}") == "10.0"
    assert spread([None, 2.0, 4.0], "{:.1f}") == "3.0 (2.0-4.0)"
    assert spread([]) == "-"


def test_cpu_table_sums_the_workers_and_reports_one_worker_on_average():
    def run(total, workers):
        cpu = {f"inference_worker_{i}": w for i, w in enumerate(workers)}
        cpu.update(mujoco_sim=10.0, sensor_ingest=5.0, actuator_arbiter=4.0)
        return {"cpu_percent": cpu, "cpu_percent_total": total}

    table = cpu_table({5: [run(30.0, [2.0] * 5), run(32.0, [2.4] * 5), run(31.0, [2.2] * 5)]})
    header, _, row = table.splitlines()[:3]
    assert "workers (sum)" in header and "one worker (mean)" in header and "graph total" in header
    assert "11.0 (10.0-12.0)" in row  # workers summed, median and range over the runs
    assert "2.2 (2.0-2.4)" in row and "31.0 (30.0-32.0)" in row


def test_stagger_recovery_is_measured_from_the_change_to_the_last_bad_window():
    from rt_rl.bench.stagger import first_above, recovery_time

    # 100 Hz ticks for 3 s after a change at t = 10: bad for 0.6 s, good, one bad burst at 11.5-11.7
    ticks = [(10 + i * 0.01, not (i < 60 or 150 <= i < 170)) for i in range(300)]
    assert first_above(ticks, 10.0, 13.0) == pytest.approx(1.0)  # window 0.75-1.0 is the first good one
    assert recovery_time(ticks, 10.0, 13.0) == pytest.approx(1.75)  # after the burst's window 1.5-1.75
    assert recovery_time([(10 + i * 0.01, True) for i in range(300)], 10.0, 13.0) == 0.0
    assert recovery_time([(10 + i * 0.01, False) for i in range(300)], 10.0, 13.0) is None


def test_stagger_prediction_and_pool_size_follow_paper_a():
    from rt_rl.bench.stagger import needed_workers, predicted_ratio

    assert predicted_ratio(3, 0.01, 0.0404) == pytest.approx(0.7426, abs=1e-4)
    assert predicted_ratio(8, 0.01, 0.0404) == 1.0
    assert needed_workers(0.01, 0.0404) == 6 and needed_workers(0.01, 0.04) == 5


def test_stagger_measure_predicts_from_the_model_time_and_from_the_workers_busy_time():
    from rt_rl.bench.stagger import measure

    # one back-to-back worker: 10 ms latency, 0.5 ms compute, 0.4 ms turnaround, 100 Hz ticks
    actions = [[0, 0.011 * k, 0.011 * k + 0.0105, 1, 0.0, k, 0.0, 0.0105, 0.0004] for k in range(50)]
    ticks = [[0.01 * k, "fresh" if k % 12 else "fallback", True, 0.0105, 0, k, 0.0] for k in range(100)]
    s = {
        "probe": {"ticks": ticks, "actions": actions},
        "workers": [{"compute_ms_p50": 0.5}],
        "num_workers": 1,
    }
    m = measure(s, 0.01, 0.010)
    assert m["predicted"] == pytest.approx(10 / 10.5, abs=1e-4)
    assert m["predicted_busy"] == pytest.approx(10 / 10.9, abs=1e-4)
    assert m["T_mean_ms"] == pytest.approx(10.5) and m["predicted_mean"] == pytest.approx(10 / 10.5, abs=1e-4)
    actions[0][7] = 0.0605  # one inference 50 ms slow: the median does not see it, the rate does
    m = measure(s, 0.01, 0.010)
    assert m["predicted"] == pytest.approx(10 / 10.5, abs=1e-4)
    assert m["T_mean_ms"] == pytest.approx(11.5) and m["predicted_mean"] == pytest.approx(10 / 11.5, abs=1e-4)
    assert m["fresh_ratio"] == pytest.approx(0.91)


def test_stagger_grid_table_and_summary_use_the_median_prediction_of_each_cell():
    from types import SimpleNamespace

    from rt_rl.bench.stagger import grid_table, report

    runs = [
        {"fresh_ratio": f, "predicted": p, "T_ms": 10.6}
        for f, p in ((0.90, 0.99), (0.94, 0.95), (0.91, 0.93))
    ]
    assert "0.910 (0.900-0.940) / 0.950" in grid_table({(1.0, 1): runs}, [1.0], [1])
    a = SimpleNamespace(duration=8.0, latency_periods=[1.0], workers=[1])
    text = report({(1.0, 1): runs}, {}, a, 0.01, [])
    assert "2 of 3 runs, 0 of 1 cell medians" in text  # 0.91 against 0.95: the median misses
