"""`rt-rl bench twin`: the end-to-end delay of the live graph, in control ticks, against the twin's.

    rt-rl bench twin [--params config/demo.yaml] [--repeat 3] [--duration 120] [--out docs/results/bench_twin]
    rt-rl bench twin --from-probe RUN/probe.json ...      (no launch: recorded probe files)

Runs the real graph (`rt-rl launch`, as `rt-rl bench stagger` does) beside the outside tick probe
(`rt_rl.bench.tick_probe`: every /rt_rl/actuation tick with the sensor stamp of the actuated action's
observation), and tabulates, per run, the share of actuated actions at each delay in ticks, against
the shares the simulated-time twin (`rt_rl.learning.timing_env.TimingEnv`) gives for the timing the
running policy was trained for (`PolicyInfo.timing`; without one, the configuration's).

The delay of an actuated action
-------------------------------
An action is actuated at tick k and depends on one observation (the newest it depends on: the
worker's own for an instant MLP; for a pipelined policy that of its worker's call `observation_delay`
calls back, `rt_rl.policy.networks`). Its delay is

    d = k - j,   j = the first tick at or after that observation's sensor stamp,

the tick at which the sample is the newest state. With ticks P apart, d = floor((t_k - stamp) / P)
(plus 1e-3 of a tick: float wall-clock stamps are good to ~0.2 us, so a sample stamped on a tick
counts as that tick's). A sample taken at any phase in the period before tick j gives the same d.

In the twin the observation of tick j is the state at the start of tick j, and the command actuated
at tick k steps the physics from the state of tick k: d = k - j is the number of physics steps (ticks)
between the observed state and the one the command first drives, D + calls * N * s for inference
delay D, N workers, slot spacing s and a policy that depends on the observation `calls` of its
worker's calls back. Live the same count holds: the sim stamps a state just after the step that made
it and applies the newest command at its next step, so a command decided at tick k first drives the
newest state at tick k, and the sample j is the newest at tick j. (When sensing and control run at
the same rate the ticks between them are the sim's steps.) The count is one short only for a tick
that falls less than the command's transit plus the sim's step time (< 1 ms) before a sample: the
command then misses that step. The table's phase column, (t_k - stamp)/P - d, shows how close the
runs come to that (a phase near 1).

The twin's shares come from its own time model: `TimingEnv` is stepped with marked near-zero actions
and each fresh tick's command tells which worker call (and so which observation tick) it came from;
each delay in the checkpoint's `delay_choices` is weighted as often as `reset` would draw it. Actions
of a pipelined policy that depend on no observation yet (its first calls of an episode) are not
counted: live they are not published. `live_like_ticks` turns a twin trace into probe records (ticks
at a phase, samples at any phase before their tick); tests check that `live_delays` gives the twin's
delays back, tick for tick.
"""

from __future__ import annotations

import argparse
import bisect
import copy
import itertools
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from rt_rl.bench.graph import spread
from rt_rl.core.measurement import standard_error
from rt_rl.graph import GLOBAL, WORKER, node_settings

if TYPE_CHECKING:  # importing it loads gymnasium and MuJoCo: done where the twin runs
    from rt_rl.learning.timing_env import Timing

# a sample stamped within this fraction of a tick after a tick counts as taken at that tick
EPS_TICKS = 1e-3
TOLERANCE = 0.05  # issue 7: the shares at each delay differ by at most this
RETURN_TOLERANCE = 0.15  # issue 7: live mean episode return within this fraction of the twin's
DEFAULT_CONTROL_RATE_HZ = 100.0  # actuator_arbiter's default control_rate_hz
DEFAULT_SENSOR_RATE_HZ = 100.0  # mujoco_sim's default sensor_rate_hz

# --- the live side (pure) ----------------------------------------------------------------------------


def tick_delay(tick_time: float, stamp: float, period: float) -> int:
    """Ticks from the first tick at or after the sensor `stamp` to the tick at `tick_time` (P apart)."""
    return math.floor((tick_time - stamp) / period + EPS_TICKS)


def observation_stamp(record: Sequence) -> float | None:
    """The actuated observation's sensor stamp of one probe tick record: its 7th field, or (older
    probes) the tick time minus the action age. None when it has neither."""
    if len(record) > 6 and record[6]:
        return float(record[6])
    if len(record) > 3 and record[3] is not None and math.isfinite(record[3]):
        return float(record[0]) - float(record[3])
    return None


def counted(record: Sequence) -> bool:
    """A probe tick that actuated a worker's action inside the measurement window."""
    return bool(record[2]) and record[1] == "fresh" and observation_stamp(record) is not None


def live_delays(ticks: Sequence[Sequence], period: float) -> list[int]:
    """The delay in ticks (module doc) of every actuated action in the window, in tick order.

    `ticks`: the tick probe's records [tick stamp, kind, in_window, action_age, worker, observation
    seq, observation stamp]; fallback and watchdog ticks and ticks outside the window are left out."""
    return [tick_delay(r[0], observation_stamp(r), period) for r in ticks if counted(r)]


def live_phases(ticks: Sequence[Sequence], period: float) -> list[float]:
    """(t_k - stamp)/P - delay of every counted tick: where in its period the sample fell, 0 (on
    the tick) to 1 (just after the previous one); near 1 the command may miss the sim's next step."""
    out = []
    for r in ticks:
        if counted(r):
            x = (r[0] - observation_stamp(r)) / period
            out.append(x - tick_delay(r[0], observation_stamp(r), period))
    return out


def grid_reference(samples: Sequence[float], h: float) -> float | None:
    """A time on the robot's update grid (physics steps of `h` s), from its joint-state stamps: each
    is taken just after an update, so the grid sits at their earliest phase modulo h."""
    if not samples:
        return None
    s0 = samples[0]
    return s0 + min(((t - s0) / h + 0.5) % 1.0 - 0.5 for t in samples) * h


def live_robot_delays(
    ticks: Sequence[Sequence], commands: Sequence[Sequence], samples: Sequence[float], period: float, h: float
) -> tuple[list[int], list[float]]:
    """Per actuated tick in the window whose command was seen arriving: the physics steps from the
    observed state to the first robot update that applies the command, and the offset of that update
    after the tick the twin counts from (arrival, rounded up to the grid, minus the sample's update
    and the delay in ticks): the twin's `offset_samples`.

    `commands`: [arrival, *command] as an outside subscriber on the command topic saw them (the robot
    is another subscriber on the same host); a tick record's 9th field is its command."""
    ref = grid_reference(samples, h)
    if ref is None:
        return [], []
    arrivals: dict[tuple, list[float]] = {}
    for c in commands:
        arrivals.setdefault(tuple(c[1:]), []).append(c[0])
    steps, offsets = [], []
    for r in ticks:
        if not counted(r) or len(r) < 9:
            continue
        seen = arrivals.get(tuple(r[8]), [])
        i = bisect.bisect_left(seen, r[0] - 0.002)  # published at the tick: arrives just after it
        if i == len(seen) or seen[i] > r[0] + 0.05:
            continue
        stamp = observation_stamp(r)
        sampled = ref + round((stamp - ref) / h) * h
        acting = ref + math.ceil((seen[i] - ref) / h - 1e-6) * h
        steps.append(round((acting - sampled) / h))
        offsets.append(max(0.0, seen[i] - sampled - tick_delay(r[0], stamp, period) * period))
    return steps, offsets


def shares(delays: Sequence[int]) -> dict[int, float]:
    """Share of the actions at each delay (sorted by delay); empty for no actions."""
    n = len(delays)
    return {d: c / n for d, c in sorted(Counter(delays).items())} if n else {}


def max_difference(live_runs: Sequence[Mapping[int, float]], twin: Mapping[int, float]) -> float:
    """Largest |live - twin| share at any delay, over the runs (the worst run, not the median)."""
    worst = 0.0
    for run in live_runs:
        for d in set(run) | set(twin):
            worst = max(worst, abs(run.get(d, 0.0) - twin.get(d, 0.0)))
    return worst


def delay_table(
    live_runs: Sequence[Mapping[int, float]], twin: Mapping[int, float], unit: str = "ticks"
) -> str:
    """Markdown: per delay, the live share (median (min-max) over the runs, a run without that delay
    counting 0) beside the twin's, and the largest difference (over runs)."""
    delays = sorted(set(twin).union(*live_runs)) if live_runs else sorted(twin)
    text = f"| delay ({unit}) | live share, median (min-max) over runs | twin share | live median - twin |\n"
    text += "|---:|---|---:|---:|\n"
    for d in delays:
        live = [run.get(d, 0.0) for run in live_runs]
        med = statistics.median(live) if live else float("nan")
        text += f"| {d} | {spread(live)} | {twin.get(d, 0.0):.3f} | {med - twin.get(d, 0.0):+.3f} |\n"
    worst = max_difference(live_runs, twin)
    verdict = "within" if worst <= TOLERANCE else "NOT within"
    text += f"\nLargest |live - twin| share at any delay, worst run: {worst:.3f} ({verdict} {TOLERANCE:g}).\n"
    return text


def return_table(
    live_runs: Sequence[Sequence[float]], twin: Sequence[float], first: int = 20
) -> tuple[str, dict]:
    """Markdown and numbers: the live mean episode return over all complete episodes of the runs
    (mean +- std and standard error, the runs' own means as min / median / max) against the twin's
    over its first `first` episodes (issue 7's comparison: `relative_difference`) and, when it ran
    more, over all of them (`relative_difference_all`): a 20-episode mean of a policy that falls in
    some episodes has a standard error of about a tenth of it, as large as the tolerance."""
    live = [r for run in live_runs for r in run]
    out: dict = {"live_episodes": len(live), "twin_episodes": len(twin)}
    if not live or not twin:
        return "No complete live episode or no twin episode: no return comparison.\n", out
    head = list(twin[:first])
    lm, tm, am = statistics.fmean(live), statistics.fmean(head), statistics.fmean(twin)
    out |= {
        "live_mean": lm,
        "live_std": statistics.pstdev(live),
        "live_se": standard_error(live),
        "live_run_means": [statistics.fmean(run) if run else None for run in live_runs],
        "live_returns": list(live),
        "twin_mean": tm,
        "twin_std": statistics.pstdev(head),
        "twin_se": standard_error(head),
        "relative_difference": (lm - tm) / tm if tm else math.nan,
    }
    run_means = [m for m in out["live_run_means"] if m is not None]

    def verdict(d: float) -> str:
        return f"{100 * d:+.1f} % ({'within' if abs(d) <= RETURN_TOLERANCE else 'NOT within'} {100 * RETURN_TOLERANCE:g} %)"

    text = (
        "| episode return | episodes | mean +- std (standard error) | per-run means, median (min-max) |\n"
        "|---|---:|---:|---|\n"
        f"| live | {len(live)} | {lm:.0f} +- {out['live_std']:.0f} ({out['live_se']:.0f}) | "
        f"{spread(run_means, '{:.0f}')} |\n"
        f"| twin (simulated time), first {len(head)} episodes | {len(head)} | {tm:.0f} +- {out['twin_std']:.0f} "
        f"({out['twin_se']:.0f}) | - |\n"
    )
    summary = (
        f"Live mean - twin mean over its first {len(head)} episodes: {verdict(out['relative_difference'])}."
    )
    if len(twin) > len(head):
        out |= {
            "twin_mean_all": am,
            "twin_std_all": statistics.pstdev(twin),
            "twin_se_all": standard_error(twin),
            "relative_difference_all": (lm - am) / am if am else math.nan,
        }
        text += (
            f"| twin (simulated time), all {len(twin)} episodes | {len(twin)} | {am:.0f} +- "
            f"{out['twin_std_all']:.0f} ({out['twin_se_all']:.0f}) | - |\n"
        )
        summary += f" Over all {len(twin)}: {verdict(out['relative_difference_all'])}."
    return text + "\n" + summary + "\n", out


# --- the twin side -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TwinTick:
    """One tick of the twin: whether a worker's action arrived, and the tick whose observation it
    depends on (None: a fallback tick, or an action that depends on no observation yet)."""

    tick: int  # ticks since the trace began, across episodes
    episode: int
    fresh: bool
    call: int | None = None  # the worker call (slot) of the episode that produced the actuated action
    worker: int = -1  # the worker that made it (call % N)
    observation_tick: int | None = None
    acts_from: int = 0  # the physics step of the tick's period its command acts from (robot actuation)

    @property
    def actuated(self) -> bool:
        return self.fresh and self.observation_tick is not None

    @property
    def delay(self) -> int | None:
        return self.tick - self.observation_tick if self.actuated else None

    def delay_steps(self, steps_per_tick: int) -> int | None:
        """Physics steps from the observed state to the first step the command drives."""
        return self.delay * steps_per_tick + self.acts_from if self.actuated else None


def _marker(call: int, low: float, high: float) -> float:
    """A near-zero action value unique to `call` (exact in float64: the applied command gives it back)."""
    value = (low + high) / 2 + (high - low) / 2 * (call + 1) * 2.0**-16
    if not low <= value <= high:
        raise ValueError(f"too many calls in one episode to mark ({call})")
    return value


def twin_trace(
    task: str,
    timing: Timing,
    delay_calls: int,
    ticks: int,
    *,
    delay: int | None = None,
    episode_steps: int = 1000,
    seed: int = 0,
    offset_samples: Sequence[float] | None = None,
) -> list[TwinTick]:
    """`ticks` ticks of the real `TimingEnv` for `timing` (a `Timing`; `delay` overrides its D), new
    episodes as the task ends them. Each worker call sends a marked near-zero action; a fresh tick's
    applied command names its call, and the action depends on the observation of the call
    `delay_calls` of its worker's calls back (taken at that call's start tick)."""
    from rt_rl.learning.timing_env import TimingEnv

    env = TimingEnv(
        task,
        frame_skip=timing.frame_skip,
        control_steps=timing.control_steps,
        inference_ticks=timing.inference_ticks,
        num_workers=timing.num_workers,
        fallback=timing.fallback,
        episode_steps=episode_steps,
        actuation_offset=timing.actuation_offset,
        offset_jitter=timing.offset_jitter,
        offset_samples=offset_samples,
    )
    spec = env.spec_task
    out: list[TwinTick] = []
    episode = 0
    try:
        while len(out) < ticks:
            base = len(out)
            _, info = env.reset(seed=seed + episode, options=None if delay is None else {"delay": delay})
            starts: list[int] = []  # start tick of each call of this episode
            calls: dict[float, int] = {}  # marker -> call
            done = False
            while not done and len(out) < ticks:
                call = len(starts)
                starts.append(info["tick"])
                value = _marker(call, spec.action_low, spec.action_high)
                calls[value] = call
                _, _, terminated, truncated, info = env.step([value] * spec.action_dim)
                for i, rec in enumerate(info["ticks"]):
                    tick = base + starts[call] + i
                    if not rec["fresh"]:
                        out.append(TwinTick(tick, episode, False))
                        continue
                    made_by = calls[float(rec["command"][0])]
                    source = made_by - delay_calls * env.N  # the same worker, delay_calls calls back
                    obs_tick = base + starts[source] if source >= 0 else None
                    out.append(
                        TwinTick(
                            tick,
                            episode,
                            True,
                            call=made_by,
                            worker=made_by % env.N,
                            observation_tick=obs_tick,
                            acts_from=int(rec.get("acts_from", 0)),
                        )
                    )
                done = terminated or truncated
            episode += 1
    finally:
        env.close()
    return out[:ticks]


def twin_delays(
    task: str,
    timing: Timing,
    delay_calls: int,
    ticks: int,
    *,
    delay: int | None = None,
    episode_steps: int = 1000,
    offset_samples: Sequence[float] | None = None,
    steps_per_tick: int | None = None,
) -> list[int]:
    """The delays of the twin's actuated actions over `ticks` ticks (`twin_trace`): in ticks, or in
    physics steps with `steps_per_tick`."""
    trace = twin_trace(
        task, timing, delay_calls, ticks, delay=delay, episode_steps=episode_steps, offset_samples=offset_samples
    )
    if steps_per_tick:
        return [t.delay_steps(steps_per_tick) for t in trace if t.actuated]
    return [t.delay for t in trace if t.actuated]


def twin_shares(
    task: str,
    timing: Timing,
    delay_calls: int,
    ticks: int,
    *,
    delay_choices: Sequence[int] | None = None,
    episode_steps: int = 1000,
    offset_samples: Sequence[float] | None = None,
    steps_per_tick: int | None = None,
) -> dict[int, float]:
    """Shares per delay in the twin: `ticks` ticks at each of `delay_choices` (default: the timing's
    D), each weighted as often as it appears (reset draws uniformly from the sequence); in physics
    steps with `steps_per_tick`."""
    choices = Counter(int(d) for d in (delay_choices or [timing.inference_ticks]))
    total = sum(choices.values())
    mixed: dict[int, float] = {}
    for d, weight in choices.items():
        for delay, share in shares(
            twin_delays(
                task,
                timing,
                delay_calls,
                ticks,
                delay=d,
                episode_steps=episode_steps,
                offset_samples=offset_samples,
                steps_per_tick=steps_per_tick,
            )
        ).items():
            mixed[delay] = mixed.get(delay, 0.0) + share * weight / total
    return dict(sorted(mixed.items()))


def live_like_ticks(
    trace: Sequence[TwinTick],
    period: float,
    *,
    start: float = 1.7e9,
    tick_phase: float = 0.0,
    sample_lead: float | Mapping[int, float] = 0.0,
) -> list[list]:
    """A twin trace as the tick probe would record it live: tick k at start + k*P + tick_phase; the
    observation of tick j sampled `sample_lead` (in [0, P); per observation tick if a mapping) before
    tick j; an actuated action is a fresh record, any other tick a fallback (as live, where an action
    that depends on no observation is not published)."""
    records = []
    for t in trace:
        at = start + t.tick * period + tick_phase
        if not t.actuated:
            records.append([at, "fallback", True, float("nan"), -1, -1, 0.0])
            continue
        lead = sample_lead[t.observation_tick] if isinstance(sample_lead, Mapping) else sample_lead
        sampled = start + t.observation_tick * period + tick_phase - lead
        records.append([at, "fresh", True, at - sampled, t.worker, t.observation_tick, sampled])
    return records


# --- which twin: the running policy's training timing, or the configuration's ---------------------


@dataclass
class TwinSetup:
    task: str
    timing: Timing
    delay_calls: int  # the policy depends on its worker's observation this many calls back
    delay_choices: list[int]
    episode_steps: int
    source: str  # where the timing came from

    def describe(self) -> str:
        t = self.timing
        stride = t.num_workers * t.slot_ticks
        calls = (
            f"; the action depends on its worker's observation {self.delay_calls} call(s) back "
            f"({self.delay_calls} x {stride} ticks)"
            if self.delay_calls
            else ""
        )
        distinct = sorted(set(self.delay_choices))
        delay = (
            f"D = {distinct[0]}" if len(distinct) == 1 else f"D drawn from {self.delay_choices} per episode"
        )
        return (
            f"{self.task}, {self.source}: P = {t.control_period * 1e3:g} ms, N = {t.num_workers}, "
            f"{delay}, slot spacing s = {t.slot_ticks} tick(s){calls}"
        )


def control_period(params: Mapping) -> float:
    return 1.0 / float(
        node_settings(params, "actuator_arbiter").get("control_rate_hz", DEFAULT_CONTROL_RATE_HZ)
    )


def twin_setup(
    params: Mapping, *, delay: int | None = None, lead: float | None = None, workers=None
) -> TwinSetup:
    """The twin for `params`: the checkpoint's training timing (`PolicyInfo.timing`), or, for a policy
    without one ('random' or an old checkpoint), the configuration's: its period and worker count, and
    D = `delay`, else ceil(lead / P) from the live schedule's lead (as the worker's timing check)."""
    from rt_rl.learning.timing_env import Timing
    from rt_rl.policy.networks import observation_delay
    from rt_rl.policy.runtime import read_policy_info
    from rt_rl.policy.timing_check import live_delay_ticks

    glob = node_settings(params, WORKER)
    checkpoint = str(glob.get("policy_checkpoint", "random"))
    arch, depth, task, trained = "mlp", 1, str(glob.get("task", "Hopper-v5")), {}
    if checkpoint != "random":
        info = read_policy_info(checkpoint)  # ValueError with the file and the reason
        arch, depth, task, trained = info.arch, info.depth, info.task, dict(info.timing)
    delay_calls = observation_delay(arch, depth)
    names = {f.name for f in fields(Timing)}
    required = {f.name for f in fields(Timing) if f.default is MISSING}
    if required <= set(trained):
        timing = Timing(**{k: trained[k] for k in names if k in trained})
        choices = [int(d) for d in trained.get("delay_choices") or [timing.inference_ticks]]
        # The twin of this configuration: a delay the arbiter pins is the one live runs, whatever
        # distribution of delays the policy was trained over.
        pinned = int(node_settings(params, "actuator_arbiter").get("actuation_delay_ticks", 0) or 0)
        why = "--twin-delay" if delay is not None else "the params' actuation_delay_ticks"
        delay = delay if delay is not None else (pinned or None)
        if delay is not None:
            choices, timing.inference_ticks = [delay], delay
        source = f"trained timing of {checkpoint}" + (f", D = {delay} ({why})" if delay is not None else "")
        return TwinSetup(task, timing, delay_calls, choices, int(trained.get("episode_steps", 1000)), source)
    period = control_period(params)
    n = workers if workers is not None else glob.get("num_workers", 1)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"num_workers {n!r}: the twin needs a worker count")
    if delay is None:
        if lead is None:
            raise ValueError("the policy has no training timing and no live schedule: give --twin-delay")
        delay = live_delay_ticks(lead, period)
    from rt_rl.core.mujoco_task import frame_skip_for_rate
    from rt_rl.tasks import get_task

    sensor_rate = float(node_settings(params, "mujoco_sim").get("sensor_rate_hz", DEFAULT_SENSOR_RATE_HZ))
    frame_skip = frame_skip_for_rate(get_task(task), sensor_rate)
    fallback = str(node_settings(params, "actuator_arbiter").get("fallback", "hold"))
    timing = Timing(period, 1.0 / sensor_rate, frame_skip, delay, n, fallback)
    return TwinSetup(
        task, timing, delay_calls, [delay], 1000, f"configuration ({checkpoint} has no training timing)"
    )


# --- running ---------------------------------------------------------------------------------------


def measure_run(probe: Mapping, period: float) -> dict:
    """The numbers of one run's probe."""
    ticks = probe.get("ticks") or []
    delays = live_delays(ticks, period)
    phases = live_phases(ticks, period)
    window = [r for r in ticks if r[2]]
    return {
        "shares": shares(delays),
        "counts": dict(sorted(Counter(delays).items())),
        "actuated": len(delays),
        "ticks_in_window": len(window),
        "phase": [round(min(phases), 3), round(statistics.median(phases), 3), round(max(phases), 3)]
        if phases
        else None,
    }


def _error(message: str) -> int:
    print(f"rt-rl bench twin: error: {message}", file=sys.stderr)
    return 2


def _load_probe(path: str) -> dict:
    """A tick probe's JSON, or a run summary with one under 'probe' (as `stagger.run_once` returns)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"probe file '{path}' could not be read: {str(err).splitlines()[0]}") from None
    if isinstance(data, dict) and isinstance(data.get("probe"), dict):
        return data
    if not isinstance(data, dict) or not isinstance(data.get("ticks"), list):
        raise ValueError(f"probe file '{path}' has no 'ticks' list (a rt_rl.bench.tick_probe output?)")
    return {"probe": data}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rt-rl bench twin", description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="config/demo.yaml", help="params file of the graph (and the twin)")
    ap.add_argument("--repeat", type=int, default=3, help="live runs (min/median/max over them)")
    ap.add_argument(
        "--duration",
        type=float,
        default=120.0,
        help="seconds measured per run (long: a window keeps only the episodes that start and end in it)",
    )
    ap.add_argument("--out", default="docs/results/bench_twin", help="output prefix (.md, .json)")
    ap.add_argument(
        "--from-probe",
        nargs="+",
        metavar="FILE",
        help="no launch: tick probe JSON files (or run summaries holding one under 'probe'), a run each",
    )
    ap.add_argument("--twin-ticks", type=int, default=3000, help="twin ticks per delay choice")
    ap.add_argument(
        "--twin-episodes",
        type=int,
        default=100,
        help="episodes of the checkpoint in simulated time (seeds 1000...) for the return comparison: "
        "the first 20 (issue 7's comparison) and all of them (0: none)",
    )
    ap.add_argument(
        "--twin-delay",
        type=int,
        default=None,
        help="the twin's D (default: the checkpoint's training timing; without one, ceil(lead/P) of the "
        "live schedule)",
    )
    ap.add_argument("--keep-runs", metavar="DIR", help="keep each run's directory (summary, probe) in DIR")
    ap.add_argument(
        "--robot",
        metavar="ROBOT.yaml",
        help="the graph in robot mode drives this simulated robot (e.g. config/robots/hopper.yaml, "
        "ros2_control-like), as `rt-rl launch --robot`",
    )
    a = ap.parse_args(argv)
    if not Path(a.params).is_file():
        return _error(f"params file '{a.params}' not found")
    if a.robot and not Path(a.robot).is_file():
        return _error(f"robot params file '{a.robot}' not found")
    if a.repeat < 1 or a.duration <= 0 or a.twin_ticks < 1 or a.twin_episodes < 0:
        return _error("--repeat, --duration and --twin-ticks must be positive, --twin-episodes >= 0")
    if a.twin_delay is not None and a.twin_delay < 0:
        return _error("--twin-delay must be >= 0")
    try:
        params = yaml.safe_load(Path(a.params).read_text()) or {}
        if not isinstance(params, dict):
            raise ValueError(f"params file '{a.params}' is not a ROS 2 params mapping")
        period = control_period(params)
        runs = [_load_probe(p) for p in a.from_probe] if a.from_probe else live_runs(params, a)
    except (ValueError, ZeroDivisionError, yaml.YAMLError) as err:
        return _error(str(err).splitlines()[0] if str(err) else type(err).__name__)
    if not runs:
        return _error("no run completed")
    schedule = next((r["schedule"] for r in runs if r.get("schedule")), {})
    lead = schedule["lead_ms"] / 1e3 if schedule.get("lead_ms") else None
    try:
        setup = twin_setup(params, delay=a.twin_delay, lead=lead, workers=schedule.get("num_workers"))

        def twin_at(offs: Sequence[float] | None = None, steps_per_tick: int | None = None) -> dict[int, float]:
            """The twin's delay shares: in ticks, or in physics steps at the measured offsets `offs`."""
            return twin_shares(
                setup.task,
                setup.timing,
                setup.delay_calls,
                a.twin_ticks,
                delay_choices=setup.delay_choices,
                episode_steps=setup.episode_steps,
                offset_samples=offs,
                steps_per_tick=steps_per_tick,
            )

        twin = twin_at()
    except ValueError as err:
        return _error(str(err).splitlines()[0])
    measured = [measure_run(r["probe"], period) for r in runs]
    text = report(measured, twin, setup, a, period, argv)
    # the delay at the robot's actuation, in its update steps (physics steps here)
    robot, offsets, run_offsets = {}, [], []
    h = physics_step(setup.task)
    per_tick = round(period / h)
    for m, r in zip(measured, runs, strict=True):
        steps, offs = live_robot_delays(
            r["probe"]["ticks"], r["probe"].get("commands") or [], r["probe"].get("samples") or [], period, h
        )
        m["robot_steps"] = {"shares": shares(steps), "counts": dict(sorted(Counter(steps).items()))}
        m["offset_ms"] = spread_numbers([1e3 * x for x in offs])
        m["command_interarrival_ms"] = interarrival_ms(r["probe"].get("commands") or [], r["probe"]["ticks"])
        offsets += offs
        run_offsets.append(offs)

    if offsets:
        twin_steps = twin_at(offsets, per_tick)
        # each run against the twin at its own offsets (the tick's phase on the robot's 2 ms grid is the
        # run's own: a tick lock is to the sensor period, not to the update grid inside it)
        per_run = [twin_at(offs, per_tick) if offs else {} for offs in run_offsets]
        robot = {
            "physics_step_ms": h * 1e3,
            "twin_shares": twin_steps,
            "twin_shares_per_run": per_run,
            "max_difference_pooled": max_difference([m["robot_steps"]["shares"] for m in measured], twin_steps),
            "max_difference": max(
                (max_difference([m["robot_steps"]["shares"]], t) for m, t in zip(measured, per_run, strict=True)),
                default=0.0,
            ),
        }
        text += (
            "\n## Commands at the robot\n\n| run | command inter-arrival p50 / p99 / max (ms) |\n|---:|---|\n"
            + "".join(
                f"| {i} | {' / '.join(f'{v:.2f}' for v in m['command_interarrival_ms'])} |\n"
                for i, m in enumerate(measured)
                if m.get("command_interarrival_ms")
            )
            + "\nArrival times of the command topic's messages at an outside rclpy subscriber (normal priority, "
            "wall clock taken in its callback), inside the arbiter's measurement window.\n"
        )
        text += f"\n## Delay at the robot's actuation, in its {h * 1e3:g} ms update steps\n\n"
        text += "Each run against the twin at that run's own measured offsets:\n\n"
        text += "| run | delay (steps): live / twin share | largest difference |\n|---:|---|---:|\n"
        for i, (m, t) in enumerate(zip(measured, per_run, strict=True)):
            live = m["robot_steps"]["shares"]
            cells = ", ".join(
                f"{d}: {live.get(d, 0.0):.3f} / {t.get(d, 0.0):.3f}"
                for d in sorted(set(live) | set(t))
                if max(live.get(d, 0.0), t.get(d, 0.0)) >= 0.001
            )
            text += f"| {i} | {cells} | {max_difference([live], t):.3f} |\n"
        verdict = "within" if robot["max_difference"] <= TOLERANCE else "NOT within"
        text += f"\nLargest difference, worst run: {robot['max_difference']:.3f} ({verdict} {TOLERANCE:g}).\n\n"
        text += (
            "All runs pooled against the twin at the pooled offsets (the runs differ in where their ticks fall "
            "on the robot's 2 ms grid):\n\n"
            + delay_table([m["robot_steps"]["shares"] for m in measured], twin_steps, f"{h * 1e3:g} ms steps")
            + "\nLive: for each actuated tick, the arrival of its command at an outside subscriber on the "
            "command topic (beside the robot, same host), rounded up to the robot's update grid (the grid's "
            "phase from the earliest phase of its joint-state stamps), minus the update of the sample the "
            "action depends on. Twin: the same policy timing with each tick's command acting from the physics "
            "step its offset falls in, offsets drawn from the live ones "
            f"(tick to acting, min / median / max {spread_numbers([1e3 * x for x in offsets])} ms).\n"
        )
    returns_text, returns = "", {}
    checkpoint = str(node_settings(params, WORKER).get("policy_checkpoint", "random"))
    if a.twin_episodes and checkpoint != "random":
        from rt_rl.learning.evaluate import evaluate_checkpoint

        at = setup.delay_choices[0] if len(set(setup.delay_choices)) == 1 else None
        twin_returns = evaluate_checkpoint(
            checkpoint,
            a.twin_episodes,
            delay=at,
            episode_steps=setup.episode_steps,
            offset_samples=offsets or None,
        )["returns"]
        live_returns = [(r.get("sim") or {}).get("episode_returns") or [] for r in runs]
        returns_text, returns = return_table(live_returns, twin_returns)
        text += (
            f"\n## Episode return: live against the twin\n\n{returns_text}\nLive: every episode that started "
            "and ended inside a run's measurement window (the sim's own count; episodes cut by the window or "
            f"ended after the arbiter stopped are left out); run i resets its episodes from the params' seed + "
            f"i * {RUN_SEED_STRIDE}, so the runs are independent samples. Twin: `python -m rt_rl.learning.evaluate --checkpoint {checkpoint} --episodes "
            f"{a.twin_episodes}{'' if at is None else f' --delay {at}'}` (seeds 1000...), episodes of {setup.episode_steps} steps as live.\n"
        )
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    raw = {
        "params": a.params,
        "period_s": period,
        "from_probe": a.from_probe,
        "twin": {
            "setup": setup.describe(),
            "timing": setup.timing.as_dict(),
            "delay_choices": setup.delay_choices,
            "delay_calls": setup.delay_calls,
            "shares": twin,
        },
        "runs": measured,
        "max_difference": max_difference([m["shares"] for m in measured], twin),
        "returns": returns,
        "robot_actuation": robot,
    }
    out.with_suffix(".json").write_text(json.dumps(raw, indent=1))
    print(text)
    return 0


RUN_SEED_STRIDE = 1000  # run i resets its episodes from the params' seed + i * 1000


def physics_step(task: str) -> float:
    from rt_rl.core.mujoco_task import physics_timestep
    from rt_rl.tasks import get_task

    return physics_timestep(get_task(task))


def interarrival_ms(commands: Sequence[Sequence[float]], ticks: Sequence[Sequence]) -> list[float] | None:
    """p50 / p99 / max of the gaps between command arrivals inside the arbiter's window (ms)."""
    window = [r[0] for r in ticks if r[2]]
    if not window or len(commands) < 3:
        return None
    times = [c[0] for c in commands if window[0] <= c[0] <= window[-1] + 0.05]
    gaps = sorted(1e3 * (b - a) for a, b in itertools.pairwise(times))
    if not gaps:
        return None
    return [statistics.median(gaps), gaps[min(len(gaps) - 1, math.ceil(0.99 * len(gaps)) - 1)], gaps[-1]]


def spread_numbers(values: Sequence[float]) -> str:
    """'min / median / max' to 0.01, or '-'."""
    if not values:
        return "-"
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def robot_topics(params: Mapping) -> tuple[str, str]:
    """(command topic, joint-states topic) of a params file, its robot section's if it has one."""
    robot = (params.get("robot") or {}).get("ros__parameters") or {}
    command = robot.get("command_topic") or node_settings(params, "actuator_arbiter").get("command_topic")
    joints = robot.get("joint_states_topic") or node_settings(params, "sensor_ingest").get("joint_states_topic")
    return command or "/rt_rl/command", joints or "/joint_states"


def run_params(params: dict, run: int) -> dict:
    """The params of run `run`: its own episode seeds, so that the runs are independent samples of
    episodes (with one seed every run replays the same episodes: 3 x 20 episodes were 20)."""
    out = copy.deepcopy(params)
    sim = out.setdefault("mujoco_sim", {}).setdefault("ros__parameters", {})
    sim["seed"] = int(node_settings(params, "mujoco_sim").get("seed", 0)) + run * RUN_SEED_STRIDE
    return out


def live_runs(params: dict, a: argparse.Namespace) -> list[dict]:
    """`--repeat` launches of the graph beside the tick probe (`stagger.run_once`), each from its own
    episode seeds (`run_params`); a failed run is reported and left out."""
    from tqdm import tqdm

    from rt_rl.bench.stagger import run_once

    workers = node_settings(params, GLOBAL).get("num_workers", 1)
    robot = yaml.safe_load(Path(a.robot).read_text()) if getattr(a, "robot", None) else None
    runs = []
    with tempfile.TemporaryDirectory(prefix="rt_rl_bench_twin_") as tmp_dir:
        tmp = getattr(a, "keep_runs", None) or tmp_dir
        for i in tqdm(range(a.repeat), desc="bench twin", unit="run"):
            try:
                runs.append(
                    run_once(
                        params if robot else run_params(params, i),
                        workers,
                        a.duration,
                        Path(tmp) / f"run_{i}",
                        robot=run_params(robot, i) if robot else None,
                        robot_topics=robot_topics(params),
                    )
                )
            except RuntimeError as err:
                tqdm.write(f"run {i}: {err}")
    return runs


def report(measured: list[dict], twin: dict[int, float], setup: TwinSetup, a, period: float, argv) -> str:
    command = "rt-rl bench twin " + " ".join(argv if argv is not None else sys.argv[1:])
    where = (
        f"from {len(measured)} recorded probe file(s)"
        if a.from_probe
        else f"{len(measured)} live run(s) of {a.duration:g} s measured each"
    )
    text = (
        f"# End-to-end delay in control ticks: live graph and twin\n\n`{command.strip()}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, {where}, "
        f"P = {period * 1e3:g} ms.\n\nTwin: {setup.describe()}; {a.twin_ticks} ticks per delay choice.\n\n"
    )
    text += delay_table([m["shares"] for m in measured], twin) + "\n"
    text += "| run | actuated actions | ticks in window | actions per delay | phase min / median / max |\n"
    text += "|---:|---:|---:|---|---|\n"
    for i, m in enumerate(measured):
        counts = ", ".join(f"{d}: {c}" for d, c in m["counts"].items()) or "-"
        phase = " / ".join(f"{p:.3f}" for p in m["phase"]) if m["phase"] else "-"
        text += f"| {i} | {m['actuated']} | {m['ticks_in_window']} | {counts} | {phase} |\n"
    text += (
        "\nHow it is measured: an outside rclpy process records every /rt_rl/actuation tick (its wall "
        "time t_k, kind, and the sensor stamp of the observation the actuated action depends on: for a "
        "pipelined policy that of its worker's previous call). Delay of an actuated (fresh) tick inside "
        "the arbiter's window = k - j, j the first tick at or after the stamp: floor((t_k - stamp)/P). "
        "In the twin (TimingEnv, stepped with marked actions) the same count: the tick that actuates an "
        "action minus the tick whose observation it depends on. Phase = (t_k - stamp)/P - delay: near 1 "
        "the tick is within the command's transit of the sim's next step and the live delay may be one "
        "more than counted. Actions that depend on no observation (a pipeline's first calls of an "
        "episode) are not published live and not counted in the twin.\n"
    )
    return text


if __name__ == "__main__":
    raise SystemExit(main())
