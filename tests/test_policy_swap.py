"""Hot swap without ROS: what may replace a running policy, and the call at which it goes live."""

from dataclasses import dataclass

import numpy as np
import pytest

from rt_rl.policy.swap import IngestContract, PolicySwap, check_candidate


@dataclass
class Info:
    task: str = "Hopper-v5"
    obs_dim: int = 11
    act_dim: int = 3
    history_length: int = 2
    obs_mean: list[float] | None = None
    obs_std: list[float] | None = None


INGEST = IngestContract("Hopper-v5", 11, 3, 2, tuple([0.5] * 11), tuple([2.0] * 11))


def test_pipelined_candidate_goes_live_at_the_first_call_whose_output_depends_on_an_observation():
    swap: PolicySwap[str] = PolicySwap()
    swap.offer("new", delay_calls=2)
    assert swap.shadowed("new", "obs1") is None  # filling: the live policy publishes
    assert swap.shadowed("new", "obs2") is None
    switch = swap.shadowed("new", "obs3")
    assert switch is not None
    assert (switch.candidate, switch.depends_on, switch.shadow_calls) == ("new", "obs1", 3)
    assert swap.pending is None and swap.swaps == 1
    # its provenance carries on from the shadow calls: the next output depends on obs2
    assert switch.provenance.observed("obs4") == "obs2"


def test_instant_candidate_goes_live_at_its_first_shadow_call():
    swap: PolicySwap[str] = PolicySwap()
    swap.offer("mlp", delay_calls=0)
    switch = swap.shadowed("mlp", "obs1")
    assert switch is not None and switch.depends_on == "obs1" and switch.shadow_calls == 1


def test_pending_candidate_goes_live_at_an_episode_boundary_without_shadow_calls():
    swap: PolicySwap[str] = PolicySwap()
    assert swap.episode_started() is None
    swap.offer("new", delay_calls=1)
    assert swap.shadowed("new", ("ep0", 1)) is None
    switch = swap.episode_started()
    assert switch is not None and switch.depends_on is None and switch.candidate == "new"
    # the old episode's observation does not count: the new episode fills from scratch
    assert switch.provenance.observed(("ep1", 1)) is None
    assert switch.provenance.observed(("ep1", 2)) == ("ep1", 1)


def test_withdrawn_or_replaced_candidate_never_goes_live():
    swap: PolicySwap[str] = PolicySwap()
    swap.offer("a", delay_calls=0)
    assert swap.offer("b", delay_calls=1) == "a"
    assert swap.shadowed("a", "obs1") is None  # replaced: ignored
    assert not swap.withdraw("a")
    assert swap.withdraw("b") and swap.pending is None
    assert swap.shadowed("b", "obs2") is None and swap.episode_started() is None
    assert swap.swaps == 0


def test_candidate_with_the_ingests_normalisation_needs_no_input_map():
    assert check_candidate("b.pt", Info(obs_mean=[0.5] * 11, obs_std=[2.0] * 11), INGEST) is None


def test_candidate_with_other_normalisation_gets_the_ingests_observation_renormalised():
    info = Info(obs_mean=[1.0] * 11, obs_std=[4.0] * 11)
    input_map = check_candidate("b.pt", info, INGEST)
    assert input_map is not None
    raw = np.linspace(-3, 3, 11)
    history = np.array([0.1, -0.2, 0.3, 0.4, 0.5, -0.6])
    from_ingest = np.concatenate(((raw - 0.5) / 2.0, history)).astype(np.float32)
    mapped = input_map(from_ingest)
    np.testing.assert_allclose(mapped[:11], (raw - 1.0) / 4.0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mapped[11:], history.astype(np.float32))  # commands: not normalised
    assert from_ingest[0] == np.float32((raw[0] - 0.5) / 2.0)  # the input is not modified


@pytest.mark.parametrize(
    ("info", "match"),
    [
        (Info(history_length=0), r"^policy checkpoint 'b.pt' takes 0 past commands, the ingest appends 2$"),
        (Info(obs_dim=17, act_dim=6, task="HalfCheetah-v5"), "is for obs 17/action 6 .HalfCheetah-v5., "),
        (Info(obs_std=[0.0] * 11), "normalisation that is not 11 entries with std > 0"),
        (Info(obs_mean=[0.0] * 3), "normalisation that is not 11 entries"),
    ],
)
def test_candidate_that_does_not_take_the_ingests_observations_is_refused_in_one_line(info, match):
    with pytest.raises(ValueError, match=match) as err:
        check_candidate("b.pt", info, INGEST)
    assert "\n" not in str(err.value)


def test_ingest_contract_is_taken_from_the_startup_policy():
    contract = IngestContract.of(Info(obs_mean=[0.5] * 11, obs_std=[2.0] * 11))
    assert contract == INGEST
