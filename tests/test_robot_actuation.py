"""The twin's actuation model (commands acting from a physics step inside the period) against MuJoCo
stepped by hand and against a trace recorded from the live robot profile."""

import json
import math

import numpy as np
import pytest
from conftest import REPO, run_cli

from rt_rl.core.mujoco_task import SubstepStepper, make_env
from rt_rl.core.robot import command_at
from rt_rl.learning.timing_env import TimingEnv, switch_control
from rt_rl.tasks import get_task

HOPPER = get_task("Hopper-v5")


def test_substep_stepper_with_a_constant_control_is_gymnasiums_step():
    a = np.array([0.3, -0.2, 0.5])
    plain, split = make_env(HOPPER, 5, 10.0, seed=4), make_env(HOPPER, 5, 10.0, seed=4)
    stepper = SubstepStepper(split)
    for _ in range(20):
        o1, r1, *_ = plain.step(a)
        o2, r2, *_ = stepper.step(lambda i: a)
        assert np.array_equal(o1, o2) and r1 == pytest.approx(r2, abs=1e-12)


def test_control_cost_is_the_time_average_over_the_physics_steps():
    env = make_env(HOPPER, 5, 10.0, seed=4)
    before, after = np.zeros(3), np.array([1.0, -1.0, 0.5])
    *_, info = SubstepStepper(env).step(switch_control(before, after, 3))
    expected = 1e-3 * 2 / 5 * float(np.sum(after**2))  # Hopper-v5 ctrl_cost_weight 1e-3, 2 of 5 steps
    assert -info["reward_ctrl"] == pytest.approx(expected, rel=1e-9)


def test_an_offset_delays_each_command_by_whole_physics_steps_inside_its_period():
    # offset 5 ms, 2 ms steps: each tick's command acts from its 3rd step; before it the previous one
    env = TimingEnv("Hopper-v5", frame_skip=5, inference_ticks=0, actuation_offset=(0.005, 0.005))
    env.reset(seed=7)
    ref = make_env(HOPPER, 5, 10.0, seed=7)
    stepper = SubstepStepper(ref)
    rng = np.random.default_rng(0)
    previous = np.zeros(3)
    for _ in range(30):
        a = rng.uniform(-1, 1, 3)
        _, _, term, _, info = env.step(a)
        assert info["ticks"][0]["acts_from"] == 3
        stepper.step(switch_control(previous, a, 3))
        previous = a
        assert np.array_equal(env.env.unwrapped.data.qpos, ref.unwrapped.data.qpos)
        if term:
            break


def test_offset_zero_is_the_instant_actuation_of_a_step_simulator():
    a_env = TimingEnv("Hopper-v5", frame_skip=5, inference_ticks=1)
    b_env = TimingEnv("Hopper-v5", frame_skip=5, inference_ticks=1, actuation_offset=(0.0, 0.0))
    oa, _ = a_env.reset(seed=3)
    ob, _ = b_env.reset(seed=3)
    rng = np.random.default_rng(1)
    for _ in range(40):
        a = rng.uniform(-1, 1, 3)
        oa, ra, *_ = a_env.step(a)
        ob, rb, *_ = b_env.step(a)
        assert np.array_equal(oa, ob) and ra == rb


def test_offsets_are_drawn_per_episode_and_from_live_samples_per_tick():
    env = TimingEnv("Hopper-v5", frame_skip=5, actuation_offset=(0.0, 0.010))
    drawn = {env.reset(seed=s)[1]["offset"] for s in range(5)}
    assert len(drawn) == 5 and all(0.0 <= x <= 0.010 for x in drawn)
    live = TimingEnv("Hopper-v5", frame_skip=5, offset_samples=[0.0031, 0.0059])
    live.reset(seed=0)
    steps = {rec["acts_from"] for _ in range(20) for rec in live.step(np.zeros(3))[4]["ticks"]}
    assert steps == {2, 3}
    with pytest.raises(ValueError, match="actuation_offset"):
        TimingEnv("Hopper-v5", actuation_offset=(0.004, 0.002))


ROBOT_GRAPH = """
/**:
  ros__parameters:
    task: Hopper-v5
    num_workers: 1
    policy_checkpoint: random
robot:
  ros__parameters:
    joint_states_topic: /robot/joint_states
    joint_names: [rootx, rootz, rooty, thigh_joint, leg_joint, foot_joint]
    command_topic: /robot/effort_controller/commands
    sensor_rate_hz: 100.0
actuator_arbiter:
  ros__parameters:
    control_rate_hz: 100.0
    sensor_offset: 0.004
"""


def robot_profile(trace: str) -> str:
    text = (REPO / "config" / "robots" / "hopper.yaml").read_text()
    text = text.replace("joint_states_topic: /joint_states", "joint_states_topic: /robot/joint_states")
    text = text.replace("command_topic: /effort_controller/commands", "command_topic: /robot/effort_controller/commands")
    text = text.replace("publish_episodes: false", "publish_episodes: false\n    terminate_when_unhealthy: false")
    return text + f"    trace_path: {trace}\n    trace_seconds: 60.0\n"


@pytest.mark.graph
def test_the_twins_actuation_replays_a_recorded_robot_trace_step_for_step(ros_env, tmp_path):
    """The ros2_control-like robot, driven by the graph in robot mode, records each command it applied
    at each physics step and its state; the twin's model (one command change per period, acting from a
    physics step, `switch_control` as TimingEnv uses it) replays the same commands to the same states."""
    graph, robot, trace = tmp_path / "graph.yaml", tmp_path / "robot.yaml", tmp_path / "trace.json"
    graph.write_text(ROBOT_GRAPH)
    robot.write_text(robot_profile(str(trace)))
    proc = run_cli(["launch", str(graph), "--robot", str(robot), "--duration", "3", "--run-dir", str(tmp_path / "run")], ros_env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["control"]["rate_hz_achieved"] == pytest.approx(100, rel=0.05)
    t = json.loads(trace.read_text())
    states, commands = t["states"], t["commands"]
    assert len(states) >= 1500 and len(commands) > 200  # from the robot's start to its stop; 3 s measured
    fs = t["frame_skip"]
    env = make_env(HOPPER, fs, t["episode_seconds"], seed=t["seed"], terminate_when_unhealthy=False)
    stepper, worst, changes_per_period = SubstepStepper(env), 0.0, []
    data = env.unwrapped.data
    for first in range(0, len(states) - fs, fs):
        changes = [c for c in commands if first < c[0] < first + fs]
        changes_per_period.append(len(changes))
        if len(changes) > 1:  # outside the twin's model (one change per period): counted, asserted below
            stepper.step(lambda i, f=first: command_at(commands, f + i))
            continue
        before = np.array(command_at(commands, first))
        after = np.array(command_at(commands, first + fs - 1))
        at = int(changes[0][0]) - first if changes else fs
        stepper.step(switch_control(before, after, at))
        recorded = np.array(states[first + fs][1:])
        # the recorder read the joint state through the node (qpos/qvel of the task's joints)
        replay = np.concatenate((data.qpos[:6], data.qvel[:6]))
        worst = max(worst, float(np.max(np.abs(replay - recorded))))
    # the twin's model: one command change per period; a command delayed past the next one's (a
    # loaded machine) puts two in one period, replayed above step by step: rare
    assert sum(c > 1 for c in changes_per_period) <= 0.02 * len(changes_per_period), changes_per_period
    assert worst <= 1e-9, f"replay differs from the robot by {worst}"
    assert math.isfinite(worst)


@pytest.mark.graph
def test_robot_mode_sees_each_robot_reset_and_restarts_the_policy_state(ros_env, tmp_path):
    """No episode topic: the robot falls and is reset; the ingest sees each reset in the joint state,
    starts a new episode (history zeroed), the workers reset their pipelines and the arbiter rejects
    the old episode's actions in flight."""
    graph, robot = tmp_path / "graph.yaml", tmp_path / "robot.yaml"
    graph.write_text(ROBOT_GRAPH)
    text = robot_profile(str(tmp_path / "trace.json")).replace("\n    terminate_when_unhealthy: false", "")
    robot.write_text(text)
    proc = run_cli(["launch", str(graph), "--robot", str(robot), "--duration", "5", "--run-dir", str(tmp_path / "run")], ros_env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    falls = s["sim"]["episodes_since_start"]
    assert falls >= 3  # a random policy falls within a second or two
    assert s["ingest"]["resets_seen"] in (falls - 1, falls)  # the last reset may come after the last build
    assert s["ingest"]["episode"] == s["ingest"]["resets_seen"]
    assert s["workers"][0]["pipeline_resets"] >= s["ingest"]["resets_seen"]
