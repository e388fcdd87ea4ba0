"""rt-rl train-offline: TD3+BC from a Minari dataset laid out as `rt-rl dataset` writes it.

The dataset is made with minari's own writer from short rollouts in the twin (TimingEnv, 2 workers,
D = 1) of a small noisy pipelined_skip policy, with the per-tick infos of a recorded bag: the
observation behind the command actuated at each tick, the command executed, worker id, tick kind.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from rt_rl import cli
from rt_rl.learning import offline_data
from rt_rl.learning import train_offline as offline
from rt_rl.learning.evaluate import evaluate_checkpoint
from rt_rl.learning.timing_env import TimingEnv
from rt_rl.policy.networks import build_network, observation_delay
from rt_rl.policy.runtime import PolicyInfo, load_policy, save_checkpoint
from rt_rl.tasks import get_task

TASK = "Hopper-v5"
D, N, PERIOD, HISTORY, STEPS = 1, 2, 0.01, 2, 60
HIDDEN, DEPTH = 32, 2


def behaviour_checkpoint(path):
    torch.manual_seed(3)
    task = get_task(TASK)
    info = PolicyInfo(
        "pipelined_skip", TASK, task.obs_dim, task.action_dim, HIDDEN, DEPTH, HISTORY,
        timing={"control_period": PERIOD, "sensor_period": PERIOD, "frame_skip": 5, "inference_ticks": D,
                "num_workers": N, "fallback": "hold", "episode_steps": STEPS},
        version="test-behaviour-v1",
    )  # fmt: skip
    net = build_network(info.arch, info.input_dim, info.act_dim, HIDDEN, DEPTH)
    save_checkpoint(path, info, net)
    return info, net


def twin_episodes(net, episodes=6, noise=0.3, seed=0):
    """Rollouts laid out as rt-rl dataset writes a bag, plus each fresh tick's noise-free action."""
    rng = np.random.default_rng(seed)
    env = TimingEnv(
        TASK, frame_skip=5, inference_ticks=D, num_workers=N, history_length=HISTORY, episode_steps=STEPS
    )
    od = observation_delay(net.arch, net.depth)
    out = []
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        t0 = 100.0 * ep  # wall clock of the episode's tick 0
        states = [net.initial_state(1) for _ in range(N)]
        calls: list[list[tuple[np.ndarray, int]]] = [[] for _ in range(N)]  # (observation, tick) per call
        pending = {}  # arrival tick -> (worker, (observation, tick) it depends on or None, clean action, start)
        rows = {k: [] for k in ("obs", "cmd", "rew", "term", "trunc", "kind", "worker", "tick", "age", "start",
                                "clean", "seq")}  # fmt: skip
        held = None  # (observation, tick) behind the last actuated command
        done = False
        while not done:
            w, start = info["worker"], info["tick"]
            with torch.no_grad():
                a, states[w] = net.step(torch.as_tensor(obs).reshape(1, -1), states[w])
            a = a[0].numpy().astype(np.float64)
            calls[w].append((obs, start))
            dep = calls[w][-1 - od] if len(calls[w]) > od else None  # what the returned action depends on
            pending[start + env.D] = (w, dep, a, start)
            noisy = np.clip(a + noise * rng.standard_normal(a.shape), -1, 1)
            obs, _, term, trunc, info = env.step(noisy)
            for j, rec in enumerate(info["ticks"]):
                tick = start + j
                arrived = pending.pop(tick, None) if rec["fresh"] else None
                if arrived is not None and arrived[1] is not None:  # published: the pipeline depends on one
                    held = arrived[1]
                    kind, worker, clean, begun = "fresh", arrived[0], arrived[2], arrived[3]
                else:  # a filling call is not published live: the arbiter's fallback
                    kind, worker, clean, begun = "fallback", -1, np.full(3, np.nan), np.nan
                seen = held if held is not None else (rec["obs"], tick)
                rows["obs"].append(seen[0])
                rows["seq"].append(seen[1])
                rows["age"].append((tick - seen[1]) * PERIOD if held is not None else np.nan)
                for k, v in (("cmd", rec["command"]), ("rew", rec["reward"]), ("term", rec["terminated"]),
                             ("trunc", rec["truncated"]), ("kind", kind), ("worker", worker), ("tick", tick),
                             ("start", t0 + begun * PERIOD), ("clean", clean)):  # fmt: skip
                    rows[k].append(v)
            done = term or trunc
        rows["final"] = obs
        rows["t0"] = t0
        out.append(rows)
    env.close()
    return out


def write_minari(root, name, episodes):
    import minari
    from minari.data_collector import EpisodeBuffer

    task = get_task(TASK)
    buffers = []
    for i, e in enumerate(episodes):
        n = len(e["rew"])
        ticks = np.asarray(e["tick"])
        infos = {
            "tick": [-1, *ticks.tolist()],
            "tick_stamp": [np.nan, *(e["t0"] + ticks * PERIOD).tolist()],
            "tick_kind": ["reset", *e["kind"]],
            "action_age": [np.nan, *e["age"]],
            "worker_id": [-1, *e["worker"]],
            "inference_start": [np.nan, *e["start"]],
            "inference_end": [np.nan, *(np.asarray(e["start"]) + 0.005).tolist()],
            "policy_version": ["", *["test-behaviour-v1" if k == "fresh" else "" for k in e["kind"]]],
            "observation_seq": [*e["seq"], e["seq"][-1] + 1],
            "observation_stamp": [*(e["t0"] + np.asarray(e["seq"]) * PERIOD).tolist(), np.nan],
            "episode": [i] * (n + 1),
        }
        buffers.append(
            EpisodeBuffer(
                id=i,
                observations=np.stack([*e["obs"], e["final"]]).astype(np.float32),
                actions=np.stack(e["cmd"]).astype(np.float32),
                rewards=list(map(float, e["rew"])),
                terminations=list(map(bool, e["term"])),
                truncations=list(map(bool, e["trunc"])),
                infos=infos,
            )
        )
    import gymnasium as gym

    obs_space = gym.spaces.Box(-np.inf, np.inf, (buffers[0].observations.shape[1],), np.float32)
    act_space = gym.spaces.Box(task.action_low, task.action_high, (task.action_dim,), np.float32)
    with warnings.catch_warnings():  # minari's advice for datasets published on its server
        warnings.filterwarnings("ignore", category=UserWarning, module="minari")
        minari.create_dataset_from_buffers(
            dataset_id=name, buffer=buffers, observation_space=obs_space, action_space=act_space,
            algorithm_name="test", data_format="arrow",
        )  # fmt: skip


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("offline")
    _, net = behaviour_checkpoint(root / "behaviour.pt")
    episodes = twin_episodes(net)
    mp = pytest.MonkeyPatch()
    mp.setenv("MINARI_DATASETS_PATH", str(root / "datasets"))
    write_minari(root / "datasets", "rt_rl/twin-v0", episodes)
    yield {"root": root, "net": net, "episodes": episodes, "behaviour": str(root / "behaviour.pt")}
    mp.undo()


def config(made, **kw):
    base = dict(
        dataset="rt_rl/twin-v0", behaviour=made["behaviour"], out=str(made["root"] / "run"),
        batch_size=32, critic_hidden=32, total_steps=300, eval_episodes=2, log_every=100,
    )  # fmt: skip
    return offline.OfflineConfig(**(base | kw))


def test_the_recorded_timing_is_measured_in_the_data(made):
    trainer = offline.OfflineTrainer(config(made))
    rec = trainer.recorded
    assert rec["control_period"] == pytest.approx(PERIOD)
    assert (rec["num_workers"], rec["inference_ticks"], rec["stride"]) == (N, D, 2)
    assert trainer.policy_info().timing["inference_ticks"] == D
    assert trainer.behaviour_path.name == "behaviour.pt"


def test_the_actor_input_is_the_per_worker_sequence_the_acting_call_saw(made):
    """The behaviour network on the rebuilt chains gives back the noise-free action it actuated."""
    trainer = offline.OfflineTrainer(config(made, normalise=False))
    b, net = trainer.batches, made["net"]
    clean = np.concatenate([np.stack(e["clean"]) for e in made["episodes"]])
    rows = b.actor_rows
    assert len(rows) > 0.6 * len(clean)  # every published call of a twin rollout has its full chain
    with torch.no_grad():
        got = torch.tanh(net.last_head(b.seq[rows], b.mask[rows])[:, :3]).numpy()
    np.testing.assert_allclose(got, clean[rows], atol=1e-5)


def test_a_missing_call_breaks_the_chain_for_the_actor_only(made):
    t = offline.OfflineTrainer(config(made)).ticks
    chain, ok = offline_data.worker_chains(t, stride=2, length=3)
    r = int(np.flatnonzero(ok & (chain[:, 2] >= 0))[0])  # a row whose chain reaches two calls back
    t.tick[chain[r, 1]] -= 2  # as if the worker's call in between was never actuated
    chain2, ok2 = offline_data.worker_chains(t, stride=2, length=3)
    assert ok[r] and not ok2[r]
    assert chain2[r, 2] == -1


def test_the_bc_term_pulls_the_actor_to_the_executed_commands(made):
    trainer = offline.OfflineTrainer(config(made, alpha=0.0, policy_lr=1e-3))
    b, algo = trainer.batches, trainer.algo
    rows = b.actor_rows[:64]
    before = float(algo.actor_loss(b, rows)[0].detach())
    for _ in range(150):
        algo.actor_step(b, rows)
    after = float(algo.actor_loss(b, rows)[0].detach())
    assert after < 0.3 * before


def test_td3bc_trains_and_the_checkpoint_loads_and_evaluates_in_the_twin(made, capsys):
    out = made["root"] / "cli"
    args = ["train-offline", "rt_rl/twin-v0", "--behaviour", made["behaviour"], "--out", str(out),
            "--total-steps", "300", "--batch-size", "32", "--critic-hidden", "32", "--eval-episodes", "2",
            "--log-every", "100", "--no-progress"]  # fmt: skip
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "data        rt_rl/twin-v0" in printed and "new policy" in printed and "behaviour" in printed
    policy = load_policy(str(out / "policy.pt"), get_task(TASK))
    assert policy.info.arch == "pipelined_skip" and policy.info.history_length == HISTORY
    assert policy.info.timing["inference_ticks"] == D and policy.info.timing["num_workers"] == N
    policy.act(np.zeros(policy.info.input_dim, np.float32))
    log = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [100, 200, 300] and all(np.isfinite(r["q_loss"]) for r in log)
    summary = json.loads((out / "eval.json").read_text())
    returns = [sum(map(float, e["rew"])) for e in made["episodes"]]
    assert summary["data_mean_return"] == pytest.approx(np.mean(returns), rel=1e-5)
    again = evaluate_checkpoint(str(out / "policy.pt"), episodes=2, seed=1000)
    assert again["mean_return"] == pytest.approx(summary["new_mean_return"])


def test_an_unknown_dataset_is_one_line_error(made, capsys):
    assert cli.main(["train-offline", "rt_rl/nothing-v0", "--out", str(made["root"] / "x")]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and err.startswith("rt-rl train-offline: error: ") and "rt_rl/nothing-v0" in err
    )


def test_data_that_names_no_checkpoint_asks_for_the_behaviour_one(made, capsys):
    assert cli.main(["train-offline", "rt_rl/twin-v0", "--out", str(made["root"] / "y")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--behaviour FILE" in err and "test-behaviour-v1" in err
