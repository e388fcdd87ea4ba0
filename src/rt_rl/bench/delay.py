"""Benchmark: returns under delay of mlp (undelayed), pipelined, pipelined_skip, pipelined_skip + history.

    nice -n 19 python -m rt_rl.bench.delay --out docs/results/bench_delay

Timing model (paper B's, reproduced with `TimingEnv`): one tick is the time of ONE layer computation,
and "delay K" means a layer takes K env steps: the environment advances K env steps per tick with the
command held (`control_steps = K`), the pipelined network computes all its layers once per tick, and the
action used during tick t is the head output computed at tick t-1 (inference_ticks 0, 1 worker: the
latency lives inside the network). With depth 3 (L = 4 layers incl. the head) an observation reaches the
action after 4K env steps through `pipelined`, after K env steps through `pipelined_skip`. The `mlp`
baseline is instant: it acts every env step on the current observation (no delay at all).
History = the last 2 executed commands appended to the observation (paper: k = 2 for MuJoCo).

Budget (this machine: 2 shared CPU cores, one niced process, 1 torch thread): small networks
(actor 3x64, critics 2x64), batch 64, the same number of SAC gradient steps (= ticks) for every
configuration of a task, deterministic evaluation over 5 episodes at the end. Results are appended
run by run to OUT.jsonl (a killed sweep keeps its finished runs and is resumed by re-running the same
command); OUT.json / OUT.md / OUT.png are rewritten after every run.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from rt_rl.core.measurement import standard_error
from rt_rl.learning.train import SACConfig, Trainer

TASKS = ("InvertedPendulum-v5", "Hopper-v5", "HalfCheetah-v5")
DEFAULT_TICKS = {"InvertedPendulum-v5": 3000, "Hopper-v5": 6000, "HalfCheetah-v5": 6000}
VARIANTS = (("pipelined", 0), ("pipelined_skip", 0), ("pipelined_skip", 2))


def label(arch: str, history: int) -> str:
    return arch + (f"+hist{history}" if history else "")


def configs(delays: Sequence[int]) -> list[tuple[str, int, int]]:
    """(arch, history, delay K); K = 0 is the instant MLP."""
    return [("mlp", 0, 0)] + [(a, h, k) for k in delays for a, h in VARIANTS]


def parse_seeds_at(items: Sequence[str]) -> dict[int, list[int]]:
    """`["2=0,1,2"]` -> {2: [0, 1, 2]}: the seeds of one delay when it needs more than --seeds."""
    out: dict[int, list[int]] = {}
    for item in items:
        k, _, seeds = item.partition("=")
        try:
            out[int(k)] = [int(s) for s in seeds.split(",")]
        except ValueError:
            raise ValueError(f"--seeds-at takes DELAY=SEED,SEED,..., got '{item}'") from None
    return out


def plan(
    tasks: Sequence[str], delays: Sequence[int], seeds: Sequence[int], seeds_at: dict[int, list[int]]
) -> list[tuple[str, int, str, int, int]]:
    """Every run (task, seed, arch, history, K) the command asks for, seed-major, so that a sweep cut
    short still has every task's first seed(s). The undelayed mlp gets every seed any delay gets."""
    all_seeds = sorted(set(seeds).union(*seeds_at.values()))
    return [
        (task, seed, a, h, k)
        for seed in all_seeds
        for task in tasks
        for a, h, k in configs(delays)
        if seed in (all_seeds if k == 0 else seeds_at.get(k, seeds))
    ]


def run_one(
    task: str, arch: str, history: int, k: int, seed: int, ticks: int, args: argparse.Namespace
) -> dict:
    cfg = SACConfig(
        task=task,
        arch=arch,
        hidden=args.hidden,
        depth=args.depth,
        history=history,
        delay=0,
        workers=1,
        control_steps=max(1, k),
        total_ticks=ticks,
        learning_starts=min(args.learning_starts, ticks // 4),
        batch_size=args.batch_size,
        critic_hidden=args.critic_hidden,
        eval_every=ticks,
        eval_episodes=args.eval_episodes,
        checkpoint_every=ticks,
        seed=seed,
        out=str(Path(args.runs) / task / f"{label(arch, history)}_K{k}_s{seed}"),
    )
    t0 = time.monotonic()
    result = Trainer(cfg).run(progress=False)
    return {
        "task": task,
        "variant": label(arch, history),
        "arch": arch,
        "history": history,
        "delay": k,
        "seed": seed,
        "ticks": ticks,
        "final_return": round(result["mean_return"], 2),
        "final_std": round(result["std_return"], 2),
        "wall_s": round(time.monotonic() - t0, 1),
    }


def load(path: Path) -> list[dict]:
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )


def returns_by_cell(rows: list[dict]) -> dict:
    """{task: {variant: {delay: [final return of each seed]}}}."""
    cells: dict = {}
    for r in rows:
        cells.setdefault(r["task"], {}).setdefault(r["variant"], {}).setdefault(r["delay"], []).append(
            r["final_return"]
        )
    return cells


def aggregate(rows: list[dict]) -> dict:
    """{task: {variant: {delay: (mean, std, n)}}} over seeds."""
    return {
        t: {
            v: {k: (statistics.mean(x), statistics.pstdev(x), len(x)) for k, x in d.items()}
            for v, d in vs.items()
        }
        for t, vs in returns_by_cell(rows).items()
    }


# How many standard errors of the difference of two seed means make "a >= b" a finding: about a 95 %
# one-sided level for normal errors. With 2-3 seeds per cell most differences stay below it.
SPREAD_SE = 2.0


def compare(a: Sequence[float], b: Sequence[float]) -> str:
    """Does variant a return at least as much as b, given the spread over seeds? "yes" when a's mean
    is above b's by more than SPREAD_SE standard errors of the difference, "no" when below by as
    much, else "spread" (the seeds do not let it say; also with fewer than 2 seeds on a side)."""
    if len(a) < 2 or len(b) < 2:
        return "spread"
    diff = statistics.mean(a) - statistics.mean(b)
    se = math.hypot(standard_error(a), standard_error(b))
    if diff > SPREAD_SE * se:
        return "yes"
    if diff < -SPREAD_SE * se:
        return "no"
    return "spread"


def ordering(rows: list[dict], delays: Sequence[int]) -> list[dict]:
    """Paper B's claim per task and delay, skip+hist >= skip >= pipelined, judged against the spread
    over seeds (`compare`): holds "yes" when both steps are findings, "no" when either is reversed,
    else "spread"."""
    out = []
    for task, vs in returns_by_cell(rows).items():
        for k in delays:
            try:
                p, s, h = (vs[label(a, hh)][k] for a, hh in VARIANTS)
            except KeyError:
                continue
            skip_p, hist_s = compare(s, p), compare(h, s)
            verdicts = (skip_p, hist_s)
            holds = "no" if "no" in verdicts else ("yes" if verdicts == ("yes", "yes") else "spread")
            out.append(
                {
                    "task": task,
                    "delay": k,
                    "pipelined": round(statistics.mean(p), 1),
                    "skip": round(statistics.mean(s), 1),
                    "skip_hist": round(statistics.mean(h), 1),
                    "seeds": min(len(p), len(s), len(h)),
                    "skip_ge_pipelined": skip_p,
                    "hist_ge_skip": hist_s,
                    "holds": holds,
                }
            )
    return out


def reading(order: list[dict]) -> str:
    """The ordering table in words: where it holds, where it is reversed, where the seeds do not say,
    and how many cells merely have their means in the paper's order (not a finding)."""
    if not order:
        return "No (task, delay) cell has all three pipelined variants yet: nothing to read."

    def cells(verdict: str) -> str:
        hit = [f"{o['task']} delay {o['delay']}" for o in order if o["holds"] == verdict]
        return ", ".join(hit) if hit else "none"

    in_order = sum(o["skip_hist"] >= o["skip"] >= o["pipelined"] for o in order)
    return (
        f"Reading, {len(order)} (task, delay) cells. The ordering holds beyond the spread in: "
        f"{cells('yes')}. A step is reversed beyond the spread in: {cells('no')}. The seeds do not "
        f"let it say in: {cells('spread')}. The means alone fall in the paper's order in {in_order} of "
        f"{len(order)} cells (not a finding without the spread)."
    )


def report(rows: list[dict], out: Path, delays: Sequence[int], meta: dict) -> str:
    agg = aggregate(rows)
    order = ordering(rows, delays)
    out.with_suffix(".json").write_text(
        json.dumps(
            {
                "meta": meta,
                "ordering": order,
                "runs": rows,
                "summary": {
                    t: {
                        v: {
                            str(k): {"mean": round(m, 1), "std": round(s, 1), "seeds": n}
                            for k, (m, s, n) in d.items()
                        }
                        for v, d in vs.items()
                    }
                    for t, vs in agg.items()
                },
            },
            indent=2,
        )
    )
    lines = []
    for task, vs in agg.items():
        lines += [
            f"### {task}",
            "",
            "| variant | " + " | ".join(f"delay {k}" for k in delays) + " |",
            "|---|" + "---:|" * len(delays),
        ]
        if "mlp" in vs:
            m, s, n = vs["mlp"][0]
            lines.append(
                f"| mlp, undelayed (reference) | {m:.0f} ± {s:.0f} (n={n}) |" + " |" * (len(delays) - 1)
            )
        for a, h in VARIANTS:
            cells = []
            for k in delays:
                c = vs.get(label(a, h), {}).get(k)
                cells.append(f"{c[0]:.0f} ± {c[1]:.0f} (n={c[2]})" if c else "not run")
            lines.append(f"| {label(a, h)} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "### Ordering skip+hist >= skip >= pipelined",
        "",
        f"Seed means; a step is a finding (yes / **no**) only when the means differ by more than {SPREAD_SE:g}",
        "standard errors of their difference (sample std over seeds); otherwise the spread over seeds does",
        "not let it say (*spread*).",
        "",
        "| task | delay | seeds | pipelined | skip | skip+hist | skip >= pipelined | hist >= skip | holds |",
        "|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    show = {"yes": "yes", "no": "**no**", "spread": "*spread*"}
    lines += [
        f"| {o['task']} | {o['delay']} | {o['seeds']} | {o['pipelined']} | {o['skip']} | {o['skip_hist']} | "
        f"{show[o['skip_ge_pipelined']]} | {show[o['hist_ge_skip']]} | {show[o['holds']]} |"
        for o in order
    ]
    lines += ["", reading(order)]
    md = "\n".join(lines)
    _plot(agg, delays, out.with_suffix(".png"))
    planned = len(plan(list(meta["ticks"]), delays, meta["seeds"], meta.get("seeds_at", {})))
    progress = f"Runs logged: {len(rows)} of the {planned} this command plans (a rerun continues it)."
    out.with_suffix(".md").write_text(_markdown(meta, progress + "\n\n" + md, out.with_suffix(".png").name))
    return md


def _plot(agg: dict, delays: Sequence[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(agg)
    if not tasks:
        return
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.6 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        vs = agg[task]
        for a, h in VARIANTS:
            d = vs.get(label(a, h), {})
            ks = [k for k in delays if k in d]
            ax.errorbar(
                ks,
                [d[k][0] for k in ks],
                yerr=[d[k][1] for k in ks],
                marker="o",
                capsize=3,
                label=label(a, h),
            )
        if "mlp" in vs:
            ax.axhline(vs["mlp"][0][0], color="k", ls="--", lw=1, label="mlp, undelayed")
        ax.set(
            title=task,
            xlabel="delay K (env steps per layer tick)",
            ylabel="final return",
            xticks=list(delays),
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# Below this many ticks per run the budget is called small in the report (minutes per run here).
SMALL_BUDGET = 20_000


def _markdown(meta: dict, md: str, plot: str) -> str:
    small = min(meta["ticks"].values(), default=0) < SMALL_BUDGET
    budget_note = (
        "This is a small budget (minutes per run on one shared CPU core): returns are far below converged\n"
        "values and the comparison is between equally short trainings."
        if small
        else "The undelayed mlp's row says whether the budget lets a policy learn the task (issue 7 asks\n"
        "HalfCheetah >= 1500)."
    )
    return f"""# Benchmark: returns under delay

Command: `{meta["command"]}`

Timing model: paper B's. One tick = one layer computation = K env steps with the command held; the
pipelined networks compute all layers once per tick and act with the head computed at the previous
tick (depth {meta["depth"]} hidden layers + head, so `pipelined` acts on observations {meta["depth"] + 1}K env
steps old, `pipelined_skip` on K env steps old). `mlp` is instant and acts every env step (no delay).
Budget: SAC, actor {meta["depth"]}x{meta["hidden"]}, critics 2x{meta["critic_hidden"]}, batch {meta["batch_size"]},
min({meta["learning_starts"]}, ticks/4) random warm-up ticks; ticks (= gradient steps) per run: {meta["ticks"]}; seeds
{meta["seeds"]}{"".join(f" ({s} at delay {k})" for k, s in meta.get("seeds_at", {}).items())}; final return = deterministic evaluation, mean of {meta["eval_episodes"]} episodes. Mean ± std over seeds.
{budget_note}

{md}

![plot]({plot})
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rt-rl bench delay", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/results/bench_delay", help="output prefix (.jsonl/.json/.md/.png)")
    p.add_argument("--runs", default="runs/bench_delay", help="per-run training logs")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), help="Gymnasium tasks to train on")
    p.add_argument(
        "--delays", type=int, nargs="+", default=[1, 2, 4], help="observation-to-action delays, ticks"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds per cell")
    p.add_argument(
        "--seeds-at",
        nargs="*",
        default=[],
        metavar="DELAY=SEEDS",
        help="seeds of one delay instead of --seeds, e.g. 2=0,1,2 (3 seeds at delay 2 only)",
    )
    p.add_argument("--ticks", nargs="*", default=[], help="TASK=TICKS overrides of the per-task budget")
    p.add_argument("--hidden", type=int, default=64, help="policy hidden width")
    p.add_argument("--depth", type=int, default=3, help="policy layers (pipeline stages)")
    p.add_argument("--critic-hidden", type=int, default=64, help="critic hidden width")
    p.add_argument("--batch-size", type=int, default=64, help="SAC minibatch size")
    p.add_argument("--learning-starts", type=int, default=1000, help="random-action ticks before updates")
    p.add_argument("--eval-episodes", type=int, default=5, help="evaluation episodes per run")
    p.add_argument("--deadline", default="", help="UTC HH:MM after which no new run starts")
    p.add_argument("--report-only", action="store_true", help="only tabulate and plot the runs logged so far")
    args = p.parse_args(argv)
    try:
        seeds_at = parse_seeds_at(args.seeds_at)
    except ValueError as e:
        p.error(str(e))
    ticks = dict(DEFAULT_TICKS)
    for item in args.ticks:
        name, _, n = item.partition("=")
        ticks[name] = int(n)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    jsonl = out.with_suffix(".jsonl")
    meta = {
        # the command that trains these runs (a later --report-only only re-tabulates them)
        "command": "python -m rt_rl.bench.delay "
        + " ".join(x for x in (argv if argv is not None else sys.argv[1:]) if x != "--report-only"),
        "hidden": args.hidden,
        "depth": args.depth,
        "critic_hidden": args.critic_hidden,
        "batch_size": args.batch_size,
        "learning_starts": args.learning_starts,
        "ticks": {t: ticks[t] for t in args.tasks},
        "seeds": args.seeds,
        "seeds_at": seeds_at,
        "eval_episodes": args.eval_episodes,
    }
    done = {(r["task"], r["variant"], r["delay"], r["seed"]) for r in load(jsonl)}
    jobs = plan(args.tasks, args.delays, args.seeds, seeds_at)
    jobs = [j for j in jobs if (j[0], label(j[2], j[3]), j[4], j[1]) not in done]
    for task, seed, arch, hist, k in [] if args.report_only else jobs:
        if args.deadline and datetime.now(UTC).strftime("%H:%M") >= args.deadline:
            print(f"deadline {args.deadline} UTC reached: {len(jobs)} runs not started", flush=True)
            break
        row = run_one(task, arch, hist, k, seed, ticks[task], args)
        jobs = jobs[1:]
        with jsonl.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
        report(load(jsonl), out, args.delays, meta)
    print(report(load(jsonl), out, args.delays, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
