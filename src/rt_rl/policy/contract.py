"""The policy contract: how a model trained elsewhere is fed and how its output becomes a command.

Pure Python + numpy (no rclpy, no torch, no onnxruntime): the worker, `rt-rl policy check` and the
tests share it. The schema is documented in docs/policy_contract.md; in short (YAML):

    format: rt_rl.contract/1
    task: Hopper-v5                       # optional: the task it was trained on
    observation:
      terms:                              # in the model's input order
        - {type: joint_pos, joints: [rootz, rooty, thigh_joint, leg_joint, foot_joint]}
        - {type: joint_vel, joints: [...], clip: [-10, 10]}
        - {type: previous_actions, count: 1}
        - {type: constant, values: [1.0]}
      history: {length: 1, layout: frame_major}
    action:
      joints: [thigh_joint, leg_joint, foot_joint]
      scale: 1.0
      offset: 0.0
      clip: [-1, 1]
    default_pose: {thigh_joint: 0.0}      # optional, per joint
    model: {input: obs, output: action, output_delay: 0, state: [{input: h, output: h_out, shape: [1, 64]}]}
    timing: {control_period: 0.008, delay_ticks: 1}

Each term's value is `clip(scale * (x - offset))` (scale, offset: a number or one per entry). Every
error is a ValueError of one line naming the file and the key.

Where the numbers come from in the graph: sensor_ingest sends the task's Gymnasium-layout vector,
`positions[excluded:] ++ clip(velocities)` in the task's joint order, followed by the last k executed
commands (oldest first, in the task's actuator order). `ObservationMapper` picks the contract's terms
out of that vector; `ActionMapper` turns the model's output into a command in the task's order.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rt_rl.tasks import TaskSpec

CONTRACT_FORMAT = "rt_rl.contract/1"
TERM_TYPES = ("joint_pos", "joint_vel", "previous_actions", "constant")
HISTORY_LAYOUTS = ("frame_major", "term_major")
# Tasks whose actuated joints are not the last action_dim joints of TaskSpec.joint_names.
_ACTUATED = {"InvertedPendulum-v5": ("slider",)}


def actuated_joints(task: TaskSpec) -> tuple[str, ...]:
    """The joints the task's command drives, in command order (planar tasks: all but the root)."""
    return _ACTUATED.get(task.gym_id, task.joint_names[len(task.joint_names) - task.action_dim :])


def sibling_contract(model: str | Path) -> Path:
    """`dir/model.onnx` -> `dir/model.contract.yaml`: where a contract beside its model lives."""
    p = Path(model)
    return p.with_name(p.stem + ".contract.yaml")


@dataclass(frozen=True)
class Term:
    """One observation term: `size` entries, value = clip(scale * (x - offset))."""

    type: str
    size: int
    joints: tuple[str, ...] = ()
    count: int = 0  # previous_actions: how many past commands (oldest first)
    values: tuple[float, ...] = ()  # constant
    scale: np.ndarray = field(default_factory=lambda: np.ones(0))
    offset: np.ndarray = field(default_factory=lambda: np.zeros(0))
    clip: tuple[float, float] | None = None
    relative: bool = False  # joint_pos: subtract default_pose first (legged stacks' joint_pos_rel)


@dataclass(frozen=True)
class StateTensor:
    """A recurrent state: fed as `input`, read back from `output`, zeros at an episode start."""

    input: str
    output: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ActionSpec:
    """command[joint] = default_pose + offset + scale * clip(model output), per action joint."""

    joints: tuple[str, ...]
    scale: np.ndarray
    offset: np.ndarray
    clip: tuple[float, float] | None
    default: np.ndarray


@dataclass(frozen=True)
class Contract:
    source: str
    task: str | None
    terms: tuple[Term, ...]
    history_length: int
    history_layout: str
    action: ActionSpec
    default_pose: Mapping[str, float]
    input_name: str | None
    output_name: str | None
    output_delay: int  # calls from an input to the first output that depends on it
    state: tuple[StateTensor, ...]
    control_period: float | None  # seconds
    delay_ticks: int | None  # control ticks from observation to actuation it was trained with

    @property
    def frame_size(self) -> int:
        return sum(t.size for t in self.terms)

    @property
    def input_size(self) -> int:
        """Entries of the model's (flat) observation input: one frame times the history length."""
        return self.frame_size * self.history_length

    @property
    def previous_actions(self) -> int:
        """Past commands the ingest must append (the largest previous_actions count)."""
        return max((t.count for t in self.terms if t.type == "previous_actions"), default=0)

    def timing(self) -> dict[str, Any]:
        """In the keys of rt_rl's own checkpoints (rt_rl.policy.timing_check reads them)."""
        out: dict[str, Any] = {}
        if self.control_period is not None:
            out["control_period"] = self.control_period
        if self.delay_ticks is not None:
            out["inference_ticks"] = self.delay_ticks
        return out


# ----- parsing -----------------------------------------------------------------------------------


class _Reader:
    """Typed access to a YAML mapping with one-line errors naming the file and the key path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, why: str) -> ValueError:
        return ValueError(f"contract '{self.source}': {key}: {why}")

    def mapping(self, value: Any, key: str, allowed: Sequence[str]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a mapping, got {type(value).__name__}")
        unknown = [k for k in value if k not in allowed]
        if unknown:
            raise self.fail(key, f"unknown key '{unknown[0]}' (allowed: {', '.join(allowed)})")
        return value

    def number(self, value: Any, key: str, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(key, f"must be a finite number, got {value!r}")
        if positive and value <= 0:
            raise self.fail(key, f"must be > 0, got {value!r}")
        return float(value)

    def integer(self, value: Any, key: str, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"must be an integer >= {minimum}, got {value!r}")
        return value

    def names(self, value: Any, key: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, "must be a non-empty list of joint names")
        if len(set(value)) != len(value):
            dup = next(v for v in value if value.count(v) > 1)
            raise self.fail(key, f"names '{dup}' twice")
        return tuple(value)

    def per_entry(self, value: Any, key: str, n: int, default: float) -> np.ndarray:
        """A number for every entry, or a list of n numbers."""
        if value is None:
            return np.full(n, default)
        if isinstance(value, list):
            if len(value) != n:
                raise self.fail(key, f"has {len(value)} entries, needs 1 or {n}")
            return np.array([self.number(v, f"{key}[{i}]") for i, v in enumerate(value)])
        return np.full(n, self.number(value, key))

    def clip(self, value: Any, key: str) -> tuple[float, float] | None:
        if value is None:
            return None
        if not isinstance(value, list) or len(value) != 2:
            raise self.fail(key, f"must be [low, high], got {value!r}")
        lo, hi = self.number(value[0], f"{key}[0]"), self.number(value[1], f"{key}[1]")
        if lo >= hi:
            raise self.fail(key, f"low {lo:g} must be < high {hi:g}")
        return lo, hi


_TOP = ("format", "task", "observation", "action", "default_pose", "model", "timing", "notes")


def parse_contract(data: Any, source: str = "<contract>") -> Contract:
    """Validate a loaded YAML document; ValueError (one line naming the key) on the first problem."""
    r = _Reader(source)
    top = r.mapping(data, "(top level)", _TOP)
    if top.get("format", CONTRACT_FORMAT) != CONTRACT_FORMAT:
        raise r.fail("format", f"must be {CONTRACT_FORMAT}, got {top['format']!r}")
    task = top.get("task")
    if task is not None and not isinstance(task, str):
        raise r.fail("task", f"must be a Gymnasium id string, got {task!r}")
    for key in ("observation", "action"):
        if key not in top:
            raise r.fail(key, "missing (required)")
    pose = top.get("default_pose") or {}
    if not isinstance(pose, dict):
        raise r.fail("default_pose", f"must be a mapping of joint name to value, got {type(pose).__name__}")
    default_pose = {str(name): r.number(v, f"default_pose.{name}") for name, v in pose.items()}

    obs = r.mapping(top["observation"], "observation", ("terms", "history"))
    raw_terms = obs.get("terms")
    if not isinstance(raw_terms, list) or not raw_terms:
        raise r.fail("observation.terms", "must be a non-empty list of terms")
    terms = tuple(_term(r, t, f"observation.terms[{i}]") for i, t in enumerate(raw_terms))
    hist = r.mapping(obs.get("history") or {}, "observation.history", ("length", "layout"))
    length = r.integer(hist.get("length", 1), "observation.history.length", 1)
    layout = hist.get("layout", "frame_major")
    if layout not in HISTORY_LAYOUTS:
        raise r.fail(
            "observation.history.layout", f"must be one of {', '.join(HISTORY_LAYOUTS)}, got {layout!r}"
        )

    act = r.mapping(top["action"], "action", ("joints", "scale", "offset", "clip"))
    if "joints" not in act:
        raise r.fail("action.joints", "missing (required)")
    joints = r.names(act["joints"], "action.joints")
    n = len(joints)
    action = ActionSpec(
        joints,
        r.per_entry(act.get("scale"), "action.scale", n, 1.0),
        r.per_entry(act.get("offset"), "action.offset", n, 0.0),
        r.clip(act.get("clip"), "action.clip"),
        np.array([default_pose.get(j, 0.0) for j in joints]),
    )

    model = r.mapping(top.get("model") or {}, "model", ("input", "output", "output_delay", "state"))
    for key in ("input", "output"):
        if key in model and not (isinstance(model[key], str) and model[key]):
            raise r.fail(f"model.{key}", f"must be a tensor name, got {model[key]!r}")
    state = tuple(_state(r, s, f"model.state[{i}]") for i, s in enumerate(model.get("state") or []))
    names = [s.input for s in state] + [s.output for s in state]
    if len(set(names)) != len(names):
        raise r.fail("model.state", "names a tensor twice")

    timing = r.mapping(top.get("timing") or {}, "timing", ("control_period", "delay_ticks"))
    period = timing.get("control_period")
    delay = timing.get("delay_ticks")
    return Contract(
        source=source,
        task=task,
        terms=terms,
        history_length=length,
        history_layout=layout,
        action=action,
        default_pose=default_pose,
        input_name=model.get("input"),
        output_name=model.get("output"),
        output_delay=r.integer(model.get("output_delay", 0), "model.output_delay", 0),
        state=state,
        control_period=None if period is None else r.number(period, "timing.control_period", positive=True),
        delay_ticks=None if delay is None else r.integer(delay, "timing.delay_ticks", 0),
    )


_TERM_KEYS = {
    "joint_pos": ("type", "joints", "scale", "offset", "clip", "relative"),
    "joint_vel": ("type", "joints", "scale", "offset", "clip"),
    "previous_actions": ("type", "count", "scale", "offset", "clip"),
    "constant": ("type", "values"),
}


def _term(r: _Reader, raw: Any, key: str) -> Term:
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind not in TERM_TYPES:
        raise r.fail(f"{key}.type", f"must be one of {', '.join(TERM_TYPES)}, got {kind!r}")
    t = r.mapping(raw, key, _TERM_KEYS[kind])
    if kind == "constant":
        values = t.get("values")
        if not isinstance(values, list) or not values:
            raise r.fail(f"{key}.values", "must be a non-empty list of numbers")
        vals = tuple(r.number(v, f"{key}.values[{i}]") for i, v in enumerate(values))
        return Term(kind, len(vals), values=vals, scale=np.ones(len(vals)), offset=np.zeros(len(vals)))
    joints: tuple[str, ...] = ()
    count = 0
    if kind == "previous_actions":
        count = r.integer(t.get("count", 1), f"{key}.count", 1)
        size = -1  # count * action size, known once the action section is read (`_sized`)
    else:
        if "joints" not in t:
            raise r.fail(f"{key}.joints", "missing (required)")
        joints = r.names(t["joints"], f"{key}.joints")
        size = len(joints)
    relative = t.get("relative", False)
    if not isinstance(relative, bool):
        raise r.fail(f"{key}.relative", f"must be true or false, got {relative!r}")
    # previous_actions' per-entry lists are per action joint (repeated for every past command)
    return Term(
        kind,
        size,
        joints=joints,
        count=count,
        scale=t.get("scale"),  # type: ignore[arg-type]  # resolved in `_sized`
        offset=t.get("offset"),  # type: ignore[arg-type]
        clip=r.clip(t.get("clip"), f"{key}.clip"),
        relative=relative,
    )


def _state(r: _Reader, raw: Any, key: str) -> StateTensor:
    s = r.mapping(raw, key, ("input", "output", "shape"))
    for k in ("input", "output", "shape"):
        if k not in s:
            raise r.fail(f"{key}.{k}", "missing (required)")
        if k != "shape" and not (isinstance(s[k], str) and s[k]):
            raise r.fail(f"{key}.{k}", f"must be a tensor name, got {s[k]!r}")
    shape = s["shape"]
    if not isinstance(shape, list) or not shape:
        raise r.fail(f"{key}.shape", f"must be a list of sizes, got {shape!r}")
    return StateTensor(s["input"], s["output"], tuple(r.integer(d, f"{key}.shape", 1) for d in shape))


def _sized(contract: Contract) -> Contract:
    """Resolve sizes and per-entry scale/offset now that the action size is known."""
    r = _Reader(contract.source)
    a = len(contract.action.joints)
    terms = []
    for i, t in enumerate(contract.terms):
        if t.type == "constant":
            terms.append(t)
            continue
        key = f"observation.terms[{i}]"
        per = a if t.type == "previous_actions" else t.size
        scale = r.per_entry(t.scale, f"{key}.scale", per, 1.0)
        offset = r.per_entry(t.offset, f"{key}.offset", per, 0.0)
        size = t.count * a if t.type == "previous_actions" else t.size
        reps = t.count if t.type == "previous_actions" else 1
        terms.append(
            Term(
                t.type,
                size,
                t.joints,
                t.count,
                (),
                np.tile(scale, reps),
                np.tile(offset, reps),
                t.clip,
                t.relative,
            )
        )
    return Contract(**{**contract.__dict__, "terms": tuple(terms)})


def load_contract(path: str | Path) -> Contract:
    """Read and validate a contract file (ValueError, one line, on any problem)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"contract '{path}' is not a readable file")
    try:
        data = yaml.safe_load(p.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"contract '{path}' is not valid YAML: {first}") from None
    return contract_from_dict(data, str(path))


def contract_from_dict(data: Any, source: str = "<contract>") -> Contract:
    return _sized(parse_contract(data, source))


# ----- fitting a contract to a task --------------------------------------------------------------


def check_task(contract: Contract, task: TaskSpec) -> None:
    """Refuse (one line) a contract whose joints or sizes the task's observation cannot provide."""
    fail = _Reader(contract.source).fail
    if contract.task is not None and contract.task != task.gym_id:
        raise fail("task", f"is {contract.task}, the graph runs {task.gym_id}")
    known = set(task.joint_names)
    without_position = set(task.joint_names[: task.excluded_positions])
    for i, t in enumerate(contract.terms):
        for j in t.joints:
            if j not in known:
                raise fail(
                    f"observation.terms[{i}].joints",
                    f"joint '{j}' is not a joint of {task.gym_id} ({', '.join(task.joint_names)})",
                )
            if t.type == "joint_pos" and j in without_position:
                raise fail(
                    f"observation.terms[{i}].joints",
                    f"the position of '{j}' is not in {task.gym_id}'s observation (Gymnasium leaves it out)",
                )
    actuated = actuated_joints(task)
    for j in contract.action.joints:
        if j not in actuated:
            raise fail(
                "action.joints", f"joint '{j}' is not actuated in {task.gym_id} ({', '.join(actuated)})"
            )
    if len(contract.action.joints) != task.action_dim:
        missing = [j for j in actuated if j not in contract.action.joints]
        raise fail("action.joints", f"misses {', '.join(missing)} ({task.gym_id} drives {task.action_dim})")
    for name in contract.default_pose:
        if name not in known:
            raise fail("default_pose", f"joint '{name}' is not a joint of {task.gym_id}")


class ObservationMapper:
    """The ingest's vector -> the model's flat input [input_size] (float32), with the history.

    The ingest vector (length task.obs_dim + ingest_history * action_dim) is the task's Gymnasium
    observation followed by the last `ingest_history` executed commands, oldest first. Past commands
    are turned back into the model's action units (inverse of the contract's action mapping).
    The history of frames is kept here, per worker: with N staggered workers its frames are this
    worker's observations, N control periods apart (as the state of a recurrent model is).
    """

    def __init__(self, contract: Contract, task: TaskSpec, ingest_history: int) -> None:
        check_task(contract, task)
        if ingest_history < contract.previous_actions:
            raise ValueError(
                f"contract '{contract.source}': observation.terms: takes {contract.previous_actions} "
                f"previous action(s), the ingest appends {ingest_history}"
            )
        self.contract, self.task = contract, task
        n_pos = len(task.joint_names) - task.excluded_positions
        index = {j: i for i, j in enumerate(task.joint_names)}
        a = task.action_dim
        actuated = actuated_joints(task)
        # command order -> the contract's action joint order
        to_contract = np.array([actuated.index(j) for j in contract.action.joints], dtype=np.intp)
        self.expected = task.obs_dim + ingest_history * a
        self._picks: list[tuple[Term, np.ndarray | None, np.ndarray]] = []
        for t in contract.terms:
            base = np.zeros(t.size)
            if t.type == "joint_pos":
                idx = np.array([index[j] - task.excluded_positions for j in t.joints], dtype=np.intp)
                if t.relative:
                    base = np.array([contract.default_pose.get(j, 0.0) for j in t.joints])
            elif t.type == "joint_vel":
                idx = np.array([n_pos + index[j] for j in t.joints], dtype=np.intp)
            elif t.type == "previous_actions":
                first = task.obs_dim + (ingest_history - t.count) * a
                idx = np.concatenate([first + k * a + to_contract for k in range(t.count)])
                # command -> model units: (cmd - default - offset) / scale, per action joint
                base = np.tile(contract.action.default + contract.action.offset, t.count)
            else:
                idx = None
            self._picks.append((t, idx, base))
        self._act_scale = np.tile(contract.action.scale, max(contract.previous_actions, 1))
        self._frames: deque[list[np.ndarray]] = deque(maxlen=contract.history_length)

    def reset(self) -> None:
        """Episode start: the history restarts (filled with the first frame of the new episode)."""
        self._frames.clear()

    def frame(self, vector: np.ndarray) -> list[np.ndarray]:
        """One value per term for the ingest's `vector` (float64)."""
        v = np.asarray(vector, dtype=np.float64)
        if v.shape != (self.expected,):
            raise ValueError(
                f"observation has {v.size} entries, the contract's mapping expects {self.expected}"
            )
        out = []
        for t, idx, base in self._picks:
            if idx is None:
                x = np.asarray(t.values, dtype=np.float64)
            else:
                x = v[idx] - base
                if t.type == "previous_actions":
                    x = x / self._act_scale[: x.size]
                x = t.scale * (x - t.offset)
                if t.clip is not None:
                    x = np.clip(x, *t.clip)
            out.append(x)
        return out

    def __call__(self, vector: np.ndarray) -> np.ndarray:
        frame = self.frame(vector)
        if not self._frames:
            self._frames.extend([frame] * self.contract.history_length)
        else:
            self._frames.append(frame)
        if self.contract.history_layout == "frame_major":  # [f_{t-k+1} all terms, ..., f_t all terms]
            parts = [x for f in self._frames for x in f]
        else:  # term_major: each term's k values together, oldest first (Isaac Lab's layout)
            parts = [f[i] for i in range(len(frame)) for f in self._frames]
        return np.concatenate(parts).astype(np.float32)


class ActionMapper:
    """The model's output [n_action_joints] -> a command in the task's actuator order (float64)."""

    def __init__(self, contract: Contract, task: TaskSpec) -> None:
        check_task(contract, task)
        self.spec = contract.action
        actuated = actuated_joints(task)
        self._order = np.array([contract.action.joints.index(j) for j in actuated], dtype=np.intp)

    def __call__(self, output: np.ndarray) -> np.ndarray:
        y = np.asarray(output, dtype=np.float64).reshape(-1)
        if self.spec.clip is not None:
            y = np.clip(y, *self.spec.clip)
        return (self.spec.default + self.spec.offset + self.spec.scale * y)[self._order]


__all__ = [
    "CONTRACT_FORMAT",
    "ActionMapper",
    "Contract",
    "ObservationMapper",
    "StateTensor",
    "Term",
    "actuated_joints",
    "check_task",
    "contract_from_dict",
    "load_contract",
    "parse_contract",
    "sibling_contract",
]
