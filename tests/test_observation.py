"""The observation builder gives the live graph exactly the training environment's vector."""

import numpy as np
import pytest

from rt_rl.core.mujoco_task import frame_skip_for_rate, joint_state, make_env
from rt_rl.core.observation import ObservationBuilder, reorder_joint_state
from rt_rl.tasks import TASKS, get_task


@pytest.mark.parametrize("name", list(TASKS))
def test_joint_state_path_equals_gymnasium_observation(name):
    """Same MuJoCo state -> JointState fields -> builder == Gymnasium's own _get_obs()."""
    task = get_task(name)
    env = make_env(task, frame_skip=1, episode_seconds=10.0, seed=3)
    builder = ObservationBuilder(task)
    rng = np.random.default_rng(0)
    for _ in range(20):
        env.step(rng.uniform(task.action_low, task.action_high, task.action_dim))
        pos, vel = joint_state(env, task)
        # a robot driver may list joints in any order, with extra joints
        names = [*reversed(task.joint_names), "gripper"]
        shuffled_pos = [*reversed(pos.tolist()), 0.0]
        shuffled_vel = [*reversed(vel.tolist()), 0.0]
        p, v = reorder_joint_state(names, shuffled_pos, shuffled_vel, task.joint_names)
        expected = env.unwrapped._get_obs()
        np.testing.assert_array_equal(builder.raw(p, v), expected)
        np.testing.assert_allclose(builder.build(p, v), expected.astype(np.float32), rtol=0, atol=0)
    env.close()


def test_velocity_clipping_matches_gymnasium_layout():
    task = get_task("Hopper-v5")
    raw = ObservationBuilder(task).raw([0.0] * 6, [100.0, -100.0, 0, 0, 0, 0])
    assert raw.shape == (11,)
    assert raw[5] == 10.0 and raw[6] == -10.0


def test_normalisation_and_history():
    task = get_task("InvertedPendulum-v5")
    b = ObservationBuilder(task, history_length=2, obs_mean=[1, 1, 1, 1], obs_std=[2, 2, 2, 2])
    assert b.size == 4 + 2
    obs = b.build([3, 3], [5, 5])
    np.testing.assert_allclose(obs, [1, 1, 2, 2, 0, 0])
    b.record_command([0.5])
    b.record_command([-0.7])
    b.record_command([0.9])  # only the last two are kept, oldest first
    np.testing.assert_allclose(b.build([1, 1], [1, 1])[-2:], [-0.7, 0.9], rtol=1e-6)
    b.reset()
    np.testing.assert_allclose(b.build([1, 1], [1, 1])[-2:], [0, 0])


def test_missing_joint_and_bad_inputs():
    with pytest.raises(KeyError, match="foot"):
        reorder_joint_state(["a"], [0.0], [0.0], ["a", "foot"])
    with pytest.raises(ValueError, match="velocity"):
        reorder_joint_state(["a"], [0.0], [], ["a"])
    with pytest.raises(ValueError, match="entries"):
        ObservationBuilder(get_task("Hopper-v5"), obs_mean=[0.0])
    with pytest.raises(ValueError, match="unknown task 'Ant-v9'"):
        get_task("Ant-v9")


def test_sensor_rate_must_divide_physics_rate():
    task = get_task("Hopper-v5")  # 2 ms physics
    assert frame_skip_for_rate(task, 250.0) == 2
    assert frame_skip_for_rate(task, 500.0) == 1
    with pytest.raises(ValueError, match="does not divide"):
        frame_skip_for_rate(task, 300.0)
