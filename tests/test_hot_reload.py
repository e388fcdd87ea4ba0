"""What a running worker accepts as its new `policy_checkpoint`, from real checkpoint files."""

import subprocess
import sys

import pytest
import torch
from conftest import REPO, run_cli

from rt_rl.graph import describe_graph
from rt_rl.nodes.inference_worker import SWAP_TIMEOUT, load_candidate
from rt_rl.policy.networks import build_network
from rt_rl.policy.runtime import PolicyInfo, read_policy_info, resolve_checkpoint, save_checkpoint
from rt_rl.policy.swap import IngestContract
from rt_rl.reload import checkpoint_value, worker_names
from rt_rl.reload import main as reload_main
from rt_rl.tasks import get_task

SHIPPED = "checkpoints/hopper_pipelined_skip.pt"
HOPPER = get_task("Hopper-v5")


@pytest.fixture(scope="module")
def ingest() -> IngestContract:
    return IngestContract.of(read_policy_info(SHIPPED))  # what the demo's ingest produces


def copy_with_version(tmp_path, version: str, **info_changes):
    blob = torch.load(resolve_checkpoint(SHIPPED), map_location="cpu", weights_only=True)
    blob["info"] = {**blob["info"], "version": version, **info_changes}
    path = tmp_path / "b.pt"
    torch.save(blob, path)
    return str(path)


def test_copy_of_the_shipped_checkpoint_is_accepted_with_its_own_version(tmp_path, ingest):
    candidate = load_candidate(copy_with_version(tmp_path, "hopper-b"), HOPPER, ingest)
    assert candidate.policy.version == "hopper-b"
    assert candidate.delay_calls == 1 and candidate.input_map is None
    assert not candidate.live.is_set()


def test_same_weights_with_other_normalisation_are_accepted_with_an_input_map(tmp_path, ingest):
    path = copy_with_version(tmp_path, "hopper-c", obs_mean=[0.5] * 11, obs_std=[2.0] * 11)
    assert load_candidate(path, HOPPER, ingest).input_map is not None


def test_random_policy_is_built_for_the_ingests_history(ingest):
    candidate = load_candidate("random", HOPPER, ingest, seed=3)
    assert candidate.policy.info.history_length == ingest.history_length == 2


def test_text_file_is_refused_in_one_line(tmp_path, ingest):
    path = tmp_path / "notes.pt"
    path.write_text("not a checkpoint\n")
    with pytest.raises(ValueError, match=r"^policy checkpoint '.*notes.pt' could not be read: ") as err:
        load_candidate(str(path), HOPPER, ingest)
    assert "\n" not in str(err.value)


def test_missing_file_is_refused(ingest):
    with pytest.raises(ValueError, match="is not a readable file"):
        load_candidate("/nonexistent/policy.pt", HOPPER, ingest)


def test_checkpoint_of_another_task_is_refused(tmp_path, ingest):
    cheetah = get_task("HalfCheetah-v5")
    info = PolicyInfo("pipelined_skip", cheetah.gym_id, cheetah.obs_dim, cheetah.action_dim, 32, 2, 2)
    path = tmp_path / "cheetah.pt"
    save_checkpoint(path, info, build_network(info.arch, info.input_dim, info.act_dim, 32, 2))
    with pytest.raises(ValueError, match=r"HalfCheetah-v5.*task Hopper-v5"):
        load_candidate(str(path), HOPPER, ingest)


def test_checkpoint_with_another_history_length_is_refused(tmp_path, ingest):
    info = PolicyInfo("pipelined_skip", HOPPER.gym_id, HOPPER.obs_dim, HOPPER.action_dim, 32, 2, 0)
    path = tmp_path / "nohistory.pt"
    save_checkpoint(path, info, build_network(info.arch, info.input_dim, info.act_dim, 32, 2))
    with pytest.raises(ValueError, match="takes 0 past commands, the ingest appends 2"):
        load_candidate(str(path), HOPPER, ingest)


def test_reload_targets_the_worker_names_the_graph_description_uses():
    described = [s.name for s in describe_graph(3) if s.module == "rt_rl.nodes.inference_worker"]
    assert worker_names(3) == described


def test_reload_sends_an_absolute_path_for_a_local_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "b.pt").write_bytes(b"x")
    assert checkpoint_value("b.pt") == str(tmp_path / "b.pt")
    assert checkpoint_value("random") == "random"
    assert checkpoint_value(SHIPPED) == SHIPPED  # not here: resolved by the workers


def test_reload_refuses_zero_workers(capsys):
    assert reload_main(["x.pt", "--workers", "0"]) == 2
    assert capsys.readouterr().err.strip() == "rt-rl reload: error: --workers must be >= 1, got 0"


def test_running_worker_refuses_bad_checkpoints_through_its_parameter_service(ros_env, tmp_path):
    """A real worker node, reached by `rt-rl reload` over DDS: refusals come back as one line each and
    the worker keeps running. (No observations flow here, so an acceptable policy cannot go live:
    that is refused too, after the worker's wait.)"""
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint\n")
    cheetah = get_task("HalfCheetah-v5")
    info = PolicyInfo("pipelined_skip", cheetah.gym_id, cheetah.obs_dim, cheetah.action_dim, 32, 2, 2)
    other_task = tmp_path / "cheetah.pt"
    save_checkpoint(other_task, info, build_network(info.arch, info.input_dim, 6, 32, 2))
    worker = subprocess.Popen(
        [sys.executable, "-m", "rt_rl.nodes.inference_worker", "--ros-args", "-r", "__node:=inference_worker_0",
         "-p", f"policy_checkpoint:={SHIPPED}"],
        cwd=REPO, env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        expected = {
            text: "could not be read: ",
            other_task: "is for obs 17/action 6 (HalfCheetah-v5), task Hopper-v5 has obs 11/action 3",
            "random": f"loaded but not live after {SWAP_TIMEOUT:g} s",
        }
        for checkpoint, words in expected.items():
            proc = run_cli(["reload", str(checkpoint), "--timeout", "30"], ros_env, timeout=90)
            assert proc.returncode == 1, proc.stdout + proc.stderr
            line = proc.stdout.strip()
            assert line.startswith("inference_worker_0: refused: ") and words in line, line
            assert line.endswith("; still running Hopper-v5-pipelined_skip-D2N2-s1-t130000")
            assert "\n" not in line
        assert worker.poll() is None  # still running its old policy
    finally:
        worker.terminate()
        out, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, out
    assert out.count("refused: ") == 3
