"""The report's HTML page: one self-contained file, every figure an inlined PNG."""

from __future__ import annotations

import html
import json
import time
from typing import Any

import numpy as np
import yaml

from rt_rl.report.figures import (
    ended,
    fig_ages,
    fig_period,
    fig_ratio,
    fig_returns,
    fig_stagger,
    png_data_uri,
)
from rt_rl.report.load import ARBITER_STATUS, Run
from rt_rl.report.stats import (
    action_ages_ms,
    inter_arrival_ms,
    middle_window,
    percentiles,
    ratio_from_timeline,
    ratio_over_time,
)
from rt_rl.runparams import node_params, parse_params

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
