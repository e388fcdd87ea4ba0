"""`rt-rl report`: one self-contained HTML page describing one run, from its bag or its run directory.

  rt-rl report RUN_DIR_OR_BAG [-o report.html]

RUN_DIR_OR_BAG is a run directory of `rt-rl launch` (runs/<time>: bag_<time>/, timeline.jsonl,
params.yaml, summary.json) or a rosbag2 bag directory (metadata.yaml and an .mcap). The page shows the
command inter-arrival at the recorder, the fresh-action ratio over time, the action age at the recorder,
the workers' inference spans against the command times (the staggering), the episode returns, and the
run's parameters and summary. Every image is an inlined PNG: the page fetches nothing.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rt_rl.graph import TOPICS

# The topics read (graph.TOPICS keys); a run's params.yaml may rename them for the recorder.
READ_TOPICS = ("command", "action", "diagnostics", "episode_end", "reward")
ARBITER_STATUS = "rt_rl/actuator_arbiter"
ENDED_COLORS = {"terminated": "#d62728", "truncated": "#2ca02c", "ended": "0.5"}
WORKER_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


class ReportError(Exception):
    """A one-line reason why there is no report (exit code 2)."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="rt-rl report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("path", help="run directory (runs/<time>) or rosbag2 bag directory")
    ap.add_argument("-o", "--output", default="report.html", help="HTML file to write (default report.html)")
    ap.add_argument(
        "--summary", help="the run's summary JSON (default: found in the run directory or runs/demo)"
    )
    ap.add_argument(
        "--window", type=float, default=0.3, help="seconds of the staggering picture, mid-run (default 0.3)"
    )
    a = ap.parse_args(argv)
    if a.window <= 0:
        ap.error("--window must be > 0")
    started = time.monotonic()
    try:
        run = load_run(Path(a.path), Path(a.summary) if a.summary else None)
        page = render_html(run, window_s=a.window)
    except ReportError as e:
        print(f"rt-rl report: error: {one_line(str(e))}", file=sys.stderr)
        return 2
    out = Path(a.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    print(f"rt-rl report: wrote {out} ({len(page) / 1e6:.2f} MB) in {time.monotonic() - started:.1f} s")
    return 0


# ---------------------------------------------------------------------------------------------------
# Finding and reading the run


@dataclass(frozen=True)
class ActionTiming:
    """When one action was computed and received; all times wall clock, ns."""

    log_ns: int  # the recorder's receive time
    worker_id: int
    observation_ns: int
    start_ns: int
    end_ns: int
    schedule_revision: int = 1


@dataclass(frozen=True)
class EpisodeEnd:
    episode: int
    steps: int
    episode_return: float
    terminated: bool
    truncated: bool
    log_ns: int = 0  # when the bag received it


@dataclass
class BagData:
    path: Path
    topics: dict[str, str]  # READ_TOPICS key -> the name recorded
    start_ns: int
    end_ns: int
    counts: dict[str, int]
    command_ns: np.ndarray
    actions: list[ActionTiming]
    arbiter: list[tuple[int, dict]]  # (log time ns, the arbiter's statistics)
    episodes: list[EpisodeEnd]
    episodes_from: str  # the topic the episodes were read from, '' if none


@dataclass
class Run:
    name: str
    bag: BagData | None = None
    other_bags: list[Path] = field(default_factory=list)
    params_path: Path | None = None
    params_text: str = ""
    timeline: list[dict] = field(default_factory=list)
    summary: dict | None = None
    summary_path: Path | None = None
    notes: list[str] = field(default_factory=list)


def one_line(text: str) -> str:
    return " ".join(text.split())


def is_bag(path: Path) -> bool:
    return path.is_dir() and (path / "metadata.yaml").is_file()


def load_run(path: Path, summary_path: Path | None = None, progress: bool = True) -> Run:
    """Everything the page needs from a run directory or a bag directory."""
    if not path.exists():
        raise ReportError(f"{path}: no such file or directory")
    if path.is_file() and is_bag(path.parent):  # metadata.yaml or the .mcap inside a bag
        path = path.parent
    if not path.is_dir():
        raise ReportError(f"{path}: not a directory (give a run directory or a rosbag2 bag directory)")
    bags: list[Path] = []
    if is_bag(path):
        bags, run_dir = [path], path.parent
    else:
        bags = sorted(d for d in path.iterdir() if is_bag(d))  # bag_<time>: oldest first
        run_dir = path
        if not bags and not any((path / n).is_file() for n in ("timeline.jsonl", "summary.json")):
            hint = (
                " (it holds an .mcap but no metadata.yaml: the recorder was not closed)"
                if any(path.glob("*.mcap"))
                else ""
            )
            raise ReportError(
                f"{path}: neither a rosbag2 bag (metadata.yaml) nor a run directory "
                f"(bag_*/, timeline.jsonl or summary.json){hint}"
            )
    bag = bags[-1] if bags else None
    run = Run(name=path.name, other_bags=bags[:-1])

    for candidate in (bag / "params.yaml" if bag else None, run_dir / "params.yaml"):
        if candidate is not None and candidate.is_file():
            run.params_path, run.params_text = candidate, candidate.read_text(errors="replace")
            break
    params = parse_params(run.params_text)
    timeline_path = run_dir / "timeline.jsonl"
    if timeline_path.is_file():
        run.timeline = read_jsonl(timeline_path)
    if summary_path is not None:
        try:
            run.summary, run.summary_path = json.loads(summary_path.read_text()), summary_path
        except (OSError, ValueError) as e:
            raise ReportError(f"{summary_path}: not a readable summary JSON: {e}") from None
    else:
        found = find_summary(bag, run_dir)
        try:
            run.summary = json.loads(found.read_text()) if found else None
            run.summary_path = found
        except (OSError, ValueError):
            run.notes.append(f"{found} is not readable JSON: no summary shown.")
    if bag is not None:
        run.bag = read_bag(bag, recorded_topics(params), progress)
    elif not run.timeline and run.summary is None:
        raise ReportError(f"{path}: no bag and nothing readable in timeline.jsonl or summary.json")
    if run.other_bags:
        run.notes.append(
            f"{len(bags)} bags in the run directory; this page reports the newest, {bag.name if bag else ''}."
        )
    return run


def parse_params(text: str) -> dict:
    try:
        params = yaml.safe_load(text) if text else {}
    except yaml.YAMLError:
        return {}
    return params if isinstance(params, dict) else {}


def node_params(params: dict, node: str) -> dict:
    """A node's parameters from a ROS 2 params file: the '/**' section overlaid with the node's own."""
    out: dict = {}
    for section in ("/**", node):
        values = (params.get(section) or {}).get("ros__parameters") if isinstance(params, dict) else None
        if isinstance(values, dict):
            out.update(values)
    return out


def recorded_topics(params: dict) -> dict[str, str]:
    """The names the recorder recorded the topics under (its `<key>_topic` parameters)."""
    recorder = node_params(params, "bag_recorder")
    return {key: str(recorder.get(TOPICS[key].param) or TOPICS[key].default) for key in READ_TOPICS}


def read_jsonl(path: Path) -> list[dict]:
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a killed launcher
        if isinstance(record, dict):
            records.append(record)
    return records


def find_summary(bag: Path | None, run_dir: Path) -> Path | None:
    """The run's own summary.json, else `make demo`'s runs/demo/summary.json if it describes this run."""
    for candidate in (run_dir / "summary.json", bag.parent / "summary.json" if bag else None):
        if candidate is not None and candidate.is_file():
            return candidate
    demo = run_dir.parent / "demo" / "summary.json"
    if demo.is_file():
        try:
            s = json.loads(demo.read_text())
        except ValueError:
            return None
        same_bag = bag is not None and s.get("bag") and Path(s["bag"]).resolve() == bag.resolve()
        if same_bag or (s.get("run_dir") and Path(s["run_dir"]).name == run_dir.name):
            return demo
    return None


def _ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def read_bag(bag: Path, topics: dict[str, str], progress: bool = True) -> BagData:
    """Command times, action timings, the arbiter's diagnostics and the episode ends of one bag."""
    from tqdm import tqdm

    from rt_rl.bagfile import bag_typestore, open_bag

    reader, conns = open_bag(bag, topics, ReportError)
    try:
        if sum(c.msgcount for c in conns["command"]) == 0:
            raise ReportError(
                f"{bag}: no {topics['command']} messages in this bag "
                f"(it holds {', '.join(sorted(reader.topics)) or 'no topics'})"
            )
        episodes_key = "episode_end" if sum(c.msgcount for c in conns["episode_end"]) else "reward"
        wanted = conns["command"] + conns["action"] + conns["diagnostics"] + conns[episodes_key]
        store = bag_typestore(reader)
        command_ns: list[int] = []
        actions: list[ActionTiming] = []
        arbiter: list[tuple[int, dict]] = []
        ends: list[EpisodeEnd] = []
        with tqdm(
            total=sum(c.msgcount for c in wanted),
            desc=f"reading {bag.name}",
            unit="msg",
            unit_scale=True,
            leave=False,
            disable=None if progress else True,  # None: only on a terminal
        ) as bar:
            for conn, log_ns, raw in reader.messages(connections=wanted):
                bar.update()
                if conn.topic == topics["command"]:
                    command_ns.append(log_ns)  # the content does not matter here: skip deserialising
                    continue
                msg = store.deserialize_cdr(raw, conn.msgtype)
                if conn.topic == topics["action"]:
                    actions.append(
                        ActionTiming(
                            log_ns,
                            msg.worker_id,
                            _ns(msg.observation_stamp),
                            _ns(msg.inference_start),
                            _ns(msg.inference_end),
                            msg.schedule_revision,
                        )
                    )
                elif conn.topic == topics["diagnostics"]:
                    stats = arbiter_statistics(msg)
                    if stats is not None:
                        arbiter.append((log_ns, stats))
                elif episodes_key == "episode_end" or msg.terminated or msg.truncated:
                    ends.append(
                        EpisodeEnd(
                            msg.episode, msg.step, msg.episode_return, msg.terminated, msg.truncated, log_ns
                        )
                    )
        return BagData(
            path=bag,
            topics=topics,
            start_ns=reader.start_time,
            end_ns=reader.end_time,
            counts={c.topic: c.msgcount for c in reader.connections},
            command_ns=np.sort(np.asarray(command_ns, dtype=np.int64)),
            actions=actions,
            arbiter=arbiter,
            episodes=episode_returns(ends, until_ns=max(command_ns) if command_ns else None),
            episodes_from=topics[episodes_key] if ends else "",
        )
    finally:
        reader.close()


def arbiter_statistics(diagnostic_array) -> dict | None:
    """The arbiter's statistics dict from one DiagnosticArray (its KeyValue 'json'), or None."""
    for status in diagnostic_array.status:
        if status.name != ARBITER_STATUS:
            continue
        for kv in status.values:
            if kv.key == "json":
                try:
                    stats = json.loads(kv.value)
                except ValueError:
                    return None
                return stats if isinstance(stats, dict) else None
    return None


# ---------------------------------------------------------------------------------------------------
# Pure extraction (tested without a bag)


def inter_arrival_ms(times_ns) -> np.ndarray:
    """Differences of consecutive times (ns), in ms."""
    t = np.asarray(times_ns, dtype=np.int64)
    return np.diff(t) / 1e6


def interval_ratios(samples, min_interval: float) -> list[tuple[float, float, float]]:
    """From cumulative (t, ticks, fresh_ticks) samples: (t0, t1, delta fresh / delta ticks) over
    consecutive intervals [t0, t1] of at least `min_interval` (t's unit) and at least one tick. A drop
    in ticks (a new measurement window) starts over from that sample."""
    out: list[tuple[float, float, float]] = []
    anchor = None
    for t, ticks, fresh in samples:
        if ticks is None or fresh is None:
            continue
        if anchor is None or ticks < anchor[1]:
            anchor = (t, ticks, fresh)
            continue
        dt, dticks = t - anchor[0], ticks - anchor[1]
        if dt >= min_interval and dticks > 0:
            out.append((anchor[0], t, (fresh - anchor[2]) / dticks))
            anchor = (t, ticks, fresh)
    return out


def ratio_over_time(diag_records, min_interval_s: float = 0.9) -> list[tuple[int, int, float]]:
    """Fresh-action ratio per interval (>= `min_interval_s`) from the arbiter's diagnostics,
    [(log time ns, statistics dict)] with cumulative control.ticks and fresh_ticks."""
    samples = [(t, (s.get("control") or {}).get("ticks"), s.get("fresh_ticks")) for t, s in diag_records]
    return interval_ratios(samples, min_interval_s * 1e9)


def ratio_from_timeline(records) -> list[tuple[float, float, float]]:
    """Fresh-action ratio per interval from timeline.jsonl records (t in s, cumulative ratio, ticks)."""
    samples = []
    for r in records:
        ratio, ticks = r.get("fresh_action_ratio"), r.get("ticks")
        if ratio is not None and ticks is not None and r.get("t") is not None:
            samples.append((float(r["t"]), ticks, ratio * ticks))
    return interval_ratios(samples, 0.0)


def action_ages_ms(actions) -> np.ndarray:
    """Age of each action when the recorder received it: log time - observation stamp, ms."""
    return np.asarray([(a.log_ns - a.observation_ns) / 1e6 for a in actions], dtype=float)


def middle_window(times_ns, width_s: float) -> tuple[int, int]:
    """[t0, t1) of `width_s` seconds centred between the first and the last time."""
    t = np.asarray(times_ns, dtype=np.int64)
    mid = int(t[0]) + (int(t[-1]) - int(t[0])) // 2
    half = int(width_s * 1e9) // 2
    return mid - half, mid + half


def worker_spans(actions, t0_ns: int, t1_ns: int) -> dict[int, list[tuple[int, int]]]:
    """Per worker, the (inference_start, inference_end) spans (ns) that overlap [t0, t1], in order."""
    spans: dict[int, list[tuple[int, int]]] = {}
    for a in actions:
        if a.end_ns >= t0_ns and a.start_ns <= t1_ns:
            spans.setdefault(a.worker_id, []).append((a.start_ns, a.end_ns))
    return {w: sorted(s) for w, s in sorted(spans.items())}


def episode_returns(ends, until_ns: int | None = None) -> list[EpisodeEnd]:
    """One entry per episode (the last message wins: a latched topic can repeat itself), in order.
    With `until_ns` (the last command's time) episodes that ended later are left out: on stop the
    arbiter goes first and the sim falls on the held command, episodes that are not the policy's."""
    by_episode = {e.episode: e for e in ends if until_ns is None or e.log_ns <= until_ns}
    return [by_episode[k] for k in sorted(by_episode)]


def percentiles(values, qs=(50, 99)) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    return {f"p{q:g}": float(np.percentile(v, q)) for q in qs} if v.size else {}


# ---------------------------------------------------------------------------------------------------
# Figures


def _figure(width: float = 10.9, height: float = 3.2, **kw):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained", **kw)
    return fig


def png_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def fig_period(command_ns: np.ndarray, origin_ns: int, nominal_ms: float | None, window_ns: int | None):
    periods = inter_arrival_ms(command_ns)
    t = (command_ns[1:] - origin_ns) / 1e9
    fig = _figure()
    ax, hist = fig.subplots(1, 2, sharey=True, width_ratios=(5, 1))
    ax.plot(t, periods, lw=0.6, color="#1f77b4")
    if nominal_ms:
        ax.axhline(nominal_ms, color="0.3", ls="--", lw=0.8, label=f"nominal {nominal_ms:g} ms")
    if window_ns is not None:
        ax.axvline((window_ns - origin_ns) / 1e9, color="#2ca02c", lw=0.8, label="measurement window opens")
    ax.set_xlabel("time since the first command (s)")
    ax.set_ylabel("command inter-arrival\nat the recorder (ms)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=8)
    hist.hist(periods, bins=60, orientation="horizontal", color="#1f77b4", log=True)
    hist.set_xlabel("commands (log)")
    hist.grid(alpha=0.3)
    return fig


def fig_ratio(intervals, xlabel: str, predicted: float | None, overall: float | None):
    fig = _figure(height=2.7)
    ax = fig.subplots()
    t0, t1, r = (np.asarray(column, dtype=float) for column in zip(*intervals, strict=True))
    ax.hlines(r, t0, t1, color="#1f77b4", lw=2.0, label="per interval")
    ax.plot((t0 + t1) / 2, r, "o", ms=2.5, color="#1f77b4")
    if predicted is not None:
        ax.axhline(
            predicted, color="0.3", ls="--", lw=0.8, label=f"predicted min(1, N·P/T) = {predicted:.3g}"
        )
    if overall is not None:
        ax.axhline(overall, color="#ff7f0e", lw=0.8, label=f"whole window = {overall:.4g}")
    low = min([*r.tolist(), overall if overall is not None else 1.0, 1.0])
    ax.set_ylim(max(0.0, np.floor((low - 0.02) * 20) / 20), 1.01)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fresh-action ratio")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def fig_ages(actions, arbiter_age: dict | None):
    ages = action_ages_ms(actions)
    scheduled = np.asarray([a.schedule_revision > 0 for a in actions], dtype=bool)
    p = percentiles(ages[scheduled] if scheduled.any() else ages)
    # The bulk, not the few warm-up stragglers: they are counted in the legend instead.
    lo = max(0.0, float(np.percentile(ages, 0.5)) - 2.0)
    hi = float(np.percentile(ages, 99.5)) + 2.0
    if arbiter_age and arbiter_age.get("p99") is not None:
        hi = max(hi, float(arbiter_age["p99"]) + 1.0)
    beyond = ages[(ages < lo) | (ages > hi)]
    bins = np.linspace(lo, hi, 121)
    fig = _figure(height=2.9)
    ax = fig.subplots()
    groups = [
        (ages[scheduled], "#1f77b4", f"following the schedule ({scheduled.sum()})"),
        (ages[~scheduled], "#bbbbbb", f"warm-up, before the first schedule ({(~scheduled).sum()})"),
    ]
    groups = [g for g in groups if g[0].size]
    ax.hist(
        [np.clip(g[0], lo, hi) for g in groups],
        bins=bins,
        stacked=True,
        log=True,
        color=[g[1] for g in groups],
        label=[g[2] for g in groups],
    )
    for name, value in p.items():
        ax.axvline(
            value,
            color="#d62728",
            lw=0.9,
            ls="--" if name == "p99" else "-",
            label=f"{name} at the recorder {value:.1f} ms",
        )
    if arbiter_age and arbiter_age.get("p50") is not None:
        ax.axvline(
            arbiter_age["p50"],
            color="#2ca02c",
            lw=1.2,
            label=f"p50 at actuation (arbiter) {arbiter_age['p50']:.1f} ms",
        )
    if beyond.size:
        ax.plot(
            [],
            [],
            " ",
            label=f"{beyond.size} outside {lo:.0f}-{hi:.0f} ms (max {ages.max():.1f}), in the edge bins",
        )
    ax.set_xlim(lo, hi)
    ax.set_xlabel("action age at the recorder: receive time − observation stamp (ms)")
    ax.set_ylabel("actions (log)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def fig_stagger(actions, command_ns: np.ndarray, t0: int, t1: int, origin_ns: int):
    spans = worker_spans(actions, t0, t1)
    workers = sorted({a.worker_id for a in actions} | set(spans))
    fig = _figure(height=1.1 + 0.4 * max(1, len(workers)))
    ax = fig.subplots()

    def ms(ns):
        return (np.asarray(ns, dtype=np.int64) - t0) / 1e6

    commands = command_ns[(command_ns >= t0) & (command_ns <= t1)]
    ax.vlines(ms(commands), -0.6, len(workers) - 0.4, color="0.45", lw=0.7, label="command (recorder time)")
    for row, w in enumerate(workers):
        color = WORKER_COLORS[w % len(WORKER_COLORS)]
        bars = [((s - t0) / 1e6, (e - s) / 1e6) for s, e in spans.get(w, [])]
        ax.broken_barh(bars, (row - 0.3, 0.6), facecolors=color, edgecolor="none")
        arrivals = [a.log_ns for a in actions if a.worker_id == w and t0 <= a.log_ns <= t1]
        ax.plot(ms(arrivals), [row + 0.38] * len(arrivals), "v", ms=4, color=color)
    ax.plot([], [], "v", color="0.3", ms=4, label="action received by the recorder")
    ax.set_yticks(range(len(workers)), [f"worker {w}" for w in workers])
    ax.set_ylim(-0.6, len(workers) - 0.4)
    ax.invert_yaxis()
    ax.set_xlim(0, (t1 - t0) / 1e6)
    ax.set_xlabel(f"ms (wall clock) from {(t0 - origin_ns) / 1e9:.2f} s after the first command")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, fontsize=8, frameon=False)
    return fig


def fig_returns(episodes: list[EpisodeEnd]):
    from matplotlib.patches import Patch

    fig = _figure(width=8.2, height=2.8)
    ax = fig.subplots()
    x = [e.episode for e in episodes]
    colors = [ENDED_COLORS[ended(e)] for e in episodes]
    bars = ax.bar(x, [e.episode_return for e in episodes], color=colors)
    ax.bar_label(bars, labels=[f"{e.steps} steps" for e in episodes], fontsize=8, padding=2)
    ax.set_xticks(x)
    ax.set_xlabel("episode")
    ax.set_ylabel("episode return")
    ax.margins(y=0.15)
    ax.grid(alpha=0.3, axis="y")
    shown = dict.fromkeys(ended(e) for e in episodes)
    ax.legend(handles=[Patch(color=ENDED_COLORS[k], label=k) for k in shown], loc="upper left", fontsize=8)
    return fig


def ended(e: EpisodeEnd) -> str:
    return "terminated" if e.terminated else "truncated" if e.truncated else "ended"


# ---------------------------------------------------------------------------------------------------
# The page

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #222;
       margin: 0; background: #f4f5f7; }
main { max-width: 1140px; margin: 0 auto; padding: 16px 24px 48px; background: #fff; }
h1 { font-size: 1.6em; margin: 0.4em 0 0.1em; }
h2 { font-size: 1.25em; margin: 1.6em 0 0.3em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
p, li { line-height: 1.45; }
.sub { color: #555; margin-top: 0; }
.note { color: #555; font-size: 0.92em; }
img { max-width: 100%; height: auto; display: block; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.card { flex: 1 1 200px; border: 1px solid #ddd; border-radius: 6px; padding: 10px 14px; background: #fafbfc; }
.card .v { font-size: 1.5em; font-weight: 600; }
.card .k { color: #555; font-size: 0.85em; }
table { border-collapse: collapse; font-size: 0.92em; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 10px; text-align: left; vertical-align: top; }
th { background: #f0f2f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.cols { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.cols > div { flex: 1 1 420px; min-width: 0; }
pre { background: #f6f8fa; border: 1px solid #ddd; padding: 8px 12px; overflow-x: auto; font-size: 0.85em; }
code { font-size: 0.95em; }
"""


def esc(value: Any) -> str:
    return html.escape(str(value))


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def table(header: list[str] | None, rows: list[list[Any]], numeric: set[int] = frozenset()) -> str:
    head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{esc(fmt(c))}</td>' if i in numeric else f"<td>{esc(fmt(c))}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table>{head}{body}</table>"


def figure(fig, alt: str) -> str:
    uri = png_data_uri(fig)
    return f'<img src="{uri}" alt="{esc(alt)}">'


def render_html(run: Run, window_s: float = 0.3) -> str:
    bag = run.bag
    final = bag.arbiter[-1][1] if bag and bag.arbiter else (run.summary or {})
    params = parse_params(run.params_text)
    parts = [header_html(run, final), cards_html(run, final)]
    parts += [f'<p class="note">{esc(n)}</p>' for n in run.notes]
    parts.append(period_section(run, final, params))
    parts.append(ratio_section(run, final))
    parts.append(age_section(run, final))
    parts.append(stagger_section(run, window_s))
    parts.append(returns_section(run))
    parts.append(
        f'<div class="cols"><div>{params_section(run, params)}</div><div>{summary_section(run)}</div></div>'
    )
    body = "\n".join(p for p in parts if p)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>rt_rl run report: {esc(run.name)}</title><style>{CSS}</style></head>"
        f"<body><main>\n{body}\n</main></body></html>\n"
    )


def header_html(run: Run, final: dict) -> str:
    bag = run.bag
    facts = []
    if bag is not None:
        start = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(bag.start_ns / 1e9))
        facts.append(
            f"bag <code>{esc(bag.path)}</code>, recorded {start}, {(bag.end_ns - bag.start_ns) / 1e9:.1f} s, "
            f"{sum(bag.counts.values())} messages"
        )
    else:
        facts.append("no bag in this run directory: the timeline and the summary only")
    sched = final.get("schedule") or {}
    if sched:
        facts.append(
            f"{fmt(sched.get('num_workers'))} workers, inference time T ≈ {fmt(sched.get('inference_time_ms'))} ms, "
            f"completions every {fmt(sched.get('spacing_ms'))} ms (schedule revision {fmt(sched.get('revision'))})"
        )
    return f'<h1>rt_rl run report: {esc(run.name)}</h1><p class="sub">{"<br>".join(facts)}</p>'


def cards_html(run: Run, final: dict) -> str:
    control = final.get("control") or {}
    period = control.get("period_ms") or {}
    age = final.get("action_age_ms") or {}
    cards = [
        (f"{fmt(period.get('p99'))} ms", "control period p99 (arbiter, at publish)"),
        (
            f"{fmt(final.get('fresh_action_ratio'))}",
            f"fresh-action ratio (predicted {fmt(final.get('predicted_fresh_action_ratio'))})",
        ),
        (f"{fmt(age.get('p50'))} ms", "action age p50 (arbiter, at actuation)"),
    ]
    episodes = run.bag.episodes if run.bag else []
    if episodes:
        mean = float(np.mean([e.episode_return for e in episodes]))
        cards.append((f"{len(episodes)} / {mean:.0f}", "episodes ended / mean return"))
    if not control and not age:
        return ""
    items = "".join(
        f'<div class="card"><div class="v">{esc(v)}</div><div class="k">{esc(k)}</div></div>'
        for v, k in cards
    )
    return f'<div class="cards">{items}</div>'


def _window_start_ns(run: Run) -> int | None:
    wall = (run.summary or {}).get("window_start_wall")
    return int(wall * 1e9) if isinstance(wall, (int, float)) else None


def period_section(run: Run, final: dict, params: dict) -> str:
    head = "<h2>1. Control period over time</h2>"
    bag = run.bag
    if bag is None:
        return head + '<p class="note">No bag: no per-command times.</p>'
    control = final.get("control") or {}
    rate = control.get("rate_hz_target") or node_params(params, "actuator_arbiter").get("control_rate_hz")
    nominal = 1e3 / float(rate) if rate else None
    origin = int(bag.command_ns[0])
    window = _window_start_ns(run)
    if window is not None and not origin <= window <= int(bag.command_ns[-1]):
        window = None
    periods = inter_arrival_ms(bag.command_ns)
    p = percentiles(periods, (50, 99))
    arb = control.get("period_ms") or {}
    text = (
        f"<p>Each point is the time between two consecutive <code>{esc(bag.topics['command'])}</code> messages "
        f"<b>as the bag recorder received them</b> (bag log time, wall clock): command inter-arrival at the "
        f"recorder, {len(bag.command_ns)} commands. It includes DDS delivery and the recorder's own scheduling, "
        "so it is wider than the control period the arbiter keeps. "
        f"At the recorder: p50 {fmt(p.get('p50'))} ms, p99 {fmt(p.get('p99'))} ms, max {fmt(float(periods.max()) if periods.size else None)} ms. "
        f"The arbiter's own measure (monotonic clock, right after publish, measurement window only): "
        f"p50 {fmt(arb.get('p50'))} / p99 {fmt(arb.get('p99'))} / max {fmt(arb.get('max'))} ms.</p>"
    )
    if periods.size == 0:
        return head + text
    return head + text + figure(fig_period(bag.command_ns, origin, nominal, window), "command inter-arrival")


def ratio_section(run: Run, final: dict) -> str:
    head = "<h2>2. Fresh-action ratio over time</h2>"
    bag = run.bag
    points, source, xlabel = [], "", ""
    if bag is not None and bag.arbiter:
        raw = ratio_over_time(bag.arbiter)
        if raw:
            origin = int(bag.command_ns[0])
            points = [((t0 - origin) / 1e9, (t1 - origin) / 1e9, r) for t0, t1, r in raw]
            source = (
                f"the arbiter's diagnostics in the bag (<code>{esc(ARBITER_STATUS)}</code>, cumulative "
                "<code>control.ticks</code> and <code>fresh_ticks</code>): per interval of about 1 s, "
                "Δ fresh_ticks / Δ ticks"
            )
            xlabel = "time since the first command (s)"
    if not points and run.timeline:
        points = ratio_from_timeline(run.timeline)
        source = (
            "<code>timeline.jsonl</code> (a record every 5 s of the cumulative ratio and ticks): per 5 s "
            "interval, Δ(ratio × ticks) / Δ ticks"
        )
        xlabel = "time since the measurement window opened (s)"
    if not points:
        return head + '<p class="note">No arbiter diagnostics in the bag and no timeline.jsonl.</p>'
    text = (
        "<p>A tick is fresh when the arbiter actuates an action it has not actuated before. "
        f"From {source}. {len(points)} intervals.</p>"
    )
    fig = fig_ratio(
        points, xlabel, final.get("predicted_fresh_action_ratio"), final.get("fresh_action_ratio")
    )
    return head + text + figure(fig, "fresh-action ratio over time")


def age_section(run: Run, final: dict) -> str:
    head = "<h2>3. Action age</h2>"
    bag = run.bag
    if bag is None or not bag.actions:
        return head + '<p class="note">No actions recorded.</p>'
    age = final.get("action_age_ms") or {}
    ages = action_ages_ms(bag.actions)
    scheduled = [a for a in bag.actions if a.schedule_revision > 0]
    p = percentiles(action_ages_ms(scheduled) if scheduled else ages, (50, 99))
    text = (
        f"<p>For each of the {len(ages)} <code>{esc(bag.topics['action'])}</code> messages: its age <b>at the "
        "recorder</b> = bag log time − <code>observation_stamp</code> (the sensor stamp of the newest "
        "observation the action depends on). It approximates the age at actuation, which is later: the "
        "arbiter actuates an action at the next tick. "
        f"At the recorder (following the schedule): p50 {fmt(p.get('p50'))} ms, p99 {fmt(p.get('p99'))} ms. "
        f"<b>The arbiter's final statistics, at actuation, fresh ticks of the window: p50 "
        f"{fmt(age.get('p50'))} ms, p99 {fmt(age.get('p99'))} ms, max {fmt(age.get('max'))} ms.</b></p>"
    )
    return head + text + figure(fig_ages(bag.actions, age or None), "action age histogram")


def stagger_section(run: Run, window_s: float) -> str:
    head = "<h2>4. Staggering: who computes what, when</h2>"
    bag = run.bag
    if bag is None or not bag.actions:
        return head + '<p class="note">No actions recorded.</p>'
    t0, t1 = middle_window(bag.command_ns, window_s)
    n = len({a.worker_id for a in bag.actions})
    text = (
        f"<p>{window_s:g} s in the middle of the run. Each bar is one inference of a worker, from its "
        "<code>inference_start</code> to its <code>inference_end</code> (the worker's wall clock); each "
        "triangle is that action reaching the recorder; each grey line is a command as the recorder received "
        f"it. With {n} worker(s) staggered on one slot grid, a completion should land just before every "
        "command.</p>"
    )
    return (
        head
        + text
        + figure(
            fig_stagger(bag.actions, bag.command_ns, t0, t1, int(bag.command_ns[0])), "worker inference spans"
        )
    )


def returns_section(run: Run) -> str:
    head = "<h2>5. Episode returns</h2>"
    bag = run.bag
    if bag is None or not bag.episodes:
        return head + '<p class="note">No episode ended in the bag.</p>'
    rows = [[e.episode, e.steps, round(e.episode_return, 1), ended(e)] for e in bag.episodes]
    text = (
        f"<p>From <code>{esc(bag.episodes_from)}</code>: the last step of each episode that ended while the "
        "bag was recording (the first may have begun before the graph was scheduled; the one still running at "
        "the end is not shown).</p>"
    )
    return (
        head
        + text
        + '<div class="cols">'
        + figure(fig_returns(bag.episodes), "episode returns")
        + table(["episode", "steps", "return", "ended"], rows, numeric={0, 1, 2})
        + "</div>"
    )


def params_section(run: Run, params: dict) -> str:
    head = "<h2>6. Parameters</h2>"
    if run.params_path is None:
        return head + '<p class="note">No params.yaml found next to the bag or in the run directory.</p>'
    rows = []
    for node, section in params.items():
        values = section.get("ros__parameters") if isinstance(section, dict) else None
        if not isinstance(values, dict):
            rows = []
            break
        label = "/** (every node)" if node == "/**" else node
        for name, value in values.items():
            shown = (
                yaml.safe_dump(value, default_flow_style=True).strip()
                if isinstance(value, list | dict)
                else value
            )
            rows.append([label, name, shown])
    src = f'<p class="note">From <code>{esc(run.params_path)}</code>.</p>'
    if rows:
        return head + src + table(["node", "parameter", "value"], rows)
    return head + src + f"<pre>{esc(run.params_text)}</pre>"


def summary_section(run: Run) -> str:
    s = run.summary
    if s is None:
        return '<h2>7. Summary</h2><p class="note">No summary.json found for this run.</p>'
    c = s.get("control") or {}
    period = c.get("period_ms") or {}
    age = s.get("action_age_ms") or {}
    sim = s.get("sim") or {}
    rows = [
        [
            "measured (s) / ready and scheduled after (s)",
            f"{fmt(s.get('measured_s'))} / {fmt(s.get('startup_s'))}",
        ],
        [
            "control rate target / achieved (Hz)",
            f"{fmt(c.get('rate_hz_target'))} / {fmt(c.get('rate_hz_achieved'))}",
        ],
        [
            "control period p50 / p99 / max (ms)",
            f"{fmt(period.get('p50'))} / {fmt(period.get('p99'))} / {fmt(period.get('max'))}",
        ],
        [
            "fresh action ratio (measured / predicted)",
            f"{fmt(s.get('fresh_action_ratio'))} / {fmt(s.get('predicted_fresh_action_ratio'))}",
        ],
        [
            "fallback ticks / watchdog / rejected",
            f"{fmt(s.get('fallback_ticks'))} / {fmt(s.get('watchdog_ticks'))} / {fmt(s.get('rejected_actions'))}",
        ],
        [
            "action age p50 / p99 / max (ms)",
            f"{fmt(age.get('p50'))} / {fmt(age.get('p99'))} / {fmt(age.get('max'))}",
        ],
        ["inference time mean (ms)", fmt(s.get("inference_ms_mean"))],
        ["sim task / real-time factor", f"{fmt(sim.get('task'))} / {fmt(sim.get('real_time_factor'))}"],
        ["sim episodes / mean return", f"{fmt(sim.get('episodes'))} / {fmt(sim.get('mean_episode_return'))}"],
        ["graph CPU, % of one core", fmt(s.get("cpu_percent_total"))],
    ]
    for w in s.get("workers") or []:
        inf = w.get("inference_ms") or {}
        rows.append(
            [
                f"worker {w.get('id')} actions, inference p50 / p99 (ms)",
                f"{fmt(w.get('actions'))}, {fmt(inf.get('p50'))} / {fmt(inf.get('p99'))}",
            ]
        )
    measurement = f'<p class="note">{esc(s["measurement"])}</p>' if s.get("measurement") else ""
    return (
        "<h2>7. Summary</h2>"
        f'<p class="note">From <code>{esc(run.summary_path)}</code>.</p>'
        + table(None, rows)
        + measurement
        + f"<details><summary>summary.json</summary><pre>{esc(json.dumps(s, indent=2))}</pre></details>"
    )


if __name__ == "__main__":
    raise SystemExit(main())
