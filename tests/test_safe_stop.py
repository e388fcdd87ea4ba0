"""The safe stop's core, without ROS: which command, the sequence and when it ends, the command gate."""

import math
import threading

import numpy as np
import pytest

from rt_rl.core.arbiter import ArbiterConfig, ArbiterCore, TickKind
from rt_rl.core.safe_stop import (
    CommandGate,
    SafeStopPlan,
    per_actuator,
    run_safe_stop,
    safe_command,
    safe_stop_plan,
)


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


class FakeWriter:
    """A publisher: what was published when, how many subscribers it has matched, when acks come."""

    def __init__(self, clock: FakeClock, ack_after: float = 0.0, matched_at: float = 0.0, known: int = 2):
        self.clock, self.ack_after, self.matched_at, self.known = clock, ack_after, matched_at, known
        self.sent: list[tuple[float, tuple[float, ...]]] = []
        self.waits: list[float] = []

    def publish(self, command) -> None:
        self.sent.append((self.clock(), tuple(command)))

    def wait_acked(self, timeout: float) -> bool:
        self.waits.append(timeout)
        if self.ack_after <= timeout:
            self.clock.sleep(self.ack_after)
            return True
        self.clock.sleep(timeout)
        return False

    def subscribers(self) -> tuple[int, int]:
        return (self.known if self.clock() >= self.matched_at else 0), self.known


# --- which command ----------------------------------------------------------------------------------


def test_the_safe_command_is_per_actuator_and_clamped_to_the_limits():
    plan = safe_stop_plan({"task": "Hopper-v5", "safe_command": [0.1, -0.1, 0.05]})
    assert plan.command == (0.1, -0.1, 0.05)
    clamped = safe_stop_plan({"task": "Hopper-v5", "safe_command": [2.0, -0.1, 0.05], "command_upper": [0.4]})
    assert clamped.command == (0.4, -0.1, 0.05)
    assert safe_stop_plan({"task": "Hopper-v5", "safe_command": [0.3]}).command == (0.3, 0.3, 0.3)


def test_defaults_are_the_nodes_zero_on_the_default_task():
    plan = safe_stop_plan({})
    assert plan.command == (0.0, 0.0, 0.0)  # Hopper-v5, zero
    assert plan.repeats >= 1 and 0 < plan.ack_timeout <= 2.0 and plan.match_timeout == 0.0
    assert safe_stop_plan({"task": "HalfCheetah-v5"}).command == (0.0,) * 6


@pytest.mark.parametrize(
    "settings",
    [
        {"safe_command": [0.1, 0.2]},  # neither one nor one per actuator
        {"safe_command": [math.inf]},
        {"task": "NoSuchTask-v0"},
        {"safe_stop_repeats": 0},
        {"safe_stop_timeout": 30.0},
    ],
)
def test_a_bad_setting_is_refused(settings):
    with pytest.raises(ValueError):
        safe_stop_plan(settings)


def test_per_actuator_broadcasts_one_value_and_nan_means_default():
    assert per_actuator([0.5], 3, [9.0] * 3, "x") == [0.5, 0.5, 0.5]
    assert per_actuator([math.nan], 2, [-1.0, 1.0], "x") == [-1.0, 1.0]
    assert per_actuator([1, 2], 2, [0.0, 0.0], "x") == [1.0, 2.0]
    with pytest.raises(ValueError, match="needs 3 values"):
        per_actuator([1.0, 2.0], 3, [0.0] * 3, "x")


@pytest.mark.parametrize(
    "safe,lower,upper",
    [([0.1, -0.1, 0.05], [-1.0] * 3, [1.0] * 3), ([2.0, -2.0, 0.5], [-0.4] * 3, [0.4, 0.4, 0.3])],
)
def test_the_stops_command_is_the_watchdogs(safe, lower, upper):
    """One safe command: what the launcher's guard computes from the params is what the arbiter's
    watchdog applies when its actions go stale."""
    core = ArbiterCore(ArbiterConfig(3, safe_command=safe, lower=lower, upper=upper, max_action_age=0.1))
    watchdog = core.tick(1000.0)  # no action ever: the watchdog
    assert watchdog.kind is TickKind.WATCHDOG
    plan = safe_stop_plan({"safe_command": safe, "command_lower": lower, "command_upper": upper})
    np.testing.assert_array_equal(watchdog.command, plan.command)
    np.testing.assert_array_equal(core.safe_command, safe_command(3, safe, lower, upper))


# --- the sequence -----------------------------------------------------------------------------------


def test_the_sequence_publishes_the_safe_command_then_ends_when_acknowledged():
    clock = FakeClock()
    w = FakeWriter(clock, ack_after=0.02)
    plan = SafeStopPlan((0.1, -0.1, 0.05), repeats=3, spacing=0.005, ack_timeout=0.5)
    report = run_safe_stop(plan, w.publish, w.wait_acked, w.subscribers, clock=clock, sleep=clock.sleep)
    assert [c for _, c in w.sent] == [(0.1, -0.1, 0.05)] * 3
    assert [round(t - 100.0, 6) for t, _ in w.sent] == [0.0, 0.005, 0.01]
    assert w.waits == [0.5]  # after the last publish, never before
    assert report.acked and report.published == 3 and report.subscribers == 2
    assert report.seconds == pytest.approx(0.03)
    assert "acknowledged by 2 subscriber(s)" in report.describe()


def test_the_sequence_ends_at_the_timeout_when_a_subscriber_never_acknowledges():
    clock = FakeClock()
    w = FakeWriter(clock, ack_after=math.inf)  # a killed subscriber whose lease has not expired
    plan = SafeStopPlan((0.0,), repeats=2, spacing=0.01, ack_timeout=0.5)
    report = run_safe_stop(plan, w.publish, w.wait_acked, clock=clock, sleep=clock.sleep)
    assert not report.acked and len(w.sent) == 2
    assert report.seconds == pytest.approx(plan.seconds_at_most) == pytest.approx(0.51)
    assert "NOT acknowledged" in report.describe()


def test_a_fresh_publisher_first_matches_the_known_subscribers():
    """The launcher's guard: a new publisher publishes only once it has matched every subscriber the
    graph knows (or when its match timeout has passed), so the first sample reaches them all."""
    clock = FakeClock()
    w = FakeWriter(clock, matched_at=100.3, known=3)
    plan = SafeStopPlan((0.1,), repeats=1, ack_timeout=0.5, match_timeout=1.0)
    report = run_safe_stop(plan, w.publish, w.wait_acked, w.subscribers, clock=clock, sleep=clock.sleep)
    assert w.sent[0][0] >= 100.3 and report.subscribers == report.expected == 3

    clock = FakeClock()
    never = FakeWriter(clock, matched_at=math.inf, known=3)
    report = run_safe_stop(
        plan, never.publish, never.wait_acked, never.subscribers, clock=clock, sleep=clock.sleep
    )
    assert never.sent and never.sent[0][0] == pytest.approx(101.0, abs=0.01)  # published anyway
    assert report.subscribers == 0 and "0 subscriber(s) of 3 known" in report.describe()


def test_a_plan_must_be_finite_and_bounded():
    with pytest.raises(ValueError):
        SafeStopPlan((math.nan,))
    with pytest.raises(ValueError):
        SafeStopPlan(())
    with pytest.raises(ValueError):
        SafeStopPlan((0.0,), repeats=0)
    with pytest.raises(ValueError):
        SafeStopPlan((0.0,), ack_timeout=-1)


# --- the gate ---------------------------------------------------------------------------------------


def test_nothing_passes_the_gate_once_closed():
    gate, out = CommandGate(), []
    assert gate.pass_through(out.append, "policy 1")
    gate.close()
    assert gate.closed
    assert not gate.pass_through(out.append, "policy 2")
    assert out == ["policy 1"]


def test_close_waits_for_a_publish_in_progress():
    """A policy command being published when the stop begins goes out before the safe command, never
    after it."""
    gate, out = CommandGate(), []
    entered, release = threading.Event(), threading.Event()

    def slow_publish(msg) -> None:
        entered.set()
        release.wait(5)
        out.append(msg)

    t = threading.Thread(target=gate.pass_through, args=(slow_publish, "policy"))
    t.start()
    entered.wait(5)
    closer = threading.Thread(target=lambda: (gate.close(), out.append("safe")))
    closer.start()
    closer.join(0.05)
    assert closer.is_alive()  # close() waits for the publish in progress
    release.set()
    t.join(5)
    closer.join(5)
    assert out == ["policy", "safe"]


def test_the_guard_reads_the_params_file_the_arbiter_was_given(tmp_path):
    """The launcher's guard reads the arbiter's safe command and topic from the params file the arbiter
    was started with: in robot mode the robot section's, spread onto the arbiter by expand_params."""
    from rt_rl.graph import expand_params, load_params, node_settings, write_params

    params = {
        "/**": {"ros__parameters": {"task": "Hopper-v5", "policy_checkpoint": "random"}},
        "robot": {
            "ros__parameters": {
                "command_topic": "/effort_controller/commands",
                "command_upper": [0.4, 0.4, 0.4],
                "safe_command": [0.1, -0.1, 0.5],
            }
        },
    }
    given = load_params(write_params(expand_params(params, 1), tmp_path / "params.yaml"))
    settings = node_settings(given, "actuator_arbiter")
    assert settings["command_topic"] == "/effort_controller/commands"
    assert safe_stop_plan(settings).command == (0.1, -0.1, 0.4)  # clamped to the robot's limits
