"""Node processes forked after their heavy imports were done once (the launcher's startup fast path).

Every inference worker imports torch (about 1.7 s of CPU here); N workers doing it at once on two
cores made startup take tens of seconds. The launcher instead imports the worker module and torch
once, while it is still single-threaded (nothing started, no DDS), and forks one process per worker.
Each fork waits at a gate (a pipe) until the launcher releases it at its stage, then runs the node's
`main(argv)` exactly as `python -m rt_rl.nodes.inference_worker --ros-args ...` would: its own rclpy
context and DDS participant, its own process. A respawn after a crash uses a normal subprocess.

`PreforkedProcess` offers the part of `subprocess.Popen` the launcher uses (pid, stdout, poll, wait,
send_signal, kill, returncode). On a ROS install `ros2 launch` starts the workers as plain executables.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import signal
import subprocess
import sys
import time
import traceback

PR_SET_NAME, PR_SET_PDEATHSIG = 15, 1


def _prctl(option: int, value: int | bytes) -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(option, value)


class PreforkedProcess:
    def __init__(self, module: str, argv: list[str], title: str) -> None:
        """Fork now (the caller must be single-threaded); the child waits until `release()`."""
        main = importlib.import_module(module).main
        sys.stdout.flush()
        sys.stderr.flush()
        gate_r, gate_w = os.pipe()
        out_r, out_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # --- child: never returns
            code = 1
            try:
                os.setsid()  # Ctrl-C reaches the launcher only; it stops children in order
                _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # nothing left running if the launcher dies
                _prctl(PR_SET_NAME, title.encode()[:15])  # what ps/top show
                os.close(gate_w)
                os.close(out_r)
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                os.dup2(out_w, 1)
                os.dup2(out_w, 2)
                os.close(out_w)
                go = os.read(gate_r, 1)
                os.close(gate_r)
                if go == b"1":
                    sys.stdout.reconfigure(line_buffering=True)
                    code = int(main(argv) or 0)
                else:
                    code = 0  # the launcher went away (or never started this stage)
            except BaseException:  # the exit code must tell, whatever happened
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        # --- parent
        os.close(gate_r)
        os.close(out_w)
        self.pid = pid
        self.args = argv
        self.returncode: int | None = None
        self.stdout = os.fdopen(out_r, "r", buffering=1)
        self._gate: int | None = gate_w

    def release(self) -> None:
        """Let the child start its node."""
        if self._gate is not None:
            os.write(self._gate, b"1")
            os.close(self._gate)
            self._gate = None

    def discard(self) -> None:
        """A child never released: close its gate (it exits 0) and reap it."""
        if self._gate is not None:
            os.close(self._gate)
            self._gate = None
        try:
            self.wait(timeout=5.0)
        except subprocess.TimeoutExpired:  # never leave one behind: a stop must not fail on it
            self.send_signal(signal.SIGKILL)
            self.wait()

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.01)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)
