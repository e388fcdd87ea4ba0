"""The timekeeping threads' waits: tight timer slack and a wait that ends on its deadline."""

from __future__ import annotations

import ctypes
import sys
import threading
import time

import pytest

from rt_rl.nodes.common import tighten_timer_slack, wait_until_monotonic


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux only")
def test_timer_slack_is_set_to_one_microsecond_for_the_calling_thread():
    result = {}

    def probe() -> None:  # a thread of its own: the slack is per thread
        result["ok"] = tighten_timer_slack()
        result["ns"] = ctypes.CDLL(None).prctl(30, 0, 0, 0, 0)  # PR_GET_TIMERSLACK

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    assert result == {"ok": True, "ns": 1000}


def test_precise_wait_never_ends_before_its_deadline_and_ends_soon_after():
    late = []
    for _ in range(20):
        deadline = time.monotonic() + 0.003
        wait_until_monotonic(deadline, threading.Event())
        late.append(time.monotonic() - deadline)
    assert min(late) >= 0.0
    assert sorted(late)[len(late) // 2] < 0.002  # median: the spun tail ends it on time


def test_a_stop_request_ends_the_sleeping_part_of_a_precise_wait():
    stop = threading.Event()
    stop.set()
    t0 = time.monotonic()
    wait_until_monotonic(t0 + 5.0, stop)
    assert time.monotonic() - t0 < 1.0
