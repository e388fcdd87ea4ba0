"""The delays of the policy architectures, proven with an impulse observation, and step == unroll."""

from __future__ import annotations

import pytest
import torch

from rt_rl.policy.networks import ARCHITECTURES, build_network, observation_delay, receptive_ticks

IN, ACT, HID = 5, 2, 16


def _impulse_response(arch: str, depth: int, impulse_tick: int = 3, ticks: int = 12) -> list[int]:
    """Ticks at which the returned action differs from the no-impulse run (impulse only at one tick)."""
    torch.manual_seed(0)
    net = build_network(arch, IN, ACT, HID, depth)
    base = torch.randn(1, IN) * 0.1
    pulse = torch.randn(1, IN) * 3.0

    def run(with_pulse: bool) -> list[torch.Tensor]:
        state, out = net.initial_state(1), []
        for t in range(ticks):
            obs = base + (pulse if with_pulse and t == impulse_tick else 0.0)
            a, state = net.step(obs, state)
            out.append(a)
        return out

    with torch.no_grad():
        quiet, loud = run(False), run(True)
    return [t for t in range(ticks) if not torch.allclose(quiet[t], loud[t], atol=1e-7)]


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_pipelined_acts_on_observations_L_ticks_old(depth: int) -> None:
    layers = depth + 1  # L counts the head: it is a layer and takes a tick
    changed = _impulse_response("pipelined", depth, impulse_tick=3)
    assert changed and changed[0] == 3 + layers
    assert observation_delay("pipelined", depth) == layers


@pytest.mark.parametrize("depth", [1, 3, 5])
def test_pipelined_skip_acts_on_observations_1_tick_old(depth: int) -> None:
    changed = _impulse_response("pipelined_skip", depth, impulse_tick=3)
    assert changed[0] == 4  # one tick: the head computed at t (from o_t) is returned at t+1
    # the deep features carry the impulse on for L ticks, then it is gone (finite receptive field)
    assert changed[-1] <= 3 + receptive_ticks("pipelined_skip", depth)


def test_mlp_is_instant() -> None:
    assert _impulse_response("mlp", 3, impulse_tick=3) == [3]


@pytest.mark.parametrize("arch", ["pipelined", "pipelined_skip"])
def test_action_at_t_is_head_computed_at_t_minus_1(arch: str) -> None:
    torch.manual_seed(1)
    net = build_network(arch, IN, ACT, HID, 3)
    state = net.initial_state(2)
    a0, state = net.step(torch.randn(2, IN), state)
    assert torch.equal(a0, torch.zeros(2, ACT))  # nothing computed before the first tick
    for _ in range(4):
        computed_head = state[1]
        a, state = net.step(torch.randn(2, IN), state)
        assert torch.equal(a, torch.tanh(computed_head[:, :ACT]))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_step_equals_unroll(arch: str) -> None:
    torch.manual_seed(2)
    net = build_network(arch, IN, ACT, HID, 4)
    seq = torch.randn(3, 7, IN)
    with torch.no_grad():
        state, steps = net.initial_state(3), []
        for t in range(seq.shape[1]):
            a, state = net.step(seq[:, t], state)
            steps.append(a)
        unrolled, final = net.unroll(seq, net.initial_state(3))
    assert torch.equal(torch.stack(steps, 1), unrolled)
    if state is not None:
        assert torch.equal(state[0], final[0]) and torch.equal(state[1], final[1])


def test_unroll_mask_keeps_reset_state_for_padding() -> None:
    torch.manual_seed(3)
    net = build_network("pipelined_skip", IN, ACT, HID, 3)
    seq = torch.randn(1, 6, IN)
    mask = torch.tensor([[False, False, True, True, True, True]])
    with torch.no_grad():
        padded, _ = net.unroll(torch.cat((torch.randn(1, 2, IN), seq[:, 2:]), 1), net.initial_state(1), mask)
        plain, _ = net.unroll(seq[:, 2:], net.initial_state(1))
    assert torch.allclose(padded[:, 2:], plain)


def test_full_sequence_makes_initial_state_irrelevant() -> None:
    """After L+1 ticks the returned action depends only on observations: training from zero is exact."""
    torch.manual_seed(4)
    depth = 3
    net = build_network("pipelined", IN, ACT, HID, depth)
    seq = torch.randn(2, receptive_ticks("pipelined", depth) + 1, IN)
    with torch.no_grad():
        a, _ = net.unroll(seq, net.initial_state(2))
        junk = (torch.randn(depth, 2, HID).relu(), torch.randn(2, 2 * ACT))
        b, _ = net.unroll(seq, junk)
    assert torch.allclose(a[:, -1], b[:, -1])


def test_unknown_architecture_is_refused() -> None:
    with pytest.raises(ValueError, match="allowed"):
        build_network("transformer", IN, ACT)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("depth", [1, 3])
def test_training_diagonal_equals_unroll(arch: str, depth: int) -> None:
    """The trainer's one-forward-pass `last_head` is exactly the unroll's last returned head."""
    torch.manual_seed(5)
    net = build_network(arch, IN, ACT, HID, depth)
    T = receptive_ticks(arch, depth) + 1
    seq = torch.randn(4, T, IN)
    mask = torch.ones(4, T, dtype=torch.bool)
    for b in range(4):
        mask[b, : b if arch != "mlp" else 0] = False  # episode started 0..3 ticks into the sequence
    with torch.no_grad():
        heads, _ = net.unroll_heads(seq, net.initial_state(4), mask)
        fast = net.last_head(seq, mask)
    assert torch.allclose(heads[:, -1], fast, atol=1e-6)
