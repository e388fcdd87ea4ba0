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
    from rt_rl.bench.stagger_numbers import first_above, recovery_time

    # 100 Hz ticks for 3 s after a change at t = 10: bad for 0.6 s, good, one bad burst at 11.5-11.7
    ticks = [(10 + i * 0.01, not (i < 60 or 150 <= i < 170)) for i in range(300)]
    assert first_above(ticks, 10.0, 13.0) == pytest.approx(1.0)  # window 0.75-1.0 is the first good one
    assert recovery_time(ticks, 10.0, 13.0) == pytest.approx(1.75)  # after the burst's window 1.5-1.75
    assert recovery_time([(10 + i * 0.01, True) for i in range(300)], 10.0, 13.0) == 0.0
    assert recovery_time([(10 + i * 0.01, False) for i in range(300)], 10.0, 13.0) is None


def test_stagger_prediction_and_pool_size_follow_paper_a():
    from rt_rl.bench.stagger_numbers import needed_workers, predicted_ratio

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

    from rt_rl.bench.stagger_report import grid_table, report

    runs = [
        {"fresh_ratio": f, "predicted": p, "T_ms": 10.6}
        for f, p in ((0.90, 0.99), (0.94, 0.95), (0.91, 0.93))
    ]
    assert "0.910 (0.900-0.940) / 0.950" in grid_table({(1.0, 1): runs}, [1.0], [1])
    a = SimpleNamespace(duration=8.0, latency_periods=[1.0], workers=[1])
    text = report({(1.0, 1): runs}, {}, a, 0.01, [])
    assert "2 of 3 runs, 0 of 1 cell medians" in text  # 0.91 against 0.95: the median misses


def test_stagger_tick_accounting_separates_the_grids_plan_from_late_actions():
    from rt_rl.bench.stagger_numbers import tick_accounting

    # ticks every 10 ms; slots planned to end 1 ms before ticks 1, 2, 4, 5 (none for tick 3)
    ticks = [[0.01 * k, "fallback", True] for k in range(7)]
    actions = [[0, 0.0, 0.0, 1, 0.0, k, 0.0, 0.0, 0.0, 0.01 * k - 0.001] for k in (1, 2, 4, 5)]
    for k in (1, 2, 3, 5):  # the action planned for tick 4 came late and was actuated at tick 5
        ticks[k][1] = "fresh"
    ticks[3][1] = "fresh"  # a late one from before filled the unplanned tick 3
    ticks[4][1] = "fallback"
    got = tick_accounting(ticks, actions, 0.01)
    # counted from the first slot's end (0.009): ticks 1..6
    assert got == {"planned": 4 / 6, "late": 1 / 6, "fresh_unplanned": 1 / 6}
    assert tick_accounting(ticks, [a[:9] for a in actions], 0.01) is None  # an older probe's records


def test_stagger_misses_table_lists_only_cells_that_miss_theory():
    from rt_rl.bench.stagger_report import misses_table

    hit = {"fresh_ratio": 0.99, "predicted": 1.0, "ticks_planned": 0.99, "ticks_late": 0.0}
    miss = {
        "fresh_ratio": 0.895,
        "predicted": 0.948,
        "grid_ratio": 0.896,
        "grid_spacing_ms": 11.16,
        "ticks_planned": 0.895,
        "ticks_late": 0.023,
        "turnaround_ms_p50": 0.34,
        "observation_wait_ms_mean": 0.12,
    }
    text = misses_table({(4.0, 5): [hit], (1.0, 1): [miss]})
    assert "| 1 | 1 | 0.895 | 0.948 | 0.896 | 11.16 | 0.895 | 0.023 | +0.000 | 0.34 | 0.12 |" in text
    assert "| 4 | 5 |" not in text
    assert misses_table({(4.0, 5): [hit]}) == ""
