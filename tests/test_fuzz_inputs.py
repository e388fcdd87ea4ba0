"""Fuzz (hypothesis) of every decision a message from the bus reaches: whatever arrives, nothing raises
beyond the documented refusal, and every command is finite and inside the limits."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rt_rl.core.arbiter import ArbiterConfig, ArbiterCore, TickKind, TimedAction
from rt_rl.core.engage import EngageRamp
from rt_rl.core.observation import JointPicker
from rt_rl.core.robot import ResetDetector, SensorSilence

ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64)
ANY_INT = st.integers(min_value=-(2**63), max_value=2**63 - 1)
LOWER, UPPER, SAFE = [-1.0, -0.5, -1.0], [1.0, 0.5, 1.0], [0.1, -0.1, 0.05]
NOW = 1_000.0


@st.composite
def actions(draw):
    """An Action as a forger could send it: any sizes, values, ids, stamps, timings."""
    size = draw(st.integers(0, 5))
    stamp = draw(st.one_of(ANY_FLOAT, st.floats(NOW - 0.5, NOW + 0.5)))
    return TimedAction(
        np.array(draw(st.lists(ANY_FLOAT, min_size=size, max_size=size)), dtype=np.float64),
        stamp,
        draw(st.one_of(ANY_INT, st.integers(0, 1000))),
        draw(st.one_of(ANY_INT, st.integers(0, 3))),
        episode=draw(st.one_of(ANY_INT, st.integers(-1, 3))),
        input_stamp=draw(st.one_of(ANY_FLOAT, st.just(stamp))),
        slot_end=draw(st.one_of(ANY_FLOAT, st.just(math.nan))),
        inference_time=draw(ANY_FLOAT),
        turnaround=draw(ANY_FLOAT),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(actions(), st.floats(0.0, 0.05)), max_size=30), st.lists(ANY_INT, max_size=3))
def test_arbiter_core_commands_stay_finite_and_limited_whatever_it_is_offered(offers, episodes):
    core = ArbiterCore(ArbiterConfig(3, lower=LOWER, upper=UPPER, safe_command=SAFE, pool_size=4))
    core.set_workers([0, 1, 2, 3])
    now = NOW
    for episode in episodes:
        core.set_episode(episode)
    for action, dt in offers:
        core.offer(action, now)
        now += dt
        decision = core.tick(now)
        assert np.all(np.isfinite(decision.command))
        assert np.all(decision.command >= np.array(LOWER)) and np.all(decision.command <= np.array(UPPER))
        if decision.kind is TickKind.FRESH:
            assert decision.action is not None and now - decision.action.observation_stamp <= 0.25


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(max_size=8), max_size=8),
    st.lists(ANY_FLOAT, max_size=8),
    st.lists(ANY_FLOAT, max_size=8),
)
def test_joint_picker_refuses_a_malformed_joint_state_with_value_or_key_error(names, pos, vel):
    picker = JointPicker(["a", "b"])
    try:
        p, v = picker(names, pos, vel)
    except (ValueError, KeyError):
        return
    assert np.all(np.isfinite(p)) and np.all(np.isfinite(v)) and len(p) == len(v) == 2


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(ANY_FLOAT, st.lists(st.floats(-10, 10), min_size=3, max_size=3)), max_size=20))
def test_reset_detector_and_sensor_silence_take_any_stamp(samples):
    detector, silence = ResetDetector(0.1), SensorSilence(0.05)
    for stamp, pos in samples:
        detector.update(stamp, np.array(pos), np.zeros(3))
        build, _event = silence.update(NOW, stamp)
        assert isinstance(build, bool)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(ANY_FLOAT, min_size=3, max_size=3), st.sampled_from(["a", "d", None])), max_size=40
    )
)
def test_the_engage_ramp_never_publishes_a_bigger_step_than_configured(steps):
    ramp = EngageRamp(np.array(SAFE), 0.1, 20.0, np.array(LOWER), np.array(UPPER))
    last = None
    for policy, request in steps:
        if request == "a":
            ramp.activate(np.array(policy))
        elif request == "d":
            ramp.deactivate()
        was = ramp.state.value
        # the arbiter's decision is finite (it clamps); a ramp sees what the core gives it
        out = ramp.step(np.clip(np.nan_to_num(np.array(policy)), -1, 1), 0.01)
        if out is not None and last is not None and was in ("engaging", "disengaging"):
            assert np.max(np.abs(out - last)) <= 0.2 + 1e-9
        last = out if out is not None else last
