"""`rt-rl bench twin`: the live delay in ticks is the twin's quantity, tick for tick (no ROS)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from rt_rl.bench.twin import (
    counted,
    delay_table,
    live_delays,
    live_like_ticks,
    main,
    max_difference,
    observation_stamp,
    return_table,
    run_params,
    shares,
    tick_delay,
    twin_setup,
    twin_shares,
    twin_trace,
)
from rt_rl.learning.timing_env import Timing
from rt_rl.policy.runtime import read_policy_info

REPO = Path(__file__).resolve().parents[1]
P = 0.01


@pytest.mark.parametrize(
    "delay,workers,calls",
    [(2, 2, 1), (1, 2, 1), (3, 2, 1), (2, 1, 0), (0, 1, 0), (4, 5, 1), (3, 2, 4), (6, 3, 1)],
)
def test_live_like_trace_of_the_twin_gives_the_twin_s_delays_tick_for_tick(delay, workers, calls) -> None:
    timing = Timing(P, P, 5, delay, workers)  # 100 Hz control and sensing, as config/demo.yaml
    trace = twin_trace("Hopper-v5", timing, calls, 200)
    assert len(trace) == 200 and [t.tick for t in trace] == list(range(200))
    twin = [t.delay for t in trace]  # None where the tick actuates nothing that depends on an observation
    actuated = [d for d in twin if d is not None]
    # the twin's own time model gives the module doc's count: D + calls * N * s
    assert actuated and set(actuated) == {delay + calls * timing.worker_stride}
    rng = np.random.default_rng(delay * 10 + workers)
    per_observation = {t.observation_tick: float(rng.uniform(0, 0.99 * P)) for t in trace if t.actuated}
    for tick_phase in (0.0, 0.0037, 0.0091):
        for lead in (0.0, 0.3 * P, 0.99 * P, per_observation):  # the sample anywhere before its tick
            records = live_like_ticks(trace, P, tick_phase=tick_phase, sample_lead=lead)
            live = [tick_delay(r[0], observation_stamp(r), P) if counted(r) else None for r in records]
            assert live == twin
            assert live_delays(records, P) == actuated


def test_a_sample_after_a_tick_counts_from_the_next_tick() -> None:
    start = 1.7e9
    assert tick_delay(start + 4 * P, start, P) == 4  # sampled on tick 0
    assert tick_delay(start + 4 * P, start - 0.6 * P, P) == 4  # before tick 0: newest at tick 0
    assert tick_delay(start + 4 * P, start + 0.2 * P, P) == 3  # after tick 0: newest at tick 1


def test_the_count_is_the_sim_steps_between_the_sensed_state_and_the_one_the_command_drives() -> None:
    """The live sim: wakes every P, stamps the state c after its wake, steps with the newest command a
    tick decided at least `transit` before. The count is the twin's D (steps between the sensed state and
    the state the command first steps from) except for a tick less than c + transit before a stamp."""
    c, transit = 0.0003, 0.0005
    for offset in (np.arange(400) + 0.5) * P / 400:  # ticks at any phase against the sim's wakes
        for i in range(3):  # the sensed state: x_i, made by the step at wake i, stamped i * P + c
            stamp = i * P + c
            for k in range(i + 1, i + 7):
                tick = k * P + offset
                applied = math.ceil((tick + transit) / P - 1e-9)  # the first wake the command makes
                steps = applied - 1 - i  # it steps x_{applied - 1}: that many steps after x_i
                before_stamp = (stamp - tick) % P
                short = 0 < before_stamp <= c + transit + 1e-12
                assert tick_delay(tick, stamp, P) == steps - short


def test_fallback_watchdog_and_out_of_window_ticks_are_not_actuated_actions() -> None:
    t0 = 1.7e9
    ticks = [
        [t0, "fresh", True, 0.0333, 0, 10, t0 - 0.0333],
        [t0 + P, "fallback", True, 0.0433, -1, -1, 0.0],  # holds the last action: its age, no stamp
        [t0 + 2 * P, "watchdog", True, float("nan"), -1, -1, 0.0],
        [t0 + 3 * P, "fresh", False, 0.0333, 1, 11, t0 + 3 * P - 0.0333],  # before the window opened
        [t0 + 4 * P, "fresh", True, 0.0152, 1, 12],  # an older probe: no stamp field, age instead
    ]
    assert [counted(r) for r in ticks] == [True, False, False, False, True]
    assert live_delays(ticks, P) == [3, 1]


def test_shares_sum_to_one_and_the_table_compares_each_delay() -> None:
    assert shares([3, 4, 4, 3, 4]) == {3: 0.4, 4: 0.6}
    assert shares([]) == {}
    runs = [shares([3] * 9 + [4]), shares([3] * 10), shares([3] * 8 + [4] * 2)]
    assert all(sum(r.values()) == pytest.approx(1.0) for r in runs)
    twin = {4: 1.0}
    assert max_difference(runs, twin) == pytest.approx(1.0)  # the run with no action at 4
    table = delay_table(runs, twin)
    rows = [line for line in table.splitlines() if line.startswith("| 3 ") or line.startswith("| 4 ")]
    assert rows[0] == "| 3 | 0.900 (0.800-1.000) | 0.000 | +0.900 |"
    assert rows[1] == "| 4 | 0.100 (0.000-0.200) | 1.000 | -0.900 |"
    assert "1.000 (NOT within 0.05)" in table
    close = [{3: 0.03, 4: 0.97}, {4: 1.0}]
    assert max_difference(close, twin) == pytest.approx(0.03)
    assert "0.030 (within 0.05)" in delay_table(close, twin)


def test_twin_shares_weight_each_delay_choice_as_reset_draws_it() -> None:
    timing = Timing(P, P, 5, 2, 2)  # nominal D = 2: s = 1, a worker's stride 2 ticks
    mixed = twin_shares("Hopper-v5", timing, 1, 150, delay_choices=[1, 2, 2, 3])
    assert mixed == pytest.approx({3: 0.25, 4: 0.5, 5: 0.25})


def _probe(path: Path, age: float, n: int = 50) -> Path:
    t0 = 1.7e9
    ticks = [[t0 + k * P, "fresh", True, age, k % 2, k, t0 + k * P - age] for k in range(n)]
    ticks[7] = [t0 + 7 * P, "fallback", True, age + P, -1, -1, 0.0]
    path.write_text(json.dumps({"ticks": ticks, "actions": [], "changed": {}}))
    return path


def test_from_probe_prints_the_live_table_beside_the_demo_twin(tmp_path, capsys) -> None:
    probe = _probe(tmp_path / "probe.json", 0.0333)
    out = tmp_path / "bench_twin"
    argv = ["--params", str(REPO / "config/demo.yaml"), "--from-probe", str(probe)]
    assert main([*argv, "--out", str(out), "--twin-ticks", "200"]) == 0
    printed = capsys.readouterr().out
    # 49 actions 33 ms after their sample; the demo: D = 1 pinned, N = 2, one call back: 3 ticks
    assert "| 3 | 1.000 | 1.000 | +0.000 |" in printed
    assert out.with_suffix(".md").read_text() in printed
    raw = json.loads(out.with_suffix(".json").read_text())
    assert raw["twin"]["shares"] == {"3": 1.0} and raw["runs"][0]["actuated"] == 49
    assert raw["max_difference"] == pytest.approx(0.0)


def test_bad_input_is_one_line(tmp_path, capsys) -> None:
    assert main(["--params", str(tmp_path / "missing.yaml"), "--from-probe", "x.json"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"rt-rl bench twin: error: params file '{tmp_path / 'missing.yaml'}' not found"
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["--params", str(REPO / "config/demo.yaml"), "--from-probe", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has no 'ticks' list" in err


def test_return_table_pools_the_runs_episodes_and_judges_the_15_percent():
    text, out = return_table([[1000.0, 1200.0], [900.0]], [1000.0, 1100.0, 1200.0])
    assert out["live_episodes"] == 3 and out["live_mean"] == pytest.approx(1033.33, abs=0.01)
    assert out["live_run_means"] == [1100.0, 900.0]
    assert out["relative_difference"] == pytest.approx(-0.0606, abs=1e-3)
    assert "(within 15 %)" in text
    text, out = return_table([[500.0]], [1000.0])
    assert "NOT within" in text and out["relative_difference"] == pytest.approx(-0.5)
    text, out = return_table([[]], [1000.0])
    assert "no return comparison" in text and "live_mean" not in out


def test_return_table_compares_with_the_twins_first_20_episodes_and_with_all_of_them():
    twin = [1300.0] * 20 + [1000.0] * 80  # the first 20 seeds happen to be the good ones
    text, out = return_table([[1050.0, 1150.0]], twin)
    assert out["twin_mean"] == pytest.approx(1300.0) and out["relative_difference"] == pytest.approx(
        -0.1538, abs=1e-3
    )
    assert out["twin_mean_all"] == pytest.approx(1060.0)
    assert out["relative_difference_all"] == pytest.approx(40 / 1060, abs=1e-4)
    assert (
        "first 20 episodes: -15.4 % (NOT within 15 %)" in text
        and "Over all 100: +3.8 % (within 15 %)" in text
    )
    assert out["live_se"] == pytest.approx(50.0) and out["live_returns"] == [1050.0, 1150.0]
    _, out = return_table([[1000.0]], [1000.0] * 20)
    assert "twin_mean_all" not in out


def test_the_twin_runs_the_delay_the_params_pin_not_the_training_distribution() -> None:
    params = yaml.safe_load((REPO / "config/demo.yaml").read_text())
    assert read_policy_info(params["/**"]["ros__parameters"]["policy_checkpoint"]).timing[
        "delay_choices"
    ] == [1, 1, 2]
    pinned = twin_setup(params)
    assert pinned.delay_choices == [1] and "actuation_delay_ticks" in pinned.describe()
    params["actuator_arbiter"]["ros__parameters"]["actuation_delay_ticks"] = 0  # delay follows inference
    assert twin_setup(params).delay_choices == [1, 1, 2]
    assert twin_setup(params, delay=3).delay_choices == [3]


def test_each_live_run_resets_its_episodes_from_its_own_seed() -> None:
    params = yaml.safe_load((REPO / "config/demo.yaml").read_text())
    seeds = [run_params(params, i)["mujoco_sim"]["ros__parameters"]["seed"] for i in range(3)]
    assert seeds == [0, 1000, 2000]
    assert "seed" not in params["mujoco_sim"]["ros__parameters"]  # the caller's params stay as given
    assert run_params(params, 1)["actuator_arbiter"] == params["actuator_arbiter"]
    params["/**"]["ros__parameters"]["seed"] = 7  # a seed given to every node counts for the sim too
    assert run_params(params, 2)["mujoco_sim"]["ros__parameters"]["seed"] == 2007
