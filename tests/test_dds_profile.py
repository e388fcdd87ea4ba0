"""The realtime Fast DDS profile really puts the shared-memory receive threads at SCHED_FIFO 40."""

import json
import subprocess
import sys

import pytest

from rt_rl.graph import node_environment, realtime_permitted

THREADS = """
import json, os, rclpy
rclpy.init()
node = rclpy.create_node("rt_rl_profile_check")
out = {}
for tid in os.listdir("/proc/self/task"):
    name = open(f"/proc/self/task/{tid}/comm").read().strip()
    out[name] = [os.sched_getscheduler(int(tid)), os.sched_getparam(int(tid)).sched_priority]
print(json.dumps(out))
node.destroy_node()
rclpy.shutdown()
"""


def threads_with(env: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", THREADS], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_realtime_profile_receives_shared_memory_at_sched_fifo(ros_env):
    if not realtime_permitted():
        pytest.skip("this machine grants no SCHED_FIFO: the launcher uses the plain profile")
    env = {
        k: v
        for k, v in ros_env.items()
        if k not in ("FASTDDS_BUILTIN_TRANSPORTS", "FASTDDS_DEFAULT_PROFILES_FILE")
    }
    realtime = threads_with({**env, **node_environment(env, realtime=True)})
    shm = {
        name: sp for name, sp in realtime.items() if name.startswith("dds.shm.") and name != "dds.shm.wdog"
    }
    assert shm and all(sp == [1, 40] for sp in shm.values()), realtime  # 1: SCHED_FIFO
    assert all(sp[0] == 0 for name, sp in realtime.items() if name.startswith("dds.udp.")), realtime
    plain = threads_with({**env, **node_environment(env)})
    assert all(sp[0] == 0 for name, sp in plain.items() if name.startswith("dds.")), plain
