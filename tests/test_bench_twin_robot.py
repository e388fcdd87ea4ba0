"""bench twin's delay at the robot's actuation (in its update steps), from probe records (no ROS)."""

import pytest

from rt_rl.bench.twin import grid_reference, interarrival_ms, live_robot_delays


def records(n: int, tick_after_sample: float, transit: float, h: float = 0.002, P: float = 0.01):
    """Samples on a 2 ms grid (stamped 0.1 ms after their update), ticks `tick_after_sample` after each
    sample, every command arriving `transit` after its tick; each action depends on the sample 4 ticks
    before its tick (a pipelined policy's worker call back)."""
    t0 = 1000.0
    samples = [t0 + k * P + 1e-4 for k in range(n)]
    ticks, commands = [], []
    for k in range(4, n):
        tick = t0 + k * P + tick_after_sample
        data = [0.001 * k, -0.001 * k, 0.0]
        ticks.append([tick, "fresh", True, 0.0, 0, k, samples[k - 4], 0, data])
        commands.append([tick + transit, *data])
    return ticks, commands, samples


def test_grid_reference_sits_at_the_earliest_stamp_phase():
    samples = [5.0001, 5.0102, 5.0201]
    assert grid_reference(samples, 0.002) == pytest.approx(5.0001, abs=1e-9)


@pytest.mark.parametrize(("after", "transit", "steps"), [(0.004, 0.0005, 23), (0.004, 0.0025, 24), (0.0005, 0.0003, 21)])
def test_each_command_acts_from_the_first_update_after_it_arrives(after, transit, steps):
    ticks, commands, samples = records(50, after, transit)
    got, offsets = live_robot_delays(ticks, commands, samples, 0.01, 0.002)
    assert set(got) == {steps}
    assert all(o == pytest.approx(after + transit, abs=2e-4) for o in offsets)


def test_a_command_never_seen_arriving_is_left_out():
    ticks, commands, samples = records(20, 0.004, 0.0005)
    got, _ = live_robot_delays(ticks, commands[:5], samples, 0.01, 0.002)
    assert len(got) == 5


def test_command_interarrival_percentiles():
    ticks, commands, _ = records(200, 0.004, 0.0005)
    p50, p99, worst = interarrival_ms(commands, ticks)
    assert p50 == pytest.approx(10.0) and p99 == pytest.approx(10.0) and worst == pytest.approx(10.0)
