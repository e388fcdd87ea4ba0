"""The benchmark's tables: median (min-max) over the runs, never the best run."""

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
