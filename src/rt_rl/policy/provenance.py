"""Which observation an action depends on (no ROS here).

A pipelined policy returns, at call t, the head it computed at call t - 1 (and the head's inputs
came from older calls still), so the action published after call t does not depend on the
observation of call t. `observation_delay(arch, depth)` says how many calls back the newest
observation the returned action depends on was taken: 0 for the instant MLP, 1 with temporal skip
connections, depth + 1 without. `Provenance` keeps the identities (stamp, seq, episode) of the
observations of the last calls of the current episode and returns the one the action depends on, or
None while the pipeline is still filling (the action then depends on no observation at all: the
zero activations of an episode start), so a worker never claims a fresher observation than it used.
"""

from __future__ import annotations

from collections import deque
from typing import Any


class Provenance:
    def __init__(self, delay_calls: int) -> None:
        if delay_calls < 0:
            raise ValueError(f"delay_calls must be >= 0, got {delay_calls}")
        self.delay_calls = delay_calls
        self._seen: deque[Any] = deque(maxlen=delay_calls + 1)

    def reset(self) -> None:
        """Episode boundary: the policy's state was reset, older observations no longer count."""
        self._seen.clear()

    def observed(self, identity: Any) -> Any | None:
        """Record the observation of this call; return the identity of the observation the action
        returned by this call depends on (None: none yet)."""
        self._seen.append(identity)
        return self._seen[0] if len(self._seen) > self.delay_calls else None
