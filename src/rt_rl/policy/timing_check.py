"""Does the live graph run the timing a policy was trained for? (pure; the worker reports the answer)

A checkpoint records its training timing (`PolicyInfo.timing`, written by the trainer from
`rt_rl.learning.timing_env.Timing` plus the delay choices and the episode length). The live graph's
timing is known to a worker once the arbiter's schedule arrives: the control period, the number of
workers, and the schedule's lead (inference time T plus margin), from which the number of ticks from a
worker's start to the tick that actuates its action follows: ceil(lead / period), the twin's D.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def live_delay_ticks(lead: float, control_period: float) -> int:
    """Ticks from a worker's start to the tick that actuates its action (the twin's D)."""
    return max(1, math.ceil(lead / control_period - 1e-9))


def timing_differences(
    trained: Mapping[str, Any], *, control_period: float, num_workers: int, lead: float
) -> list[str]:
    """One line per way the live timing differs from `trained`; empty when it matches (or is unknown)."""
    out = []
    period = trained.get("control_period")
    if period is not None and not math.isclose(period, control_period, rel_tol=1e-6):
        out.append(f"control period {control_period * 1e3:g} ms live, {period * 1e3:g} ms trained")
    workers = trained.get("num_workers")
    if workers is not None and workers != num_workers:
        out.append(
            f"{num_workers} worker(s) live, {workers} trained (a pipelined policy's deep features "
            "assume its trained stride)"
        )
    choices = trained.get("delay_choices") or (
        [trained["inference_ticks"]] if "inference_ticks" in trained else []
    )
    if choices:
        d = live_delay_ticks(lead, control_period)
        if not min(choices) <= d <= max(choices):
            trained_d = f"D = {choices[0]}" if len(set(choices)) == 1 else f"D in {sorted(set(choices))}"
            out.append(
                f"actions actuated {d} tick(s) after their worker starts live, trained for {trained_d}"
            )
    return out
