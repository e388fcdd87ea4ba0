"""The policy contract: validation with one-line errors, fitting to a task, and the observation and
command it builds (no ROS, no model runtime)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from rt_rl.core.mujoco_task import joint_state, make_env
from rt_rl.core.observation import JointPicker, ObservationBuilder
from rt_rl.policy.contract import (
    ActionMapper,
    ObservationMapper,
    check_task,
    contract_from_dict,
    load_contract,
    sibling_contract,
)
from rt_rl.tasks import get_task

REPO = Path(__file__).resolve().parents[1]
HOPPER = get_task("Hopper-v5")


def docs_example() -> dict:
    """The Hopper-v5 contract in docs/policy_contract.md (so the documented example is tested)."""
    text = (REPO / "docs" / "policy_contract.md").read_text()
    section = text.split("## Hopper-v5 example", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    return yaml.safe_load(block.group(1))


def test_documented_hopper_example_is_valid_and_fits_hopper():
    c = contract_from_dict(docs_example(), "docs")
    check_task(c, HOPPER)
    assert c.input_size == 11 and c.previous_actions == 0 and c.control_period == 0.008
    assert c.timing() == {"control_period": 0.008}


def test_contract_observation_equals_gymnasium_observation_from_robot_joint_states():
    """Same MuJoCo state -> JointState in the robot's order with extra joints -> ingest vector ->
    contract mapping == Gymnasium's own observation."""
    robot = yaml.safe_load((REPO / "config" / "robots" / "hopper.yaml").read_text())
    order = robot["mujoco_sim"]["ros__parameters"]["joint_order"]
    extras = robot["mujoco_sim"]["ros__parameters"]["extra_joints"]
    mapper = ObservationMapper(contract_from_dict(docs_example()), HOPPER, ingest_history=0)
    builder, picker = ObservationBuilder(HOPPER), JointPicker(HOPPER.joint_names)
    env = make_env(HOPPER, frame_skip=1, episode_seconds=10.0, seed=5)
    rng = np.random.default_rng(1)
    for _ in range(30):
        env.step(rng.uniform(-1, 1, 3))
        pos, vel = joint_state(env, HOPPER)
        index = [HOPPER.joint_names.index(n) for n in order]
        names = [*order, *extras]
        p, v = picker(names, [*pos[index], 0.0, 0.0], [*vel[index], 0.0, 0.0])
        got = mapper(builder.build(p, v))
        np.testing.assert_allclose(got, env.unwrapped._get_obs().astype(np.float32), rtol=0, atol=0)
    env.close()


def bad(mutate) -> dict:
    d = copy.deepcopy(docs_example())
    mutate(d)
    return d


def _set(path: list, value):
    def mutate(d):
        node = d
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value

    return mutate


@pytest.mark.parametrize(
    "mutate, key, why",
    [
        (_set(["observaton"], {}), "(top level)", "unknown key 'observaton'"),
        (lambda d: d.pop("action"), "action", "missing"),
        (_set(["format"], "rt_rl.contract/9"), "format", "must be rt_rl.contract/1"),
        (_set(["observation", "terms"], []), "observation.terms", "non-empty list"),
        (
            _set(["observation", "terms", 0, "type"], "joint_position"),
            "observation.terms[0].type",
            "must be one of",
        ),
        (_set(["observation", "terms", 0, "scael"], 2.0), "observation.terms[0]", "unknown key 'scael'"),
        (
            _set(["observation", "terms", 0, "scale"], [1.0, 2.0]),
            "observation.terms[0].scale",
            "has 2 entries",
        ),
        (_set(["observation", "terms", 1, "clip"], [10, -10]), "observation.terms[1].clip", "must be < high"),
        (
            _set(["observation", "terms", 1, "joints"], ["rootz", "rootz"]),
            "observation.terms[1].joints",
            "twice",
        ),
        (_set(["observation", "history", "length"], 0), "observation.history.length", "integer >= 1"),
        (_set(["observation", "history", "layout"], "stacked"), "observation.history.layout", "frame_major"),
        (_set(["action", "joints"], []), "action.joints", "non-empty list"),
        (_set(["action", "scale"], "big"), "action.scale", "finite number"),
        (
            _set(["model", "state"], [{"input": "h", "output": "h2", "shape": [0]}]),
            "model.state[0].shape",
            ">= 1",
        ),
        (_set(["model", "state"], [{"input": "h", "shape": [1]}]), "model.state[0].output", "missing"),
        (_set(["model", "output_delay"], -1), "model.output_delay", ">= 0"),
        (_set(["timing", "control_period"], 0), "timing.control_period", "> 0"),
        (_set(["default_pose"], [0.1]), "default_pose", "mapping"),
    ],
)
def test_bad_contract_is_refused_with_one_line_naming_the_key(mutate, key, why):
    with pytest.raises(ValueError) as err:
        contract_from_dict(bad(mutate), "c.yaml")
    msg = str(err.value)
    assert msg.startswith(f"contract 'c.yaml': {key}: ") and why in msg and "\n" not in msg


@pytest.mark.parametrize(
    "mutate, why",
    [
        (
            _set(["observation", "terms", 0, "joints"], ["rootz", "thigh"]),
            "joint 'thigh' is not a joint of Hopper-v5",
        ),
        (_set(["observation", "terms", 0, "joints"], ["rootx"]), "position of 'rootx' is not in Hopper-v5"),
        (_set(["action", "joints"], ["thigh_joint", "leg_joint"]), "misses foot_joint"),
        (_set(["action", "joints"], ["rootz", "leg_joint", "foot_joint"]), "joint 'rootz' is not actuated"),
        (_set(["task"], "Walker2d-v5"), "is Walker2d-v5, the graph runs Hopper-v5"),
    ],
)
def test_contract_that_does_not_fit_the_task_is_refused(mutate, why):
    with pytest.raises(ValueError, match=re.escape(why)) as err:
        check_task(contract_from_dict(bad(mutate), "c.yaml"), HOPPER)
    assert "\n" not in str(err.value)


def test_unreadable_or_invalid_yaml_files_are_one_line(tmp_path):
    with pytest.raises(ValueError, match="is not a readable file"):
        load_contract(tmp_path / "none.yaml")
    p = tmp_path / "c.yaml"
    p.write_text("observation: [unclosed\n")
    with pytest.raises(ValueError, match="is not valid YAML") as err:
        load_contract(p)
    assert "\n" not in str(err.value)
    assert sibling_contract("a/b/model.onnx") == Path("a/b/model.contract.yaml")


def _vector(pos5, vel6, history=()):
    return np.concatenate([pos5, vel6, *history]).astype(np.float64)


def test_terms_scale_offset_clip_relative_and_constant():
    d = {
        "observation": {
            "terms": [
                {
                    "type": "joint_pos",
                    "joints": ["leg_joint", "rootz"],
                    "relative": True,
                    "scale": [2.0, 1.0],
                },
                {"type": "joint_vel", "joints": ["foot_joint"], "offset": 1.0, "scale": 0.5, "clip": [-1, 1]},
                {"type": "constant", "values": [7.0, 8.0]},
            ]
        },
        "action": {"joints": ["thigh_joint", "leg_joint", "foot_joint"]},
        "default_pose": {"leg_joint": 0.25},
    }
    m = ObservationMapper(contract_from_dict(d), HOPPER, 0)
    pos = [1.0, 0.1, 0.2, 0.5, 0.4]  # rootz rooty thigh leg foot
    vel = [0, 0, 0, 0, 0, 9.0]
    # leg: 2 * (0.5 - 0.25); rootz 1.0; foot vel clip(0.5 * (9 - 1)) = 1
    np.testing.assert_allclose(m(_vector(pos, vel)), [0.5, 1.0, 1.0, 7.0, 8.0])


def test_previous_actions_are_executed_commands_in_model_units_and_contract_order():
    d = {
        "observation": {"terms": [{"type": "previous_actions", "count": 2}]},
        "action": {
            "joints": ["foot_joint", "thigh_joint", "leg_joint"],
            "scale": 2.0,
            "offset": [0.0, 1.0, 0.0],
        },
    }
    c = contract_from_dict(d)
    assert c.previous_actions == 2 and c.input_size == 6
    with pytest.raises(ValueError, match="takes 2 previous action"):
        ObservationMapper(c, HOPPER, 1)
    m = ObservationMapper(c, HOPPER, 3)  # the ingest may append more than the model takes
    cmds = [[9, 9, 9], [1.0, 2.0, 3.0], [3.0, 4.0, 5.0]]  # oldest first, order thigh leg foot
    x = m(_vector(np.zeros(5), np.zeros(6), cmds))
    # model units: (cmd - offset) / scale in order foot, thigh, leg
    np.testing.assert_allclose(x, [1.5, 0.0, 1.0, 2.5, 1.0, 2.0])


def test_history_layouts_and_reset_fill_with_the_first_frame():
    terms = [{"type": "joint_pos", "joints": ["rootz"]}, {"type": "joint_vel", "joints": ["rootx", "rootz"]}]
    act = {"joints": ["thigh_joint", "leg_joint", "foot_joint"]}

    def mapper(layout):
        d = {"observation": {"terms": terms, "history": {"length": 3, "layout": layout}}, "action": act}
        return ObservationMapper(contract_from_dict(d), HOPPER, 0)

    def frame(k):
        return _vector([k, 0, 0, 0, 0], [10 * k, 100 * k, 0, 0, 0, 0])

    fm, tm = mapper("frame_major"), mapper("term_major")
    np.testing.assert_allclose(fm(frame(1)), [1, 10, 100] * 3)  # filled with the first frame
    fm(frame(2))
    np.testing.assert_allclose(fm(frame(3)), [1, 10, 100, 2, 20, 200, 3, 30, 300])
    for k in (1, 2, 3):
        out = tm(frame(k))
    np.testing.assert_allclose(out, [1, 2, 3, 10, 100, 20, 200, 30, 300])
    fm.reset()
    np.testing.assert_allclose(fm(frame(5)), [5, 50, 500] * 3)


def test_action_mapper_clips_scales_and_reorders_to_command_order():
    d = {
        "observation": {"terms": [{"type": "constant", "values": [0.0]}]},
        "action": {
            "joints": ["foot_joint", "thigh_joint", "leg_joint"],
            "scale": 0.5,
            "offset": 0.1,
            "clip": [-1, 1],
        },
        "default_pose": {"thigh_joint": 1.0},
    }
    a = ActionMapper(contract_from_dict(d), HOPPER)
    # raw (foot, thigh, leg) = (4 -> clip 1, 0, -1): command (thigh, leg, foot)
    np.testing.assert_allclose(a(np.array([4.0, 0.0, -1.0])), [1.1, -0.4, 0.6])
