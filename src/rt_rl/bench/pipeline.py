"""Benchmark: one pipelined tick against a sequential forward pass of the same network.

    python -m rt_rl.bench.pipeline --out docs/results/bench_pipeline

Same parameters for both: the `pipelined` network of `depth` ReLU layers of width `width` and a head.
- sequential: `forward_sequential`, the layers one after the other (what an instant MLP does per action);
  depth + 1 matmul calls that must run in order.
- pipelined tick: `tick`, all layers at once on the previous tick's activations; the equal deep layers
  are ONE batched `baddbmm` call, so 3 matmul calls whatever the depth.
Batch 1 (one observation, as a worker), float32, CPU with `--threads` torch threads (default 1: the
machine is shared), and CUDA when available. Both variants are timed in interleaved blocks, median
of the block medians, so background load hits both alike. Writes OUT.json, OUT.md (table) and OUT.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from rt_rl.policy.networks import build_network

DEPTHS = (2, 3, 4, 6, 8, 12, 16)
WIDTHS = (256, 1024)


def _time_block(fn: Callable[[], object], reps: int, sync: Callable[[], None]) -> float:
    sync()
    t0 = time.perf_counter_ns()
    for _ in range(reps):
        fn()
    sync()
    return (time.perf_counter_ns() - t0) / reps / 1e3  # microseconds per call


def measure(
    width: int, depth: int, input_dim: int, act_dim: int, device: str, blocks: int, reps: int
) -> dict:
    torch.manual_seed(0)
    net = build_network("pipelined", input_dim, act_dim, width, depth).to(device).eval()
    obs = torch.randn(1, input_dim, device=device)
    state = tuple(s.to(device) for s in net.initial_state(1))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with torch.inference_mode():
        state = net.tick(obs, state)[1]  # a realistic (non-zero) state

        def seq() -> object:
            return net.forward_sequential(obs)

        def pipe() -> object:
            return net.tick(obs, state)

        for fn in (seq, pipe):  # warm-up
            _time_block(fn, reps, sync)
        seq_t, pipe_t = [], []
        for _ in range(blocks):
            seq_t.append(_time_block(seq, reps, sync))
            pipe_t.append(_time_block(pipe, reps, sync))
    s, p = statistics.median(seq_t), statistics.median(pipe_t)
    return {
        "device": device,
        "width": width,
        "depth": depth,
        "sequential_us": round(s, 2),
        "pipelined_tick_us": round(p, 2),
        "ratio": round(s / p, 3),
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| device | width | depth | sequential forward (µs) | pipelined tick (µs) | sequential / pipelined |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['device']} | {r['width']} | {r['depth']} | {r['sequential_us']:.1f} | "
        f"{r['pipelined_tick_us']:.1f} | {r['ratio']:.2f}x |"
        for r in rows
    ]
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for dev in sorted({r["device"] for r in rows}):
        for w in sorted({r["width"] for r in rows}):
            sel = [r for r in rows if r["width"] == w and r["device"] == dev]
            d = [r["depth"] for r in sel]
            ax1.plot(d, [r["sequential_us"] for r in sel], "o--", label=f"sequential, w={w} ({dev})")
            ax1.plot(d, [r["pipelined_tick_us"] for r in sel], "s-", label=f"pipelined tick, w={w} ({dev})")
            ax2.plot(d, [r["ratio"] for r in sel], "o-", label=f"w={w} ({dev})")
    ax1.set(
        xlabel="depth (hidden layers)",
        ylabel="wall time per call (µs, batch 1)",
        yscale="log",
        title="One action: sequential forward vs one pipelined tick",
    )
    ax2.axhline(1.0, color="grey", lw=0.8)
    ax2.set(xlabel="depth (hidden layers)", ylabel="sequential / pipelined tick", title="Speed-up")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rt-rl bench pipeline", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/results/bench_pipeline", help="output prefix (.json/.md/.png)")
    p.add_argument("--depths", type=int, nargs="+", default=list(DEPTHS), help="layer counts")
    p.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS), help="hidden widths")
    p.add_argument("--input-dim", type=int, default=17, help="Hopper: 11 + 2*3 history")
    p.add_argument("--act-dim", type=int, default=3, help="action dimension (Hopper: 3)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--blocks", type=int, default=15, help="timed blocks per case (median taken)")
    p.add_argument("--reps", type=int, default=50, help="forward calls per block")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for dev in devices:
        for w in args.widths:
            for d in args.depths:
                rows.append(measure(w, d, args.input_dim, args.act_dim, dev, args.blocks, args.reps))
                print(
                    f"{dev} width {w:5d} depth {d:3d}: sequential {rows[-1]['sequential_us']:8.1f} µs  "
                    f"pipelined {rows[-1]['pipelined_tick_us']:8.1f} µs  ratio {rows[-1]['ratio']:.2f}x",
                    flush=True,
                )
    from4 = [r["ratio"] for r in rows if r["depth"] >= 4]
    summary = {
        "min_ratio_depth_ge_4": min(from4) if from4 else None,
        "max_ratio_depth_ge_4": max(from4) if from4 else None,
    }
    meta = {
        "command": "python -m rt_rl.bench.pipeline " + " ".join(argv if argv is not None else sys.argv[1:]),
        "torch": torch.__version__,
        "threads": args.threads,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "batch": 1,
        "dtype": "float32",
        "blocks": args.blocks,
        "reps": args.reps,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "summary": summary, "rows": rows}, indent=2)
    )
    plot(rows, out.with_suffix(".png"))
    md = table(rows)
    print("\n" + md)
    print(
        f"\nfrom depth 4 on: the pipelined tick is {summary['min_ratio_depth_ge_4']:.2f}x to "
        f"{summary['max_ratio_depth_ge_4']:.2f}x faster than the sequential forward pass"
    )
    out.with_suffix(".md").write_text(_markdown(meta, summary, md))
    return 0


def _markdown(meta: dict, summary: dict, md: str) -> str:
    return f"""# Benchmark: one pipelined tick vs a sequential forward pass

Command: `{meta["command"]}` (torch {meta["torch"]}, {meta["threads"]} thread(s), {meta["processor"]},
batch {meta["batch"]}, {meta["dtype"]}; median of {meta["blocks"]} interleaved blocks of {meta["reps"]} calls).

Both variants use the same parameters (`pipelined` network, input 17 = Hopper + 2 commands of history,
3 actions). The sequential pass runs depth + 1 dependent matmuls; the pipelined tick runs the first
layer, ONE `baddbmm` over the stacked equal deep layers, and the head.

From depth 4 on, the pipelined tick is **{summary["min_ratio_depth_ge_4"]:.2f}x to
{summary["max_ratio_depth_ge_4"]:.2f}x** the speed of the sequential pass (ratio = sequential / pipelined).

{md}

![plot](bench_pipeline.png)

Reading: per tick both variants do the same arithmetic; the pipelined tick saves the per-layer call
overhead and lets one kernel walk all layers, so the gain is largest for small widths, where per-call
overhead dominates, and shrinks toward 1x when a single layer's matmul dominates (width 1024 on one CPU
thread). The pipelined tick yields one action per tick, whatever the depth; the sequential pass must
finish all layers before its action exists. No GPU on this machine: CUDA rows appear when one exists.
"""


if __name__ == "__main__":
    sys.exit(main())
