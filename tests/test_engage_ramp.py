"""EngageRamp: what the arbiter publishes while it engages, runs and hands back (no ROS)."""

import numpy as np
import pytest

from rt_rl.core.engage import Engagement, EngageRamp

P = 0.01  # control period, s
SAFE = np.zeros(3)


def run(ramp: EngageRamp, policy, ticks: int) -> list:
    return [ramp.step(policy(t), P) for t in range(ticks)]


def test_inactive_publishes_nothing():
    ramp = EngageRamp(SAFE, 0.5, 20.0)
    assert run(ramp, lambda t: np.ones(3), 5) == [None] * 5
    assert ramp.ticks["inactive"] == 5 and not ramp.publishing


def test_engaging_bounds_each_tick_change_and_reaches_the_policy():
    ramp = EngageRamp(SAFE, 0.2, 20.0)
    ramp.activate(np.array([0.5, -0.5, 0.0]))
    rng = np.random.default_rng(0)
    out = run(ramp, lambda t: rng.uniform(-1, 1, 3), 200)
    steps = np.abs(np.diff(np.array([np.array([0.5, -0.5, 0.0]), *out]), axis=0))
    engaging = ramp.ticks["engaging"]
    assert 20 <= engaging < 200  # at least the ramp time, and it ends
    assert steps[:engaging].max() <= 20.0 * P + 1e-12
    assert ramp.state is Engagement.ACTIVE


def test_engaging_starts_from_the_robots_command():
    ramp = EngageRamp(SAFE, 0.5, 20.0)
    ramp.activate(np.array([0.8, 0.8, 0.8]))
    first = ramp.step(np.full(3, -1.0), P)
    assert np.all(first >= 0.8 - 20.0 * P - 1e-12)


def test_active_passes_the_policy_command_unchanged():
    ramp = EngageRamp(SAFE, 0.0, 20.0)
    ramp.activate(None)
    ramp.step(np.zeros(3), P)  # caught at once: zero ramp, same command
    cmd = np.array([1.0, -1.0, 0.3])
    assert np.array_equal(ramp.step(cmd, P), cmd)


def test_disengaging_ends_on_the_safe_command_then_nothing():
    safe = np.array([0.1, 0.2, 0.3])
    ramp = EngageRamp(safe, 0.1, 10.0)
    ramp.activate(None)
    run(ramp, lambda t: np.ones(3), 50)
    assert ramp.state is Engagement.ACTIVE
    ramp.deactivate()
    out = run(ramp, lambda t: -np.ones(3), 100)
    published = [o for o in out if o is not None]
    assert np.array_equal(published[-1], safe)
    assert all(o is None for o in out[len(published) :])
    steps = np.abs(np.diff(np.array([np.ones(3), *published]), axis=0))
    assert steps.max() <= 10.0 * P + 1e-12
    assert ramp.state is Engagement.INACTIVE and ramp.ticks["disengaging"] == len(published)


def test_activate_during_hand_back_starts_from_the_output():
    ramp = EngageRamp(SAFE, 0.1, 10.0)
    ramp.activate(None)
    run(ramp, lambda t: np.ones(3), 50)
    ramp.deactivate()
    last = run(ramp, lambda t: np.ones(3), 3)[-1]
    ramp.activate(np.full(3, -5.0))  # the robot's topic is ours: the output is where the robot is
    nxt = ramp.step(np.ones(3), P)
    assert np.abs(nxt - last).max() <= 10.0 * P + 1e-12


def test_a_non_finite_start_is_replaced_by_the_safe_command():
    ramp = EngageRamp(SAFE, 0.5, 20.0)
    ramp.activate(np.array([np.nan, 0.0, 0.0]))
    assert np.all(np.abs(ramp.step(np.ones(3), P)) <= 20.0 * P + 1e-12)


@pytest.mark.parametrize("ramp_time, rate", [(-1.0, 1.0), (0.5, 0.0), (float("nan"), 1.0)])
def test_bad_ramp_settings_are_refused(ramp_time, rate):
    with pytest.raises(ValueError):
        EngageRamp(SAFE, ramp_time, rate)
