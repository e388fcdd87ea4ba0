"""ament_python package `rt_rl` (colcon on a ROS install, `pip install -e .` in the project venv)."""

from glob import glob

from setuptools import find_packages, setup

package_name = "rt_rl"

setup(
    name=package_name,
    version="0.1.0",
    package_dir={"": "src"},
    packages=find_packages("src"),
    package_data={"rt_rl": ["checkpoints/*.pt", "checkpoints/*.onnx", "checkpoints/*.yaml", "checkpoints/*.npz", "dds/*.xml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="rt_rl developers",
    description="Real-time RL control graph on ROS 2: staggered inference + pipelined skip policies.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "rt-rl = rt_rl.cli:main",
            "mujoco_sim = rt_rl.nodes.mujoco_sim:main",
            "sensor_ingest = rt_rl.nodes.sensor_ingest:main",
            "inference_worker = rt_rl.nodes.inference_worker:main",
            "actuator_arbiter = rt_rl.nodes.actuator_arbiter:main",
            "bag_recorder = rt_rl.nodes.bag_recorder:main",
            "safe_stop_guard = rt_rl.nodes.safe_stop_guard:main",
        ],
    },
)
