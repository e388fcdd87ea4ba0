"""Hot swap of a running worker's policy: which checkpoint may replace it, and when (no ROS, no torch).

What may replace it: a policy that takes what sensor_ingest produces, the task's observation and
action sizes and the command history the ingest appends (`check_candidate`). The ingest normalises
with the statistics of the checkpoint it started with; a policy trained with other statistics gets
an exact re-normalisation of the task part of its input (`InputMap`), not a refusal.

When: a pipelined policy loaded mid-episode returns heads computed from zero activations until its
pipeline has seen `observation_delay` observations. Publishing those would be an inaction spike (the
worker has nothing that depends on an observation). So the candidate is shadow-run on the same
observations as the live policy, which keeps publishing, and `PolicySwap` switches at the first call
whose candidate output depends on a real observation: that call already publishes the candidate's
action. At an episode boundary both pipelines restart empty, so a pending candidate goes live there
at once, without shadow calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from rt_rl.policy.provenance import Provenance


class PolicyDescription(Protocol):
    """The fields of a policy's description (rt_rl.policy.runtime.PolicyInfo) that matter here."""

    task: str
    obs_dim: int
    act_dim: int
    history_length: int
    obs_mean: Sequence[float] | None
    obs_std: Sequence[float] | None


@dataclass(frozen=True)
class IngestContract:
    """What sensor_ingest feeds the workers. The ingest configures itself from the checkpoint the
    graph starts with (the same `policy_checkpoint` as the workers), so a worker takes the contract
    from its startup policy and keeps it across swaps."""

    task: str
    obs_dim: int
    act_dim: int
    history_length: int
    obs_mean: tuple[float, ...] | None = None
    obs_std: tuple[float, ...] | None = None

    @classmethod
    def of(cls, info: PolicyDescription) -> IngestContract:
        return cls(
            info.task,
            info.obs_dim,
            info.act_dim,
            info.history_length,
            None if info.obs_mean is None else tuple(float(x) for x in info.obs_mean),
            None if info.obs_std is None else tuple(float(x) for x in info.obs_std),
        )


@dataclass(frozen=True)
class InputMap:
    """x' = x * scale + shift on the task part of an observation (the command history, appended
    after it, is not normalised): the ingest's normalisation turned into the policy's."""

    scale: np.ndarray
    shift: np.ndarray

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        out = np.array(observation, dtype=np.float32)
        n = self.scale.shape[0]
        out[:n] = out[:n] * self.scale + self.shift
        return out


def _stats(values: Sequence[float] | None, n: int, default: float) -> np.ndarray:
    return np.full(n, default) if values is None else np.asarray(values, dtype=np.float64)


def check_candidate(name: str, info: PolicyDescription, ingest: IngestContract) -> InputMap | None:
    """Refuse (ValueError, one line naming `name`) a policy that cannot take the ingest's
    observations; return the re-normalisation it needs, or None when it needs none."""
    if (info.obs_dim, info.act_dim) != (ingest.obs_dim, ingest.act_dim):
        raise ValueError(
            f"policy checkpoint '{name}' is for obs {info.obs_dim}/action {info.act_dim} ({info.task}), "
            f"the graph runs {ingest.task} with obs {ingest.obs_dim}/action {ingest.act_dim}"
        )
    if info.history_length != ingest.history_length:
        raise ValueError(
            f"policy checkpoint '{name}' takes {info.history_length} past commands, "
            f"the ingest appends {ingest.history_length}"
        )
    n = ingest.obs_dim
    mean, std = _stats(info.obs_mean, n, 0.0), _stats(info.obs_std, n, 1.0)
    if mean.shape != (n,) or std.shape != (n,) or not np.all(std > 0):
        raise ValueError(
            f"policy checkpoint '{name}' has a normalisation that is not {n} entries with std > 0"
        )
    in_mean, in_std = _stats(ingest.obs_mean, n, 0.0), _stats(ingest.obs_std, n, 1.0)
    if np.array_equal(mean, in_mean) and np.array_equal(std, in_std):
        return None
    # x = (raw - in_mean) / in_std  ->  (raw - mean) / std = x * in_std / std + (in_mean - mean) / std
    return InputMap((in_std / std).astype(np.float32), ((in_mean - mean) / std).astype(np.float32))


P = TypeVar("P")


@dataclass(frozen=True)
class Switch(Generic[P]):
    """The candidate goes live now: its provenance continues from its shadow calls; `depends_on` is
    the observation its output of this call depends on (None at an episode boundary)."""

    candidate: P
    provenance: Provenance
    depends_on: Any
    shadow_calls: int


class PolicySwap(Generic[P]):
    """The swap decision of one worker: one pending candidate, its shadow calls, when it goes live.

    Called by the inference thread once per inference; not thread-safe (the worker holds a lock
    around it, since candidates are offered from the parameter service's thread).
    """

    def __init__(self) -> None:
        self._pending: P | None = None
        self._provenance: Provenance | None = None
        self.shadow_calls = 0
        self.swaps = 0

    @property
    def pending(self) -> P | None:
        return self._pending

    def offer(self, candidate: P, delay_calls: int) -> P | None:
        """A new candidate whose output depends on the observation `delay_calls` calls back. Replaces
        a candidate still pending, which is returned."""
        replaced = self._pending
        self._pending, self._provenance, self.shadow_calls = candidate, Provenance(delay_calls), 0
        return replaced

    def withdraw(self, candidate: P) -> bool:
        """Drop `candidate` if it is still pending (False: it went live or was replaced already)."""
        if self._pending is not candidate:
            return False
        self._pending, self._provenance = None, None
        return True

    def episode_started(self) -> Switch[P] | None:
        """Both pipelines restart empty at an episode boundary: a pending candidate goes live now."""
        if self._pending is None:
            return None
        assert self._provenance is not None
        self._provenance.reset()
        return self._switch(None)

    def shadowed(self, candidate: P, identity: Any) -> Switch[P] | None:
        """`candidate` was run on the observation `identity`, as the live policy was. Once its output
        depends on a real observation it goes live with this call; until then None (the live policy
        publishes). A candidate no longer pending (withdrawn, replaced) is ignored."""
        if candidate is not self._pending or self._provenance is None:
            return None
        self.shadow_calls += 1
        depends_on = self._provenance.observed(identity)
        return None if depends_on is None else self._switch(depends_on)

    def _switch(self, depends_on: Any) -> Switch[P]:
        assert self._pending is not None and self._provenance is not None
        switch = Switch(self._pending, self._provenance, depends_on, self.shadow_calls)
        self._pending, self._provenance = None, None
        self.swaps += 1
        return switch
