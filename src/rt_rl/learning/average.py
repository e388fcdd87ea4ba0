"""Average the weights of several snapshots of one training run into one policy checkpoint.

    rt-rl average-policy OUT.pt runs/x/policies/policy_00620000.pt ... runs/x/policies/policy_00660000.pt

SAC's actor moves a lot between evaluations (on Hopper the 20-episode return of consecutive 10k-tick
snapshots swings by 1000 and more); the mean of the weights of a few consecutive snapshots is a policy in
the middle of that neighbourhood, usually steadier than any one of them (the idea of stochastic weight
averaging, Izmailov et al. 2018, applied after training). Only snapshots of the same run make sense: the
command refuses checkpoints whose architecture, task, normalisation or trained timing differ. The output
records which files it averages (`averaged_from`) and is loaded like any checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from rt_rl.policy.runtime import CHECKPOINT_FORMAT, _load_blob

# Everything but the weights and the version must be equal for an average to mean anything.
SAME = (
    "arch",
    "task",
    "obs_dim",
    "act_dim",
    "hidden",
    "depth",
    "history_length",
    "obs_mean",
    "obs_std",
    "timing",
)


def average_checkpoints(paths: Sequence[Path]) -> dict:
    """The checkpoint blob whose weights are the element-wise mean of `paths`' weights."""
    if len(paths) < 2:
        raise ValueError("give at least two checkpoints to average")
    # runtime's own loader: readable, an rt_rl checkpoint, errors naming the file
    loaded = [_load_blob(p) for p in paths]
    blobs = [blob for _, blob in loaded]
    first = loaded[0][0].__dict__
    for p, (info, _) in zip(paths[1:], loaded[1:], strict=True):
        differ = [k for k in SAME if info.__dict__.get(k) != first.get(k)]
        if differ:
            raise ValueError(f"{p}: {', '.join(differ)} differ from {paths[0]}: not snapshots of one run")
    weights = {
        k: torch.stack([b["state_dict"][k].float() for b in blobs]).mean(0).to(v.dtype)
        for k, v in blobs[0]["state_dict"].items()
    }
    info = dict(blobs[-1]["info"])
    info["version"] = f"{info.get('version') or Path(paths[-1]).stem}-avg{len(paths)}"
    return {
        "format": CHECKPOINT_FORMAT,
        "info": info,
        "state_dict": weights,
        "averaged_from": [Path(p).name for p in paths],
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rt-rl average-policy", description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="checkpoint to write")
    p.add_argument(
        "checkpoints", type=Path, nargs="+", help="snapshots of one run (policies/policy_<tick>.pt)"
    )
    args = p.parse_args(argv)
    try:
        blob = average_checkpoints(args.checkpoints)
    except ValueError as e:
        print(f"rt-rl average-policy: error: {e}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, args.out)
    print(f"{args.out}: mean of {len(args.checkpoints)} snapshots, version {blob['info']['version']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
