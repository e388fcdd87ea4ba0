"""Policies trained elsewhere: ONNX (onnxruntime) and TorchScript models run through a contract.

`ExternalPolicy` has the interface of rt_rl's own `runtime.Policy` (`act`, `reset`, `info`,
`version`, `delay_calls`): `act` takes the ingest's observation vector, builds the model's input
through the contract (rt_rl.policy.contract), runs the model with its recurrent state tensors, and
returns a command in the task's actuator order. onnxruntime and torch are imported only when a
model of that kind is opened.

Model conventions (both formats): one observation input of shape [1, D] (or [batch, D]) with D the
contract's input size, one action output [1, A] (A action joints), float32; each state tensor of the
contract is an extra input whose new value is an extra output. TorchScript: `forward(obs, *state)`
returns the action, or a tuple (action, *new_state) in the contract's state order.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rt_rl.policy.contract import ActionMapper, Contract, ObservationMapper, check_task
from rt_rl.tasks import TaskSpec

DEFAULT_PROVIDERS = ("CPUExecutionProvider",)


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int | str | None, ...]  # a str or None: a dimension the model leaves open
    dtype: str

    def __str__(self) -> str:
        dims = ", ".join("?" if not isinstance(d, int) else str(d) for d in self.shape)
        return f"{self.name}[{dims}] {self.dtype}"


class ModelError(ValueError):
    """A model that does not load, or does not fit its contract (one line)."""


class OnnxBackend:
    """An ONNX model in an onnxruntime session (providers in order of preference)."""

    kind = "onnx"

    def __init__(self, path: Path, providers: tuple[str, ...] = DEFAULT_PROVIDERS, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelError("onnxruntime is not installed (pip install -r requirements.txt)") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # the workers share the cores; one each by default
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings would be printed by every worker
        available = ort.get_available_providers()
        unknown = [p for p in providers if p not in available]
        if unknown:
            raise ModelError(
                f"execution provider {unknown[0]} is not in this onnxruntime (has {', '.join(available)})"
            )
        try:
            self.session = ort.InferenceSession(str(path), options, providers=list(providers))
        except Exception as err:  # onnxruntime raises its own exception types; the reason is enough
            raise ModelError(f"not an ONNX model onnxruntime can run: {_first_line(err)}") from None
        self.inputs = [_onnx_tensor(t) for t in self.session.get_inputs()]
        self.outputs = [_onnx_tensor(t) for t in self.session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        return self.session.run(outputs, feeds)


def _onnx_tensor(t: Any) -> TensorInfo:
    dtype = str(t.type).removeprefix("tensor(").removesuffix(")")
    return TensorInfo(t.name, tuple(d if isinstance(d, int) else None for d in t.shape), dtype)


class TorchScriptBackend:
    """A TorchScript module (torch.jit.save); shapes are unknown until it runs."""

    kind = "torchscript"

    def __init__(self, module: Any, n_state: int) -> None:
        self.module = module.eval()
        self.n_state = n_state
        self.inputs: list[TensorInfo] = []  # TorchScript does not declare shapes
        self.outputs: list[TensorInfo] = []

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            out = self.module(*(torch.from_numpy(v) for v in feeds.values()))
        outs = list(out) if isinstance(out, tuple | list) else [out]
        if len(outs) != 1 + self.n_state:
            raise ModelError(
                f"TorchScript forward returned {len(outs)} tensor(s), the contract needs {1 + self.n_state}"
            )
        return [o.detach().numpy() for o in outs]


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def open_torchscript(path: Path) -> Any | None:
    """The TorchScript module in `path`, or None when it is not a TorchScript archive."""
    import torch

    try:
        with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; it still loads
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except Exception:  # not a TorchScript archive: the caller says what it is not
        return None


def version_of(path: Path) -> str:
    return f"{path.stem}@{hashlib.sha256(path.read_bytes()).hexdigest()[:8]}"


class ExternalPolicy:
    """One model with its per-tick state. Not thread-safe: one per worker."""

    def __init__(
        self,
        info: Any,  # rt_rl.policy.runtime.PolicyInfo (arch 'onnx' or 'torchscript')
        backend: OnnxBackend | TorchScriptBackend,
        contract: Contract,
        task: TaskSpec,
        ingest_history: int,
    ) -> None:
        self.info = info
        self.backend = backend
        self.contract = contract
        self.observe = ObservationMapper(contract, task, ingest_history)
        self.command = ActionMapper(contract, task)
        self.input_name, self.output_name = _io_names(backend, contract)
        self._outputs = [self.output_name] + [s.output for s in contract.state]
        self.state: list[np.ndarray] = []
        self.reset()
        self._check_run()

    @property
    def version(self) -> str:
        return self.info.version

    @property
    def delay_calls(self) -> int:
        """Calls from an observation to the first output that depends on it (the contract says)."""
        return self.contract.output_delay

    def reset(self) -> None:
        """Episode start: state tensors to zeros, the observation history restarts."""
        self.state = [np.zeros(s.shape, dtype=np.float32) for s in self.contract.state]
        self.observe.reset()

    def model_input(self, observation: np.ndarray) -> np.ndarray:
        """The model's observation input [1, D] for the ingest's vector (advances the history)."""
        return self.observe(observation).reshape(1, -1)

    def run_model(self, x: np.ndarray) -> np.ndarray:
        """One model call on input x [1, D]: the raw output [A]; the state advances."""
        feeds = {self.input_name: x}
        for s, value in zip(self.contract.state, self.state, strict=True):
            feeds[s.input] = value
        out = self.backend.run(feeds, self._outputs)
        self.state = [np.asarray(v, dtype=np.float32) for v in out[1:]]
        return np.asarray(out[0], dtype=np.float64).reshape(-1)

    def act(self, observation: np.ndarray) -> np.ndarray:
        """Ingest vector -> command [action_dim] in the task's actuator order (float64)."""
        return self.command(self.run_model(self.model_input(observation)))

    def _check_run(self) -> None:
        """One call on zeros: output and state shapes must be what the contract says (then reset)."""
        c = self.contract
        try:
            feeds = {self.input_name: np.zeros((1, c.input_size), dtype=np.float32)}
            feeds.update({s.input: v for s, v in zip(c.state, self.state, strict=True)})
            out = self.backend.run(feeds, self._outputs)
        except ModelError:
            raise
        except Exception as err:  # the runtime's own message says which tensor disagrees
            raise ModelError(f"does not run on the contract's inputs: {_first_line(err)}") from None
        a = len(c.action.joints)
        if np.asarray(out[0]).size != a:
            raise ModelError(
                f"model output '{self.output_name}' has {np.asarray(out[0]).size} entries, "
                f"contract action.joints has {a}"
            )
        for s, value in zip(c.state, out[1:], strict=True):
            if tuple(np.shape(value)) != s.shape:
                raise ModelError(
                    f"state output '{s.output}' has shape {list(np.shape(value))}, contract says {list(s.shape)}"
                )
        self.reset()


def _io_names(backend: OnnxBackend | TorchScriptBackend, contract: Contract) -> tuple[str, str]:
    """The observation input and action output names, checked against an ONNX model's declared
    tensors (their sizes too, where the model states them)."""
    if isinstance(backend, TorchScriptBackend):
        return contract.input_name or "obs", contract.output_name or "action"
    state_in = {s.input for s in contract.state}
    state_out = {s.output for s in contract.state}
    by_in = {t.name: t for t in backend.inputs}
    by_out = {t.name: t for t in backend.outputs}
    for s in contract.state:
        if s.input not in by_in:
            raise ModelError(f"contract state input '{s.input}' is not a model input ({', '.join(by_in)})")
        if s.output not in by_out:
            raise ModelError(
                f"contract state output '{s.output}' is not a model output ({', '.join(by_out)})"
            )
        declared = by_in[s.input].shape
        if len(declared) != len(s.shape) or any(
            isinstance(d, int) and d != w for d, w in zip(declared, s.shape, strict=True)
        ):
            raise ModelError(
                f"state input {by_in[s.input]} does not have the contract's shape {list(s.shape)}"
            )
    name_in = _pick(contract.input_name, [n for n in by_in if n not in state_in], "input", "observation")
    extra = [n for n in by_in if n not in state_in and n != name_in]
    if extra:
        raise ModelError(f"model input '{extra[0]}' is neither the observation nor a contract state")
    name_out = _pick(contract.output_name, [n for n in by_out if n not in state_out], "output", "action")
    for t, want, what in (
        (by_in[name_in], contract.input_size, "contract observation size"),
        (by_out[name_out], len(contract.action.joints), "contract action.joints count"),
    ):
        if t.dtype != "float":
            raise ModelError(f"model tensor {t} is not float32")
        last = t.shape[-1] if t.shape else None
        if isinstance(last, int) and last != want:
            raise ModelError(
                f"model {'input' if t is by_in[name_in] else 'output'} {t} has {last} entries, {what} is {want}"
            )
    return name_in, name_out


def _pick(named: str | None, candidates: list[str], what: str, role: str) -> str:
    if named is not None:
        if named not in candidates:
            raise ModelError(
                f"contract model.{what} '{named}' is not a model {what} ({', '.join(candidates) or 'none'})"
            )
        return named
    if len(candidates) != 1:
        raise ModelError(
            f"model has {len(candidates)} {what}s besides the state ({', '.join(candidates)}): "
            f"name the {role} one in contract model.{what}"
        )
    return candidates[0]


def open_backend(
    path: Path,
    kind: str,
    contract: Contract | None,
    providers: tuple[str, ...] = DEFAULT_PROVIDERS,
    threads: int = 1,
    module: Any = None,
) -> OnnxBackend | TorchScriptBackend:
    if kind == "onnx":
        return OnnxBackend(path, providers, threads)
    import torch

    torch.set_num_threads(threads)
    return TorchScriptBackend(
        module if module is not None else open_torchscript(path), len(contract.state) if contract else 0
    )


def make_external(
    info: Any,
    backend: OnnxBackend | TorchScriptBackend,
    contract: Contract,
    task: TaskSpec,
    ingest_history: int | None,
) -> ExternalPolicy:
    """Check the contract against the task, then the model against the contract (one-line errors)."""
    check_task(contract, task)
    history = contract.previous_actions if ingest_history is None else ingest_history
    return ExternalPolicy(info, backend, contract, task, history)
