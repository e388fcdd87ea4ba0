"""Finding and reading a run for the report: its bag, params.yaml, timeline.jsonl and summary.json."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rt_rl import runparams
from rt_rl.report.stats import ActionTiming, EpisodeEnd, episode_returns
from rt_rl.runparams import parse_params

# The topics read (graph.TOPICS keys); a run's params.yaml may rename them for the recorder.
READ_TOPICS = ("command", "action", "diagnostics", "episode_end", "reward")
ARBITER_STATUS = "rt_rl/actuator_arbiter"


class ReportError(Exception):
    """A one-line reason why there is no report (exit code 2)."""


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


def recorded_topics(params: dict) -> dict[str, str]:
    """The names the recorder recorded the report's topics under (its `<key>_topic` parameters)."""
    return runparams.recorded_topics(params, READ_TOPICS)


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
