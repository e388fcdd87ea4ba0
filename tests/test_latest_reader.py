"""LatestReader.wait_for: a blocking wait on one DDS reader (the worker's grace for an observation in
transit), run over real DDS in a process of its own."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r"""
import json, threading, time
import rclpy
from std_msgs.msg import Float64MultiArray
from rt_rl.graph import SENSOR, NEWEST
from rt_rl.nodes.common import LatestReader, qos_profile

rclpy.init()
node = rclpy.create_node("wait_probe")
pub = node.create_publisher(Float64MultiArray, "/wait_probe", qos_profile(NEWEST))
reader = LatestReader(node, Float64MultiArray, "/wait_probe", qos_profile(SENSOR))
deadline = time.monotonic() + 10.0
while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
    time.sleep(0.01)
out = {}
t0 = time.monotonic(); out["empty_ready"] = reader.wait_for(0.05); out["empty_s"] = time.monotonic() - t0
threading.Timer(0.1, lambda: pub.publish(Float64MultiArray(data=[1.5]))).start()
t0 = time.monotonic(); out["sent_ready"] = reader.wait_for(3.0); out["sent_s"] = time.monotonic() - t0
msg = reader.take_newest()
out["data"] = list(msg.data) if msg is not None else None
out["after_take_ready"] = reader.wait_for(0.0)
reader.destroy()
out["destroyed_ready"] = reader.wait_for(0.01)
print(json.dumps(out))
node.destroy_node(); rclpy.shutdown()
"""


def test_wait_for_blocks_until_a_sample_arrives_and_times_out_without_one(ros_env):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=ros_env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["empty_ready"] is False and out["empty_s"] >= 0.04  # waited, found nothing
    assert out["sent_ready"] is True and 0.05 <= out["sent_s"] < 2.0  # woke for the sample, not the timeout
    assert out["data"] == [1.5]
    assert out["after_take_ready"] is False  # taken: nothing left to wait for
    assert out["destroyed_ready"] is False
