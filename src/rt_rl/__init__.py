"""rt_rl: real-time RL control on ROS 2 (staggered inference + pipelined temporal-skip policies)."""

__version__ = "0.1.0"
