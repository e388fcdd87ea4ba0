from rt_rl.policy.timing_check import (
    ARBITER_DEFAULTS,
    SIM_DEFAULTS,
    configured_differences,
    live_delay_ticks,
    timing_differences,
)

TRAINED = {"control_period": 0.01, "num_workers": 2, "inference_ticks": 2, "fallback": "hold"}


def test_matching_timing_has_no_differences():
    assert timing_differences(TRAINED, control_period=0.01, num_workers=2, lead=0.015) == []


def test_delay_ticks_round_up_to_the_actuating_tick():
    assert live_delay_ticks(0.009, 0.01) == 1
    assert live_delay_ticks(0.010, 0.01) == 1
    assert live_delay_ticks(0.0101, 0.01) == 2
    assert live_delay_ticks(0.0428, 0.01) == 5


def test_each_difference_is_one_line_with_both_values():
    lines = timing_differences(TRAINED, control_period=0.02, num_workers=5, lead=0.0428)
    assert len(lines) == 3
    assert "20 ms live, 10 ms trained" in lines[0]
    assert "5 worker(s) live, 2 trained" in lines[1]
    assert "3 tick(s)" in lines[2] and "D = 2" in lines[2]


def test_delay_inside_the_trained_choices_is_not_a_difference():
    trained = {**TRAINED, "delay_choices": [1, 2, 3]}
    assert timing_differences(trained, control_period=0.01, num_workers=2, lead=0.025) == []
    (line,) = timing_differences(trained, control_period=0.01, num_workers=2, lead=0.035)
    assert "4 tick(s)" in line and "D in [1, 2, 3]" in line


def test_unknown_training_timing_is_not_reported():
    assert timing_differences({}, control_period=0.01, num_workers=3, lead=0.1) == []


def _params(**sections):
    return {name: {"ros__parameters": values} for name, values in sections.items()}


DEMO_LIKE = _params(
    **{"/**": {"num_workers": 2}},
    mujoco_sim={"sensor_rate_hz": 100.0, "episode_seconds": 10.0},
    actuator_arbiter={"control_rate_hz": 100.0, "actuation_delay_ticks": 2},
)
TRAINED_FULL = {**TRAINED, "sensor_period": 0.01, "episode_seconds": 10.0, "delay_choices": [2]}


def test_a_params_file_with_the_trained_timing_has_no_differences():
    assert configured_differences(TRAINED_FULL, DEMO_LIKE) == []


def test_each_configured_difference_names_both_values():
    params = _params(
        **{"/**": {"num_workers": 3}},
        mujoco_sim={"sensor_rate_hz": 250.0},  # episode_seconds left to the node's default (8 s)
        actuator_arbiter={"control_rate_hz": 50.0},  # actuation_delay_ticks left at 0
    )
    lines = configured_differences(TRAINED_FULL, params)
    assert len(lines) == 5
    text = "\n".join(lines)
    assert "20 ms configured, 10 ms trained" in text and "4 ms configured, 10 ms trained" in text
    assert "episodes of 8 s configured, 10 s trained" in text and "3 worker(s) configured, 2 trained" in text
    assert "actuation_delay_ticks 0" in text and "D in [2]" in text


def test_the_check_falls_back_on_the_nodes_own_defaults():
    from rt_rl.nodes import actuator_arbiter, mujoco_sim

    for node, defaults in ((mujoco_sim, SIM_DEFAULTS), (actuator_arbiter, ARBITER_DEFAULTS)):
        declared = {p.name: p.default for p in node.PARAMS}
        for name, value in defaults.items():
            assert declared[name] == value, name


def test_the_launcher_checks_the_demo_params_against_the_shipped_checkpoint_at_start():
    from pathlib import Path

    import yaml

    from rt_rl.launcher import trained_timing_notes

    demo = yaml.safe_load(Path("config/demo.yaml").read_text())
    assert trained_timing_notes(demo) == []  # the demo runs the checkpoint as trained
    demo["actuator_arbiter"]["ros__parameters"]["actuation_delay_ticks"] = 0
    (line,) = trained_timing_notes(demo)
    assert "actuation_delay_ticks 0" in line and "trained for D in [1, 2]" in line
