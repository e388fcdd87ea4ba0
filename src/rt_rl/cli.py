"""`rt-rl`: one command for the project's jobs.

rt-rl launch [PARAMS.yaml] [--duration S] [--summary FILE.json] [--workers N] [--synthetic-latency S]
             [--record DIR]
rt-rl bench graph|soak|record|pipeline|delay|stagger|twin|controller-load|faults ...
rt-rl train ...
rt-rl train-offline DATASET_ID --out DIR   (TD3+BC from a recorded Minari dataset, evaluated in the twin)
rt-rl train-curve RUN/eval.jsonl --out PNG   (a training run's evaluation returns, per delay)
rt-rl evaluate --checkpoint CKPT|MODEL [--timing-from CKPT] [--delay D,..]   (returns in the twin)
rt-rl average-policy OUT.pt SNAPSHOT.pt...   (the mean of one run's snapshots' weights)
rt-rl report RUN_DIR_OR_BAG [-o report.html]
rt-rl dataset BAG... --out DIR [--name rt_rl/NAME-v0]   (a Minari dataset of recorded bags)
rt-rl reload CHECKPOINT [--workers N]   (a new policy live on the running workers, one at a time)
rt-rl bag reindex BAG   (a bag a killed recorder left: readable up to its last chunk, metadata.yaml rebuilt)
rt-rl policy check MODEL [--contract C] [--reference REF.npz] [--calls N] [--threads K] [--rate HZ]
rt-rl policy export CHECKPOINT OUT.onnx   (rt_rl's own policy as ONNX + contract, with parity)
rt-rl policy fit SB3_MODEL.zip --timing-from CKPT --out DIR   (predicted at the live timing, fine-tuned there)
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

DEFAULT_PARAMS = "config/demo.yaml"


def _workers_arg(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"an integer >= 1 or 'auto', got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"an integer >= 1 or 'auto', got {value!r}")
    return n


def _default_params() -> str:
    """config/demo.yaml from the checkout, or the installed share/rt_rl/config copy."""
    if Path(DEFAULT_PARAMS).is_file():
        return DEFAULT_PARAMS
    share = Path(sys.prefix) / "share" / "rt_rl" / DEFAULT_PARAMS
    return str(share) if share.is_file() else DEFAULT_PARAMS


def _launch(argv: list[str]) -> int:
    from rt_rl.launcher import Launcher, LaunchOptions

    ap = argparse.ArgumentParser(
        prog="rt-rl launch", description="Start, supervise and measure the rt_rl graph."
    )
    ap.add_argument("params", nargs="?", default=None, help=f"ROS 2 params file (default {DEFAULT_PARAMS})")
    ap.add_argument(
        "--duration", type=float, help="seconds to measure after warm-up, then stop (default: Ctrl-C)"
    )
    ap.add_argument("--summary", help="write the summary JSON here (default RUN_DIR/summary.json)")
    ap.add_argument(
        "--workers",
        type=_workers_arg,
        help="number of inference workers, or 'auto' (sized from T; see max_workers, warm_spares)",
    )
    ap.add_argument(
        "--synthetic-latency", type=float, help="seconds added to every inference (emulated model)"
    )
    ap.add_argument(
        "--run-dir", help="where logs, the expanded params and the summary go (default runs/<time>)"
    )
    ap.add_argument("--startup-timeout", type=float, default=90.0, help="seconds each start stage may take")
    ap.add_argument("--echo-logs", action="store_true", help="print the nodes' output, prefixed by node name")
    ap.add_argument("--quiet", action="store_true", help="no progress lines (the summary is still printed)")
    ap.add_argument(
        "--record",
        metavar="DIR",
        help="record a rosbag2 bag of the graph's topics into DIR (any params file)",
    )
    ap.add_argument(
        "--robot",
        metavar="ROBOT.yaml",
        help="also start a simulated robot from this params file (its mujoco_sim section, e.g. "
        "config/robots/hopper.yaml: a ros2_control-like robot), outside the graph; needs a params file "
        "with a robot section. Started first, stopped last",
    )
    a = ap.parse_args(argv)
    return Launcher(
        LaunchOptions(
            params_file=a.params or _default_params(),
            duration=a.duration,
            summary_path=a.summary,
            workers=a.workers,
            synthetic_latency=a.synthetic_latency,
            run_dir=a.run_dir,
            startup_timeout=a.startup_timeout,
            echo_logs=a.echo_logs,
            quiet=a.quiet,
            record=a.record,
            robot=a.robot,
        )
    ).run()


# Sub-commands implemented in their own modules, each exposing main(argv) -> int.
MODULES = {
    ("bench", "graph"): "rt_rl.bench.graph",
    ("bench", "pipeline"): "rt_rl.bench.pipeline",
    ("bench", "delay"): "rt_rl.bench.delay",
    ("bench", "soak"): "rt_rl.bench.soak",
    ("bench", "record"): "rt_rl.bench.record",
    ("bench", "stagger"): "rt_rl.bench.stagger",
    ("bench", "twin"): "rt_rl.bench.twin",
    ("bench", "controller-load"): "rt_rl.bench.controller_load",
    ("bench", "faults"): "rt_rl.bench.faults",
    ("train",): "rt_rl.learning.train",
    ("evaluate",): "rt_rl.learning.evaluate",
    ("train-offline",): "rt_rl.learning.train_offline",
    ("train-curve",): "rt_rl.learning.curve",
    ("average-policy",): "rt_rl.learning.average",
    ("report",): "rt_rl.report",
    ("dataset",): "rt_rl.dataset",
    ("reload",): "rt_rl.reload",
    ("bag",): "rt_rl.bagfile",
    ("policy",): "rt_rl.policy.cli",
}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if args[0] == "launch":
        return _launch(args[1:])
    for key, module in MODULES.items():
        if tuple(args[: len(key)]) == key:
            return int(importlib.import_module(module).main(args[len(key) :]) or 0)
    print(f"rt-rl: error: unknown command '{' '.join(args[:2])}' (see rt-rl --help)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
