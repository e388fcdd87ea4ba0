"""`rt-rl policy check|export`: exit 0 when model, contract and reference fit; one line and exit 2 on
any mismatch or bad file, never a traceback. No ROS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from rt_rl.cli import main as rt_rl_main
from rt_rl.policy.cli import main

CHECKPOINT = "checkpoints/hopper_pipelined_skip_robot.pt"


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "hopper.onnx"
    assert rt_rl_main(["policy", "export", CHECKPOINT, str(out), "--steps", "300"]) == 0
    return out


def one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err, err
    assert err.startswith("rt-rl policy ") and ": error: " in err and '"' not in err, err
    return err


def test_export_writes_model_contract_and_reference(exported):
    for name in ("hopper.onnx", "hopper.contract.yaml", "hopper.reference.npz"):
        assert (exported.parent / name).is_file()
    with np.load(exported.with_name("hopper.reference.npz")) as ref:
        assert ref["inputs"].shape == (300, 17) and ref["outputs"].shape == (300, 3)


def test_check_passes_on_the_exported_model_with_parity_timing_and_worker_count(exported, capsys):
    ref = exported.with_name("hopper.reference.npz")
    code = main(["check", str(exported), "--reference", str(ref), "--calls", "200", "--rate", "100"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "parity: 300 steps" in out and "<= 1e-05: ok" in out
    assert "time.perf_counter around each act()" in out and "p50" in out and "p99" in out
    assert "workers at 100 Hz (period 10 ms): " in out and "ceil(T / P) + 1" in out


def test_check_times_an_rt_rl_checkpoint_too(capsys):
    assert main(["check", CHECKPOINT, "--calls", "50"]) == 0
    assert "rt_rl checkpoint pipelined_skip" in capsys.readouterr().out


def test_check_refuses_a_reference_the_model_does_not_reproduce(exported, tmp_path, capsys):
    with np.load(exported.with_name("hopper.reference.npz")) as z:
        ref = dict(z)
    ref["outputs"][120, 1] += 0.01
    np.savez(tmp_path / "bad.npz", **ref)
    err = one_line_error(capsys, main(["check", str(exported), "--reference", str(tmp_path / "bad.npz")]))
    assert "parity: max |output difference| 0.01 > 1e-05 at step 120 of 300" in err
    np.savez(tmp_path / "short.npz", inputs=ref["inputs"][:, :11], outputs=ref["outputs"])
    err = one_line_error(capsys, main(["check", str(exported), "--reference", str(tmp_path / "short.npz")]))
    assert "inputs have shape [300, 11], the worker's observation is [N, 17]" in err


def test_check_refuses_a_contract_with_a_wrong_joint_name(exported, tmp_path, capsys):
    contract = yaml.safe_load(exported.with_name("hopper.contract.yaml").read_text())
    contract["observation"]["terms"][0]["joints"][2] = "thigh"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(contract))
    err = one_line_error(capsys, main(["check", str(exported), "--contract", str(tmp_path / "c.yaml")]))
    assert "observation.terms[0].joints: joint 'thigh' is not a joint of Hopper-v5" in err


def test_check_refuses_a_model_whose_input_size_disagrees_with_the_contract(exported, tmp_path, capsys):
    contract = yaml.safe_load(exported.with_name("hopper.contract.yaml").read_text())
    contract["observation"]["terms"].pop()  # no previous actions: 11 entries, the model takes 17
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(contract))
    err = one_line_error(capsys, main(["check", str(exported), "--contract", str(tmp_path / "c.yaml")]))
    assert "has 17 entries, contract observation size is 11" in err


def test_check_without_contract_lists_what_it_found_and_what_is_missing(exported, tmp_path, capsys):
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(exported.read_bytes())
    assert main(["check", str(lonely)]) == 2
    out = capsys.readouterr().out
    assert "input  obs[1, 17] float" in out and "input  acts_in[3, 1, 64] float" in out
    assert "output action[1, 3] float" in out and "missing: a contract" in out


def test_check_refuses_a_file_that_is_not_a_model_without_a_traceback(tmp_path):
    junk = tmp_path / "model.onnx"
    junk.write_text("hello")
    (tmp_path / "model.contract.yaml").write_text(
        yaml.safe_dump(
            {
                "task": "Hopper-v5",
                "observation": {"terms": [{"type": "constant", "values": [1]}]},
                "action": {"joints": ["thigh_joint", "leg_joint", "foot_joint"]},
            }
        )
    )
    run = subprocess.run(
        [sys.executable, "-m", "rt_rl.cli", "policy", "check", str(junk)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().count("\n") == 0
    assert "not an ONNX model onnxruntime can run" in run.stderr


def test_check_and_export_refuse_missing_files_and_bad_arguments(tmp_path, capsys):
    err = one_line_error(capsys, main(["check", str(tmp_path / "none.onnx")]))
    assert "is not a readable file" in err
    err = one_line_error(capsys, main(["check", CHECKPOINT, "--calls", "0"]))
    assert "--calls" in err
    err = one_line_error(capsys, main(["export", CHECKPOINT, str(tmp_path / "out.bin")]))
    assert "must end in .onnx" in err
