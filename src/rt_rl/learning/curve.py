"""Draw a training run's curve: deterministic evaluation return against training ticks.

    rt-rl train-curve runs/hopper_robust/eval.jsonl --out docs/hopper_robust_curve.png

Reads the `eval.jsonl` that `rt-rl train` writes (one JSON row per evaluation: `tick`, `mean_return`,
`std_return`, and with `--delay-choices` a `mean_by_delay`), draws the mean and one line per delay D,
and marks the shipped snapshot (`--mark TICK`) or the span of snapshots a shipped average is made of
(`--mark FIRST LAST`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def read_curve(path: Path) -> dict[str, list[tuple[int, float]]]:
    """{series: [(tick, mean return), ...]}: "mean" always, "D=<d>" per delay when evaluated per delay.
    The summary row `train` appends at the end (it has "ticks") is skipped."""
    series: dict[str, list[tuple[int, float]]] = {"mean": []}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError(f"{path}:{n}: not a JSON line") from None
        if "ticks" in row or "tick" not in row:
            continue
        series["mean"].append((int(row["tick"]), float(row["mean_return"])))
        for d, r in sorted(row.get("mean_by_delay", {}).items(), key=lambda kv: int(kv[0])):
            series.setdefault(f"D={d}", []).append((int(row["tick"]), float(r)))
    if not series["mean"]:
        raise ValueError(f"{path}: no evaluation rows (is it a train eval.jsonl?)")
    return series


def plot_curve(
    series: dict[str, list[tuple[int, float]]], out: Path, title: str, mark: Sequence[int] = ()
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4))
    for name, pts in series.items():
        ticks, returns = zip(*pts, strict=True)
        style = {"color": "k", "lw": 2} if name == "mean" else {"lw": 1, "alpha": 0.8}
        ax.plot([t / 1000 for t in ticks], returns, label=name, **style)
    if len(mark) == 1:
        ax.axvline(mark[0] / 1000, color="r", ls=":", lw=1, label=f"shipped ({mark[0] // 1000}k)")
    elif len(mark) == 2:  # the snapshots a shipped average is made of
        ax.axvspan(mark[0] / 1000, mark[1] / 1000, color="r", alpha=0.15, label="shipped: their average")
    ax.set(xlabel="training ticks (thousands)", ylabel="evaluation return", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rt-rl train-curve", description=__doc__.splitlines()[0])
    p.add_argument("eval_jsonl", type=Path, help="a run's eval.jsonl")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--title", default="", help="plot title (default: the run directory's name)")
    p.add_argument(
        "--mark",
        type=int,
        nargs="+",
        default=[],
        metavar="TICK",
        help="the shipped snapshot's tick, or FIRST LAST of the snapshots a shipped average is made of",
    )
    args = p.parse_args(argv)
    if len(args.mark) > 2:
        p.error("--mark takes one tick or two (FIRST LAST)")
    try:
        series = read_curve(args.eval_jsonl)
    except (OSError, ValueError) as e:
        print(f"rt-rl train-curve: error: {e}", file=sys.stderr)
        return 2
    plot_curve(series, args.out, args.title or args.eval_jsonl.parent.name, args.mark)
    last = {k: v[-1] for k, v in series.items()}
    print(f"{args.out}: {len(series['mean'])} evaluations, last {last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
