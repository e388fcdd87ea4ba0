"""The simulated-time environment reproduces the live graph's timing and observation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from rt_rl.learning.timing_env import TimingEnv


def test_instant_single_worker_is_the_plain_gymnasium_env() -> None:
    env = TimingEnv("Hopper-v5", inference_ticks=0, num_workers=1)
    ref = gym.make("Hopper-v5")
    obs, info = env.reset(seed=3)
    ref_obs, _ = ref.reset(seed=3)
    assert np.allclose(obs, ref_obs, atol=1e-6) and info["worker"] == 0
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.uniform(-1, 1, 3)
        obs, r, term, _trunc, info = env.step(a)
        ref_obs, ref_r, _ref_term, *_ = ref.step(a)
        assert np.allclose(obs, ref_obs, atol=1e-5) and r == pytest.approx(ref_r)
        assert info["ticks"][0]["fresh"] and np.allclose(info["ticks"][0]["command"], a)
        if term:
            break


def test_delay_workers_fallback_and_history() -> None:
    """N=2, D=2: s=1, an action given at tick t is applied at t+2; the first 2 ticks hold the zero command."""
    env = TimingEnv("Hopper-v5", inference_ticks=2, num_workers=2, history_length=2)
    assert (env.s, env.timing.worker_stride) == (1, 2)
    obs, info = env.reset(seed=0)
    assert obs.shape == (11 + 2 * 3,)
    given, applied = [], []
    for k in range(6):
        assert info["worker"] == k % 2 and info["tick"] == k
        a = np.full(3, 0.1 * (k + 1))
        given.append(a)
        obs, _, _term, _, info = env.step(a)
        (rec,) = info["ticks"]
        applied.append(rec["command"])
        assert rec["fresh"] == (k >= 2)
        # the history in the observation is the last 2 executed commands, oldest first
        assert np.allclose(obs[11:14], applied[-2] if k >= 1 else 0.0) and np.allclose(obs[14:], applied[-1])
    assert np.allclose(applied[0], 0) and np.allclose(applied[1], 0)
    for k in range(2, 6):
        assert np.allclose(applied[k], given[k - 2])


def test_slow_single_worker_holds_between_actions() -> None:
    """N=1, D=3: s=3 ticks per slot; each action lands at start+3 and is held for the slot."""
    env = TimingEnv("InvertedPendulum-v5", inference_ticks=3, num_workers=1, fallback="hold")
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([0.5]))
    assert [r["fresh"] for r in info["ticks"]] == [False, False, False]
    _, _, _, _, info = env.step(np.array([-0.5]))
    assert [r["fresh"] for r in info["ticks"]] == [True, False, False]
    assert all(np.allclose(r["command"], 0.5) for r in info["ticks"])
    zero = TimingEnv("InvertedPendulum-v5", inference_ticks=3, num_workers=1, fallback="zero")
    zero.reset(seed=0)
    zero.step(np.array([0.5]))
    _, _, _, _, info = zero.step(np.array([0.5]))
    assert [float(r["command"][0]) for r in info["ticks"]] == [0.5, 0.0, 0.0]


def test_control_period_sums_env_rewards_and_timing_fields() -> None:
    env = TimingEnv("Hopper-v5", frame_skip=5, control_steps=2, inference_ticks=2, num_workers=2)
    assert env.dt == pytest.approx(0.01)
    assert env.timing.as_dict() == {
        "control_period": pytest.approx(0.02),
        "sensor_period": pytest.approx(0.01),
        "frame_skip": 5,
        "inference_ticks": 2,
        "num_workers": 2,
        "fallback": "hold",
        "actuation_offset": (0.0, 0.0),  # a step simulator's instant actuation unless asked
        "offset_jitter": 0.0,
    }
    env.reset(seed=1)
    _, r, *_ = env.step(np.zeros(3))
    assert r == pytest.approx(2.0, abs=0.2)  # two env steps of ~1 healthy reward each


def test_delay_choices_draw_one_delay_per_episode_and_keep_slot_spacing() -> None:
    """D is drawn at reset from the choices (seeded), reported in info, and is when the action lands;
    s stays the nominal one (N=2, nominal D=2: s=1) whatever D is drawn."""
    env = TimingEnv("Hopper-v5", inference_ticks=2, num_workers=2, delay_choices=[1, 2, 3])
    drawn = {}
    for seed in range(12):
        _, info = env.reset(seed=seed)
        d = info["delay"]
        drawn[seed] = d
        assert d in (1, 2, 3) and env.s == 1 and env.timing.worker_stride == 2
        given, applied = [], []
        for k in range(6):
            given.append(np.full(3, 0.1 * (k + 1)))
            _, _, _, _, info = env.step(given[-1])
            assert info["delay"] == d and len(info["ticks"]) == 1
            (rec,) = info["ticks"]
            applied.append(rec["command"])
            assert rec["fresh"] == (k >= d)  # the first action (given at tick 0) lands at tick D
        for k in range(d, 6):
            assert np.allclose(applied[k], given[k - d])
    assert set(drawn.values()) == {1, 2, 3}
    again = TimingEnv("Hopper-v5", inference_ticks=2, num_workers=2, delay_choices=[1, 2, 3])
    assert [again.reset(seed=s)[1]["delay"] for s in range(12)] == list(drawn.values())  # seeded
    assert env.timing.inference_ticks == 2  # the nominal timing is unchanged


def test_reset_option_forces_the_delay_and_default_reset_restores_the_nominal() -> None:
    env = TimingEnv("Hopper-v5", inference_ticks=2, num_workers=2)
    assert env.reset(seed=0, options={"delay": 3})[1]["delay"] == 3 and env.s == 1
    env.step(np.full(3, 0.5))
    for _ in range(3):  # ticks 1, 2, 3
        _, _, _, _, info = env.step(np.zeros(3))
    assert info["ticks"][0]["fresh"] and np.allclose(info["ticks"][0]["command"], 0.5)  # landed at 3
    assert env.reset(seed=0)[1]["delay"] == 2
    with pytest.raises(ValueError, match="delay_choices"):
        TimingEnv("Hopper-v5", inference_ticks=2, num_workers=2, delay_choices=[1, -1])


def test_trained_timing_records_delay_choices_and_episode_length() -> None:
    env = TimingEnv("Hopper-v5", frame_skip=5, inference_ticks=2, num_workers=2, episode_steps=800)
    assert env.trained_timing() == env.timing.as_dict() | {
        "delay_choices": [2],
        "episode_steps": 800,
        "episode_seconds": pytest.approx(8.0),
        "physics_dt": pytest.approx(0.002),
    }
    robust = TimingEnv(
        "Hopper-v5", frame_skip=5, inference_ticks=2, num_workers=2, delay_choices=[1, 2, 2, 3]
    )
    assert robust.trained_timing()["delay_choices"] == [1, 2, 2, 3]


@pytest.mark.parametrize("delay,workers", [(1, 1), (2, 2), (4, 5), (4, 2), (6, 3), (3, 8)])
def test_twin_worker_starts_are_the_live_grid_s_starts_in_ticks(delay, workers) -> None:
    from rt_rl.core.grid import make_schedule
    from rt_rl.learning.timing_env import Timing

    timing = Timing(0.01, 0.002, 5, delay, workers)
    live = make_schedule(workers, 0.01, delay * 0.01, tick_phase=0.0, not_before=0.0, margin=0.0)
    first = live.epoch - live.lead  # the live grid's first start (a tick)
    for w in range(workers):
        starts, now = [], 0.0
        for _ in range(6):
            start, _k = live.next_start(w, now)
            starts.append(round((start - first) / 0.01))
            now = start + 2e-6
        assert starts == [w * timing.slot_ticks + j * timing.worker_stride for j in range(6)]
