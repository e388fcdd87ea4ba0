"""Policy networks. Every network maps observations to actions in [-1, 1] through `step`, carrying a
per-tick state (None for an instant MLP); `initial_state` is the state at an episode start.

Three architectures share one parameter layout (first layer, a stack of equal deep layers, a head):

- `mlp`: instant. All layers run one after the other inside one tick; the action at tick t uses o_t.
  It is the undelayed baseline (or what a worker with a known inference delay runs).
- `pipelined` (paper B): every tick all layers run at once, layer i on layer i-1's output of the
  previous tick, layer 1 on o_t. The head's output computed at tick t is the action returned at t+1
  (the head is a layer too and takes a tick). With L = depth + 1 weight layers the action returned at
  tick t depends on o_{t-L} and older: L ticks of delay.
- `pipelined_skip`: the same, and the fresh o_t also enters every deeper layer and the head (temporal
  skip connections), so the newest observation reaches the action after one tick: the action returned
  at tick t depends on o_{t-1} (and on older observations through the deep features).

The head has 2 * act_dim outputs: a mean and a log-std (the latter used only by SAC training); `step`
returns tanh(mean). Equal-width deep layers are one stacked weight tensor, so a pipelined tick is one
batched `baddbmm` for the whole stack instead of depth-1 separate matmuls.
"""

from __future__ import annotations

import math

import torch
from torch import nn

ARCHITECTURES = ("mlp", "pipelined", "pipelined_skip")

State = tuple[torch.Tensor, torch.Tensor] | None  # (activations [depth, B, hidden], head [B, 2A]) or None


def observation_delay(arch: str, depth: int) -> int:
    """Ticks between an observation and the first action that depends on it (0 for the instant MLP)."""
    if arch == "mlp":
        return 0
    if arch == "pipelined":
        return depth + 1
    if arch == "pipelined_skip":
        return 1
    raise ValueError(f"unknown architecture '{arch}' (allowed: {', '.join(ARCHITECTURES)})")


def receptive_ticks(arch: str, depth: int) -> int:
    """How many past ticks (L) a returned action can depend on; training unrolls L + 1 observations."""
    return 0 if arch == "mlp" else depth + 1


class LayeredActor(nn.Module):
    """Deterministic-at-deployment actor of `depth` ReLU layers of width `hidden` and a linear head.

    Parameters: `first` (input_dim -> hidden), `deep_w` [depth-1, in_deep, hidden] / `deep_b`
    [depth-1, hidden] with in_deep = hidden (+ input_dim with skips), `head` (-> 2 * act_dim).
    """

    def __init__(self, arch: str, input_dim: int, act_dim: int, hidden: int = 256, depth: int = 3) -> None:
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture '{arch}' (allowed: {', '.join(ARCHITECTURES)})")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.arch, self.input_dim, self.act_dim = arch, input_dim, act_dim
        self.hidden, self.depth = hidden, depth
        self.skip = arch == "pipelined_skip"
        self.instant = arch == "mlp"
        extra = input_dim if self.skip else 0
        self.first = nn.Linear(input_dim, hidden)
        n_deep = depth - 1
        self.deep_w = nn.Parameter(torch.empty(n_deep, hidden + extra, hidden))
        self.deep_b = nn.Parameter(torch.empty(n_deep, hidden))
        bound = 1.0 / math.sqrt(hidden + extra)  # nn.Linear's default init, per stacked layer
        nn.init.uniform_(self.deep_w, -bound, bound)
        nn.init.uniform_(self.deep_b, -bound, bound)
        self.head = nn.Linear(hidden + extra, 2 * act_dim)

    # ----- state -----
    def initial_state(self, batch: int = 1) -> State:
        """Zero activations and a zero head (first returned action is tanh(0) = 0)."""
        if self.instant:
            return None
        return (torch.zeros(self.depth, batch, self.hidden), torch.zeros(batch, 2 * self.act_dim))

    # ----- one tick -----
    def forward_sequential(self, obs: torch.Tensor) -> torch.Tensor:
        """Instant forward pass (all layers in sequence on the same observation); head output [B, 2A]."""
        h = torch.relu(self.first(obs))
        for i in range(self.depth - 1):
            inp = torch.cat((obs, h), -1) if self.skip else h
            h = torch.relu(torch.addmm(self.deep_b[i], inp, self.deep_w[i]))
        return self.head(torch.cat((obs, h), -1) if self.skip else h)

    def tick(self, obs: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One tick: returns (head output [B, 2A] acting at this tick, new state).

        Pipelined: the returned head is the one computed at the previous tick; the new state holds every
        layer's output computed now from the previous tick's activations (and o_t via the skips).
        """
        if self.instant:
            return self.forward_sequential(obs), state
        assert state is not None
        acts, head_prev = state
        new_first = torch.relu(self.first(obs))
        if self.depth > 1:
            prev = acts[:-1]  # outputs of layers 1..depth-1 at t-1 feed layers 2..depth at t
            if self.skip:
                prev = torch.cat((obs.unsqueeze(0).expand(self.depth - 1, -1, -1), prev), -1)
            # one batched call for the whole stack of equal layers: [depth-1, B, in] @ [depth-1, in, H]
            deep = torch.relu(torch.baddbmm(self.deep_b.unsqueeze(1), prev, self.deep_w))
            new_acts = torch.cat((new_first.unsqueeze(0), deep), 0)
        else:
            new_acts = new_first.unsqueeze(0)
        head_in = torch.cat((obs, acts[-1]), -1) if self.skip else acts[-1]
        new_head = self.head(head_in)
        return head_prev, (new_acts, new_head)

    def step(self, obs: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Deployment: obs [B, input_dim] -> action [B, act_dim] in [-1, 1], new state."""
        head, state = self.tick(obs, state)
        return torch.tanh(head[:, : self.act_dim]), state

    # ----- training -----
    def unroll_heads(
        self, obs_seq: torch.Tensor, state: State, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        """Run `tick` over obs_seq [B, T, D]; returns heads [B, T, 2A] and the final state.

        mask [B, T] (bool): where False the tick is skipped (state unchanged), used to left-pad
        sequences that start at an episode boundary so the state stays at its reset value.
        """
        heads = []
        for t in range(obs_seq.shape[1]):
            head, new_state = self.tick(obs_seq[:, t], state)
            if mask is not None and new_state is not None and state is not None:
                m = mask[:, t]
                new_state = (
                    torch.where(m.view(1, -1, 1), new_state[0], state[0]),
                    torch.where(m.view(-1, 1), new_state[1], state[1]),
                )
            heads.append(head)
            state = new_state
        return torch.stack(heads, 1), state

    def last_head(self, obs_seq: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Head [B, 2A] returned at the last tick of an unroll of T = L + 1 ticks from the reset state.

        Training only needs that one output, and it depends on one layer per tick (layer k+1 at tick k,
        the head at tick L-1): a diagonal through the pipeline. Computing just that diagonal costs one
        forward pass instead of L + 1 full ticks; it equals `unroll_heads(...)[0][:, -1]` exactly
        (tested). mask [B, T] must be False only on a prefix (ticks before the episode start).
        """
        if self.instant:
            return self.forward_sequential(obs_seq[:, -1])
        if obs_seq.shape[1] != self.depth + 2:
            raise ValueError(f"last_head needs L + 1 = {self.depth + 2} ticks, got {obs_seq.shape[1]}")

        def keep(h: torch.Tensor, k: int) -> torch.Tensor:  # masked tick: that layer is still at reset (0)
            return h if mask is None else h * mask[:, k : k + 1].to(h.dtype)

        h = keep(torch.relu(self.first(obs_seq[:, 0])), 0)
        for i in range(self.depth - 1):  # layer i+2 at tick i+1 on layer i+1's output from tick i
            o = obs_seq[:, i + 1]
            inp = torch.cat((o, h), -1) if self.skip else h
            h = keep(torch.relu(torch.addmm(self.deep_b[i], inp, self.deep_w[i])), i + 1)
        o = obs_seq[:, self.depth]
        return keep(self.head(torch.cat((o, h), -1) if self.skip else h), self.depth)

    def unroll(
        self, obs_seq: torch.Tensor, state: State, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, State]:
        """Actions [B, T, act_dim] for a sequence: identical to calling `step` T times."""
        heads, state = self.unroll_heads(obs_seq, state, mask)
        return torch.tanh(heads[..., : self.act_dim]), state


class MLPActor(LayeredActor):
    """Instant (undelayed) actor; kept as a name for callers that built it directly."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, depth: int = 3) -> None:
        super().__init__("mlp", obs_dim, act_dim, hidden, depth)


def build_network(arch: str, obs_dim: int, act_dim: int, hidden: int = 256, depth: int = 3) -> nn.Module:
    """`obs_dim` is the network input: task observation + history_length * act_dim."""
    return LayeredActor(arch, obs_dim, act_dim, hidden, depth)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


__all__ = [
    "ARCHITECTURES",
    "LayeredActor",
    "MLPActor",
    "build_network",
    "count_parameters",
    "observation_delay",
    "receptive_ticks",
]
