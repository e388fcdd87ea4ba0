"""`rt-rl train-curve`: a training run's eval.jsonl read into per-delay series and drawn."""

import json

import pytest

from rt_rl.learning.curve import main, read_curve


def write_eval(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_read_curve_splits_per_delay_and_skips_the_summary_row(tmp_path):
    f = tmp_path / "eval.jsonl"
    write_eval(f, [
        {"tick": 10000, "mean_return": 60.0, "mean_by_delay": {"1": 70.0, "2": 60.0, "3": 50.0}},
        {"tick": 20000, "mean_return": 90.0, "mean_by_delay": {"1": 100.0, "2": 90.0, "3": 80.0}},
        {"ticks": 20000, "tick": 20000, "mean_return": 90.0},
    ])  # fmt: skip
    series = read_curve(f)
    assert series["mean"] == [(10000, 60.0), (20000, 90.0)]
    assert series["D=3"] == [(10000, 50.0), (20000, 80.0)]
    assert list(series) == ["mean", "D=1", "D=2", "D=3"]


def test_train_curve_writes_a_png_and_rejects_a_file_without_evaluations(tmp_path, capsys):
    f = tmp_path / "eval.jsonl"
    write_eval(f, [{"tick": 5000, "mean_return": 36.8}, {"tick": 10000, "mean_return": 130.7}])
    assert main([str(f), "--out", str(tmp_path / "c.png"), "--mark", "10000"]) == 0
    assert main([str(f), "--out", str(tmp_path / "c.png"), "--mark", "5000", "10000"]) == 0
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    other = tmp_path / "progress.jsonl"
    write_eval(other, [{"episode": 1, "return": 3.0}])
    assert main([str(other), "--out", str(tmp_path / "d.png")]) == 2
    assert "no evaluation rows" in capsys.readouterr().err
    with pytest.raises(ValueError, match=":1: not a JSON line"):
        (tmp_path / "bad.jsonl").write_text("tick,return\n")
        read_curve(tmp_path / "bad.jsonl")
