from rt_rl.policy.timing_check import live_delay_ticks, timing_differences

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
