"""`rt-rl bench record`: does recording lose anything, and does it cost the control loop anything?

Runs the live graph (`config/bench_100hz.yaml`, N workers, synthetic latency 4 control periods) `--repeat`
times without and with `--record`, alternating, each beside the outside subscriber of `bench graph`.
For each recorded run it compares, per topic, the messages the nodes published (counted at the
publishers, the launch summary's `published`) with the bag's `metadata.yaml` and with what two
independent readers find in the file (`rosbags`, the library the recorder writes with, and
`mcap-ros2-support`), and looks for gaps in the observations' `seq`. Then fresh ratio and control
period p99 with and without recording (min / median / max). Writes a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml
from tqdm import tqdm

from rt_rl.bench.graph import run_once, spread
from rt_rl.graph import TOPICS


def metadata_counts(bag: Path) -> dict[str, int]:
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    return {t["topic_metadata"]["name"]: t["message_count"] for t in info["topics_with_message_count"]}


def rosbags_counts(bag: Path) -> dict[str, int]:
    from rosbags.rosbag2 import Reader

    counts: Counter[str] = Counter()
    with Reader(bag) as reader:
        for conn, _, _ in reader.messages():
            counts[conn.topic] += 1
    return dict(counts)


def mcap_counts_and_seq_gaps(bag: Path, observation_topic: str) -> tuple[dict[str, int], int]:
    from mcap_ros2.reader import read_ros2_messages

    counts: Counter[str] = Counter()
    gaps, last = 0, None
    files = sorted(bag.glob("*.mcap"), key=lambda p: (len(p.name), p.name))  # NAME_10 after NAME_9
    for path in files:
        for m in read_ros2_messages(str(path)):
            counts[m.channel.topic] += 1
            if m.channel.topic == observation_topic:
                if last is not None and m.ros_msg.seq != last + 1:
                    gaps += 1
                last = m.ros_msg.seq
    return dict(counts), gaps


def check_bag(summary: dict, bag: Path) -> dict:
    """Per recorded topic: published, metadata, rosbags, mcap-ros2-support; observation seq gaps."""
    meta = metadata_counts(bag)
    by_rosbags = rosbags_counts(bag)
    by_mcap, gaps = mcap_counts_and_seq_gaps(bag, TOPICS["observation"].default)
    published = summary.get("published", {})
    rows = {}
    for topic in sorted(meta):
        rows[topic] = {
            "published": published.get(topic),  # None: not counted at a publisher (diagnostics)
            "metadata": meta[topic],
            "rosbags": by_rosbags.get(topic, 0),
            "mcap_ros2": by_mcap.get(topic, 0),
        }
    return {"topics": rows, "observation_seq_gaps": gaps}


def lossless(check: dict) -> bool:
    return check["observation_seq_gaps"] == 0 and all(
        r["metadata"] == r["rosbags"] == r["mcap_ros2"] and r["published"] in (None, r["metadata"])
        for r in check["topics"].values()
    )


def report(runs: list[dict], command: str, duration: float, workers: int) -> str:
    plain = [r for r in runs if not r["recording"]]
    rec = [r for r in runs if r["recording"]]

    def row(name: str, get) -> str:
        return f"| {name} | {spread([get(r) for r in plain])} | {spread([get(r) for r in rec])} |\n"

    text = (
        f"# Recording: nothing lost, nothing slowed\n\n`{command}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, N = {workers}, "
        f"{duration:g} s measured per run, {len(plain)} run(s) each way, alternating.\n\n"
        "| | without recording | with recording |\n|---|---|---|\n"
        + row("fresh ratio", lambda r: r["fresh_action_ratio"])
        + row("control period p99 (ms)", lambda r: r["control"]["period_ms"]["p99"])
        + row("outside subscriber p99 (ms)", lambda r: r["outside"]["p99"])
        + row("graph CPU (% of one core)", lambda r: r["cpu_percent_total"])
        + "\nPer recorded run and topic: messages published (counted at the publishers, summed over the "
        "nodes' final reports; `-` where nothing counts them) = `metadata.yaml` = read by `rosbags` = read "
        "by `mcap-ros2-support`:\n\n| run | topic | published | metadata | rosbags | mcap-ros2-support |\n"
        "|---|---|---|---|---|---|\n"
    )
    for i, r in enumerate(rec, 1):
        for topic, c in r["bag_check"]["topics"].items():
            pub = "-" if c["published"] is None else c["published"]
            text += f"| {i} | `{topic}` | {pub} | {c['metadata']} | {c['rosbags']} | {c['mcap_ros2']} |\n"
    gaps = [r["bag_check"]["observation_seq_gaps"] for r in rec]
    ok = all(lossless(r["bag_check"]) for r in rec)
    text += (
        f"\nObservation `seq` gaps in the bags: {gaps}. Every count equal in every run: "
        f"**{'yes' if ok else 'NO'}**.\n\nThe recorder's own diagnostics after it stopped writing are the "
        "only messages published on a recorded topic that a bag cannot hold; `/diagnostics` is not "
        "counted at the publishers for that reason.\n"
    )
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rt-rl bench record", description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="config/bench_100hz.yaml", help="graph parameters file")
    ap.add_argument("--workers", type=int, default=5, help="staggered workers")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds measured per run")
    ap.add_argument("--repeat", type=int, default=3, help="runs each way (min/median/max)")
    ap.add_argument("--out", default="docs/results/bench_record.md", help="Markdown report")
    a = ap.parse_args(argv)
    if not Path(a.params).is_file():
        print(f"rt-rl bench record: error: params file '{a.params}' not found", file=sys.stderr)
        return 2
    rate = yaml.safe_load(Path(a.params).read_text())["actuator_arbiter"]["ros__parameters"][
        "control_rate_hz"
    ]
    latency = 4.0 / rate
    runs = []
    with tempfile.TemporaryDirectory(prefix="rt_rl_bench_record_") as tmp:
        todo = [(i, recording) for i in range(a.repeat) for recording in (False, True)]
        for i, recording in tqdm(todo, desc="bench record", unit="run"):
            run_dir = Path(tmp) / f"{'rec' if recording else 'plain'}{i}"
            target = run_dir / "bag" if recording else None
            s = run_once(a.params, a.workers, latency, a.duration, run_dir, False, record=target)
            s["recording"] = recording
            if recording:
                s["bag_check"] = check_bag(s, Path(s["bag"]))
            runs.append(s)
    command = "rt-rl bench record " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(runs, command.strip(), a.duration, a.workers)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(runs, indent=2, default=str))
    print(text)
    return 0 if all(lossless(r["bag_check"]) for r in runs if r["recording"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
