"""The robot's side as plain Python: update grid, joint layout, reset detection, the robot section."""

import numpy as np
import pytest

from rt_rl.core.observation import JointPicker
from rt_rl.core.robot import JointLayout, ResetDetector, UpdateGrid, command_at
from rt_rl.graph import ParamsFileError, apply_robot_section, describe_graph, robot_mode

HOPPER = ["rootx", "rootz", "rooty", "thigh_joint", "leg_joint", "foot_joint"]


def test_update_grid_publishes_at_its_own_phase_and_takes_commands_every_update():
    grid = UpdateGrid.from_rates(0.002, sensor_rate_hz=100.0, sensor_phase=0.006, controller_rate_hz=500.0)
    assert [n for n in range(20) if grid.publishes(n)] == [3, 8, 13, 18]
    assert all(grid.takes_command(n) for n in range(20))
    slow = UpdateGrid.from_rates(0.002, 100.0, 0.0, 250.0)
    assert [n for n in range(8) if slow.takes_command(n)] == [0, 2, 4, 6]


def test_update_grid_refuses_rates_that_are_not_whole_physics_steps():
    with pytest.raises(ValueError, match="joint-state period 3 ms is not a whole number of 2 ms"):
        UpdateGrid.from_rates(0.002, 1000 / 3, 0.0, 500.0)
    with pytest.raises(ValueError, match=r"sensor_phase 0\.001 s"):
        UpdateGrid.from_rates(0.002, 100.0, 0.001, 500.0)


def test_joint_layout_puts_joints_in_the_robots_order_with_extras_the_picker_takes_back():
    layout = JointLayout(HOPPER, order=list(reversed(HOPPER)), extra=["imu_pan", "imu_tilt"])
    assert layout.names == [*reversed(HOPPER), "imu_pan", "imu_tilt"]
    values = np.arange(6.0)
    published = layout.arrange(values)
    assert list(published) == [5, 4, 3, 2, 1, 0, 0, 0]
    pos, vel = JointPicker(HOPPER)(layout.names, published, published * 10)
    assert list(pos) == list(values) and list(vel) == list(values * 10)


def test_a_missing_joint_is_refused_naming_it():
    names = [n for n in HOPPER if n != "leg_joint"] + ["imu_pan"]
    with pytest.raises(KeyError, match="leg_joint"):
        JointPicker(HOPPER)(names, [0.0] * 6, [0.0] * 6)
    with pytest.raises(ValueError, match="joint_order must name each"):
        JointLayout(HOPPER, order=HOPPER[:-1])
    with pytest.raises(ValueError, match="extra_joints"):
        JointLayout(HOPPER, extra=["rootx"])


def test_reset_detector_tells_a_reset_from_fast_motion():
    d = ResetDetector(0.2)
    assert not d.update(0.00, [0.0, 0.715], [0.0, -1.0])
    # 3 m/s forward for 10 ms: exactly what the velocities explain
    assert not d.update(0.01, [0.03, 0.705], [3.0, -1.0])
    assert not d.update(0.02, [0.06, 0.70], [3.0, -1.0])  # falling
    # back at the start pose, at rest: nothing explains 6 cm back and 55 cm up in 10 ms
    assert d.update(0.03, [0.0, 1.25], [0.0, 0.0])
    assert d.residual > 0.2
    assert not d.update(0.03, [5.0, 0.0], [0.0, 0.0])  # the same stamp again: nothing to compare


def test_command_at_is_the_last_change_at_or_before_a_step():
    commands = [[0, 0.0], [7, 0.5], [12, -0.5]]
    assert command_at(commands, 6) == [0.0]
    assert command_at(commands, 7) == [0.5]
    assert command_at(commands, 30) == [-0.5]


def test_robot_section_spreads_over_the_nodes_and_leaves_out_the_simulator():
    params = {
        "/**": {"ros__parameters": {"task": "Hopper-v5"}},
        "robot": {
            "ros__parameters": {
                "joint_states_topic": "/joint_states",
                "command_topic": "/effort_controller/commands",
                "command_lower": [-0.5] * 3,
            }
        },
        "actuator_arbiter": {"ros__parameters": {"command_lower": [-0.4] * 3}},
    }
    assert robot_mode(params)
    out = apply_robot_section(params)
    assert "robot" not in out
    assert out["sensor_ingest"]["ros__parameters"]["joint_states_topic"] == "/joint_states"
    assert out["sensor_ingest"]["ros__parameters"]["command_topic"] == "/effort_controller/commands"
    assert out["sensor_ingest"]["ros__parameters"]["reset_jump"] == 0.1  # robot mode: resets detected
    assert out["actuator_arbiter"]["ros__parameters"]["command_topic"] == "/effort_controller/commands"
    assert out["actuator_arbiter"]["ros__parameters"]["command_lower"] == [-0.4] * 3  # the node's own wins
    assert "mujoco_sim" not in [n.name for n in describe_graph(2, with_sim=False)]


def test_robot_section_refuses_an_unknown_key_in_one_line():
    params = {"robot": {"ros__parameters": {"joint_state_topic": "/js"}}}
    with pytest.raises(ParamsFileError, match="robot section: unknown key 'joint_state_topic'"):
        apply_robot_section(params)


def test_priority_check_names_every_graph_thread_that_would_preempt_the_robots_control_loop():
    from rt_rl.graph import priority_notes

    params = {
        "mujoco_sim": {"ros__parameters": {"realtime_priority": 80}},  # the robot's stand-in: left out
        "actuator_arbiter": {"ros__parameters": {"realtime_priority": 75}},
        "sensor_ingest": {"ros__parameters": {"realtime_priority": 40}},
    }
    assert priority_notes(params) == ["actuator_arbiter at SCHED_FIFO 75 would preempt the robot's control loop (50)"]
    params["robot"] = {"ros__parameters": {"controller_priority": 40}}
    notes = priority_notes(params)
    assert len(notes) == 3 and "sensor_ingest at SCHED_FIFO 40" in notes[1] and "DDS receive threads" in notes[2]


def test_shipped_configs_stay_below_a_controller_manager():
    import yaml
    from conftest import REPO

    from rt_rl.graph import priority_notes

    for name in ("demo.yaml", "demo_robot.yaml", "bench_100hz.yaml", "halfcheetah_100hz.yaml"):
        assert priority_notes(yaml.safe_load((REPO / "config" / name).read_text())) == [], name
