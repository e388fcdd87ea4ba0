"""The small interface an inference worker needs from a policy, and how one is loaded.

A checkpoint (`torch.save` of a dict) holds the weights, the architecture, the observation
normalisation, the history length and the timing it was trained for, so that sensor_ingest and the
workers can configure themselves from the same file. `random` builds an untrained network with a fixed
seed: useful to exercise the graph's timing before any training.

Models trained elsewhere load through the same `load_policy`: a `.onnx` file (onnxruntime), or a `.pt`
that is not an rt_rl checkpoint but loads as TorchScript, each with a contract (rt_rl.policy.contract;
the `contract` argument, else `<model>.contract.yaml` beside the model) and run by
rt_rl.policy.external.ExternalPolicy, which has this module's `Policy` interface.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rt_rl.policy.contract import Contract, load_contract, sibling_contract
from rt_rl.policy.external import DEFAULT_PROVIDERS, ExternalPolicy, ModelError, open_backend, version_of
from rt_rl.policy.networks import build_network, observation_delay
from rt_rl.tasks import TASKS, TaskSpec

CHECKPOINT_FORMAT = "rt_rl.policy/1"
EXTERNAL_FORMATS = ("onnx", "torchscript")  # PolicyInfo.arch of a model trained elsewhere


@dataclass
class PolicyInfo:
    """Everything about a policy except its weights."""

    arch: str
    task: str
    obs_dim: int  # task observation size, without history
    act_dim: int
    hidden: int = 256
    depth: int = 3
    history_length: int = 0
    obs_mean: list[float] | None = None
    obs_std: list[float] | None = None
    timing: dict[str, Any] = field(default_factory=dict)  # what it was trained for (delay, period...)
    version: str = ""

    @property
    def input_dim(self) -> int:
        return self.obs_dim + self.history_length * self.act_dim


class Policy:
    """One policy instance with its per-tick state. Not thread-safe: one per worker."""

    def __init__(self, info: PolicyInfo, net: torch.nn.Module, action_low: float, action_high: float):
        self.info = info
        self.net = net.eval()
        self._scale = (action_high - action_low) / 2.0
        self._offset = (action_high + action_low) / 2.0
        self.state: Any = None
        self.reset()

    @property
    def version(self) -> str:
        return self.info.version

    @property
    def delay_calls(self) -> int:
        """Calls from an observation to the first action that depends on it."""
        return observation_delay(self.info.arch, self.info.depth)

    def reset(self) -> None:
        """Episode boundary: the pipeline's activations belong to the old episode."""
        self.state = self.net.initial_state(1)

    @torch.inference_mode()
    def act(self, observation: np.ndarray) -> np.ndarray:
        obs = torch.as_tensor(observation, dtype=torch.float32).reshape(1, -1)
        if obs.shape[1] != self.info.input_dim:
            raise ValueError(f"observation has {obs.shape[1]} entries, policy expects {self.info.input_dim}")
        action, self.state = self.net.step(obs, self.state)
        return action[0].double().numpy() * self._scale + self._offset


def save_checkpoint(path: str | Path, info: PolicyInfo, net: torch.nn.Module, extra: dict | None = None):
    blob = {"format": CHECKPOINT_FORMAT, "info": info.__dict__, "state_dict": net.state_dict()}
    blob.update(extra or {})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, path)


def read_policy_info(path: str | Path, contract: str | Path = "") -> PolicyInfo:
    """Read only the description (normalisation, history) of a checkpoint; used by sensor_ingest.

    A model trained elsewhere is described by its contract (`contract`, else the sibling
    `<model>.contract.yaml`, else none: no history, no timing): raw observations (no normalisation)
    and the contract's number of previous actions as the history the ingest appends.
    """
    kind, opened = open_model(path)
    if kind == "rt_rl":
        return opened[0]
    c = find_contract(path, contract, required=False)
    task = TASKS.get(c.task) if c is not None and c.task else None
    return _external_info(resolve_checkpoint(path), kind, task, c, None)


def open_model(path: str | Path) -> tuple[str, Any]:
    """('rt_rl', (info, blob)) | ('onnx', None) | ('torchscript', module); told apart by the
    extension (.onnx) and then by loading (an rt_rl checkpoint first, then TorchScript)."""
    p = resolve_checkpoint(path)
    if not p.is_file():
        raise ValueError(f"policy checkpoint '{path}' is not a readable file")
    if p.suffix.lower() == ".onnx":
        return "onnx", None
    try:
        with warnings.catch_warnings():  # torch.load warns before it refuses a TorchScript archive
            warnings.simplefilter("ignore", UserWarning)
            return "rt_rl", _load_blob(path)
    except ValueError as err:
        from rt_rl.policy.external import open_torchscript

        module = open_torchscript(p)
        if module is None:
            raise err from None
        return "torchscript", module


def external_ingest_history(source: str) -> int | None:
    """For a model trained elsewhere, the history sensor_ingest appends for it (it reads only the
    sibling contract: `read_policy_info`); None for 'random' and rt_rl checkpoints. A file that does
    not load gives None here: `load_policy` says why."""
    if source == "random":
        return None
    try:
        kind, _ = open_model(source)
        return None if kind == "rt_rl" else read_policy_info(source).history_length
    except ValueError:
        return None


def reload_contract(source: str, current: str) -> str:
    """The contract for a hot-reloaded model: '' (its sibling `<model>.contract.yaml`) when that file
    exists, else the worker's current `policy_contract`."""
    if source != "random" and sibling_contract(resolve_checkpoint(source)).is_file():
        return ""
    return current


def find_contract(source: str | Path, contract: str | Path, required: bool) -> Contract | None:
    if contract:
        return load_contract(contract)
    sibling = sibling_contract(resolve_checkpoint(source))
    if sibling.is_file():
        return load_contract(sibling)
    if required:
        raise ValueError(
            f"policy '{source}' is a model trained elsewhere and needs a contract: set policy_contract "
            f"or put {sibling.name} beside it (docs/policy_contract.md)"
        )
    return None


def _external_info(
    p: Path, kind: str, task: TaskSpec | None, c: Contract | None, ingest_history: int | None
) -> PolicyInfo:
    history = (c.previous_actions if c is not None else 0) if ingest_history is None else ingest_history
    return PolicyInfo(
        kind,
        task.gym_id if task else (c.task or "" if c else ""),
        task.obs_dim if task else 0,
        task.action_dim if task else 0,
        hidden=0,
        depth=0,
        history_length=history,
        timing=c.timing() if c is not None else {},
        version=version_of(p),
    )


def load_external(
    source: str,
    task: TaskSpec,
    contract: str | Path = "",
    *,
    providers: tuple[str, ...] = DEFAULT_PROVIDERS,
    threads: int = 1,
    ingest_history: int | None = None,
    opened: tuple[str, Any] | None = None,
) -> ExternalPolicy:
    """An ONNX/TorchScript model with its contract, checked against `task` and the model's shapes.

    `ingest_history`: past commands the ingest appends (None: what the contract takes)."""
    kind, module = opened or open_model(source)
    if kind not in EXTERNAL_FORMATS:
        raise ValueError(f"policy '{source}' is an rt_rl checkpoint, not a model trained elsewhere")
    c = find_contract(source, contract, required=True)
    assert c is not None
    p = resolve_checkpoint(source)
    try:
        backend = open_backend(p, kind, c, tuple(providers), threads, module)
        from rt_rl.policy.external import make_external

        return make_external(
            _external_info(p, kind, task, c, ingest_history), backend, c, task, ingest_history
        )
    except ModelError as err:
        raise ValueError(f"policy '{source}': {err}") from None


def resolve_checkpoint(path: str | Path) -> Path:
    """A path as given, or else relative to the installed rt_rl package (where shipped checkpoints
    live: `checkpoints/<name>.pt` works from any working directory and on a colcon install)."""
    p = Path(path)
    if not p.is_file() and not p.is_absolute():
        shipped = Path(__file__).resolve().parents[1] / p
        if shipped.is_file():
            return shipped
    return p


def _load_blob(path: str | Path) -> tuple[PolicyInfo, dict]:
    p = resolve_checkpoint(path)
    if not p.is_file():
        raise ValueError(f"policy checkpoint '{path}' is not a readable file")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds; the user needs the file name and the reason
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "Weights only load failed" in reason:  # torch's advice to unpickle anything is not for us
            reason = "not a tensor-only torch file (corrupt, or not a checkpoint)"
        raise ValueError(f"policy checkpoint '{path}' could not be read: {reason}") from None
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"policy checkpoint '{path}' is not an rt_rl checkpoint ({CHECKPOINT_FORMAT})")
    try:
        info = PolicyInfo(**blob["info"])
        weights = blob["state_dict"]
        bad = [k for k, v in weights.items() if torch.is_tensor(v) and not bool(torch.isfinite(v).all())]
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"policy checkpoint '{path}': metadata or weights invalid ({err})") from None
    if bad:  # NaN weights give NaN actions: every one rejected, a silent permanent watchdog
        raise ValueError(f"policy checkpoint '{path}': non-finite weights in {bad[0]}")
    if not info.version:
        info.version = f"{p.stem}@{hashlib.sha256(p.read_bytes()).hexdigest()[:8]}"
    return info, blob


def load_policy(
    source: str,
    task: TaskSpec,
    seed: int = 0,
    history_length: int = 0,
    *,
    contract: str | Path = "",
    providers: tuple[str, ...] = DEFAULT_PROVIDERS,
    threads: int = 1,
    ingest_history: int | None = None,
) -> Policy | ExternalPolicy:
    """`source` is 'random' or a checkpoint path. Refuses a checkpoint made for other dimensions.

    An ONNX or TorchScript model is loaded with its contract (`contract`, else the sibling file) by
    `load_external`; `providers`, `threads` and `ingest_history` apply to those only."""
    if source == "random":
        torch.manual_seed(seed)
        info = PolicyInfo(
            "mlp",
            task.gym_id,
            task.obs_dim,
            task.action_dim,
            history_length=history_length,
            version=f"random-mlp-seed{seed}",
        )
        net = build_network("mlp", info.input_dim, info.act_dim, info.hidden, info.depth)
        return Policy(info, net, task.action_low, task.action_high)
    opened = open_model(source)
    if opened[0] != "rt_rl":
        return load_external(
            source,
            task,
            contract,
            providers=providers,
            threads=threads,
            ingest_history=ingest_history,
            opened=opened,
        )
    info, blob = opened[1]
    if (info.obs_dim, info.act_dim) != (task.obs_dim, task.action_dim):
        raise ValueError(
            f"policy checkpoint '{source}' is for obs {info.obs_dim}/action {info.act_dim} ({info.task}), "
            f"task {task.gym_id} has obs {task.obs_dim}/action {task.action_dim}"
        )
    try:
        net = build_network(info.arch, info.input_dim, info.act_dim, info.hidden, info.depth)
        net.load_state_dict(blob["state_dict"])
    except (RuntimeError, ValueError, KeyError) as err:  # weights that do not fit the metadata
        reason = " ".join(line.strip() for line in str(err).strip().splitlines()[:2]) or type(err).__name__
        raise ValueError(
            f"policy checkpoint '{source}': weights do not fit its architecture ({reason})"
        ) from None
    return Policy(info, net, task.action_low, task.action_high)
