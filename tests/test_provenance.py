"""Provenance names exactly the observation an action depends on (impulse test on every architecture)."""

import pytest
import torch

from rt_rl.policy.networks import ARCHITECTURES, build_network, observation_delay
from rt_rl.policy.provenance import Provenance

IN, ACT, HID, DEPTH, CALLS = 5, 2, 16, 3, 14


def _actions(net, impulse_call: int | None, pulse: torch.Tensor) -> list[torch.Tensor]:
    state, out = net.initial_state(1), []
    with torch.inference_mode():
        for call in range(CALLS):
            obs = pulse if call == impulse_call else torch.zeros(1, IN)
            action, state = net.step(obs, state)
            out.append(action)
    return out


@pytest.mark.parametrize("impulse_call", [0, 5])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_reported_observation_is_the_one_the_action_depends_on(arch, impulse_call):
    torch.manual_seed(0)
    net = build_network(arch, IN, ACT, HID, DEPTH)
    pulse = torch.randn(1, IN) * 3.0
    quiet, loud = _actions(net, None, pulse), _actions(net, impulse_call, pulse)
    first_changed = next(c for c in range(CALLS) if not torch.allclose(quiet[c], loud[c], atol=1e-7))

    prov = Provenance(observation_delay(arch, DEPTH))
    reported = [prov.observed(call) for call in range(CALLS)]
    assert first_changed == reported.index(impulse_call)


@pytest.mark.parametrize("delay", [0, 1, 4])
def test_provenance_is_none_while_the_pipeline_fills_and_after_reset(delay):
    prov = Provenance(delay)
    assert [prov.observed(c) for c in range(delay + 3)] == [None] * delay + [0, 1, 2]
    prov.reset()
    assert [prov.observed(c) for c in range(100, 100 + delay + 2)] == [None] * delay + [100, 101]


def test_negative_delay_is_refused():
    with pytest.raises(ValueError, match="delay_calls"):
        Provenance(-1)
