"""Fixtures for tests that start real ROS 2 processes over real DDS."""

from __future__ import annotations

import glob
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def ros_env(tmp_path):
    """An environment of its own: a random ROS_DOMAIN_ID, localhost discovery, logs in tmp.

    UDP transport only, so a killed process leaves no Fast DDS shared-memory files; any that
    appear anyway are removed afterwards.
    """
    before = set(glob.glob("/dev/shm/fastdds_*")) | set(glob.glob("/dev/shm/sem.fastdds_*"))
    env = dict(os.environ)
    env.update(
        ROS_DOMAIN_ID=str(random.randint(100, 200)),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        ROS_LOG_DIR=str(tmp_path / "ros_log"),
        FASTDDS_BUILTIN_TRANSPORTS="UDPv4",
        PYTHONUNBUFFERED="1",
    )
    yield env
    after = set(glob.glob("/dev/shm/fastdds_*")) | set(glob.glob("/dev/shm/sem.fastdds_*"))
    for leftover in after - before:
        Path(leftover).unlink(missing_ok=True)


def run_cli(
    args: list[str], env: dict, cwd: Path = REPO, timeout: float = 240
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rt_rl.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_node(module: str, ros_args: list[str], env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, "--ros-args", *ros_args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(capsys, path, prog: str) -> str:
    """The command wrote exactly one line on stderr, `<prog>: error: ...`, naming `path`."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"{prog}: error: "), err
    assert str(path) in err
    return err
