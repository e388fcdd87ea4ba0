"""Sizing the worker pool and measuring T: how many workers an auto pool keeps active, which processes
the launcher starts and retires, and the running estimate of the inference time."""

from __future__ import annotations

import math


class PoolSizer:
    """How many workers an auto-sized pool keeps active: the fewest that give a fresh action every
    tick, ceil(T / P) + `extra` (one more than the bare N*P >= T, for jitter), within [min, max].
    It grows at once (a missing worker costs ticks) and shrinks only after the smaller size has held
    for `shrink_hold` seconds (a retired worker is a process to restart)."""

    def __init__(self, min_workers: int, max_workers: int, extra: int = 1, shrink_hold: float = 5.0) -> None:
        if not 1 <= min_workers <= max_workers:
            raise ValueError(f"need 1 <= min_workers <= max_workers, got {min_workers}, {max_workers}")
        self.min_workers, self.max_workers, self.extra, self.shrink_hold = (
            min_workers,
            max_workers,
            extra,
            shrink_hold,
        )
        self.size: int | None = None
        self._smaller_since: float | None = None

    def wanted(self, inference_time: float, control_period: float) -> int:
        n = math.ceil(inference_time / control_period - 1e-9) + self.extra
        return max(self.min_workers, min(self.max_workers, n))

    def update(self, inference_time: float, control_period: float, now: float) -> int:
        want = self.wanted(inference_time, control_period)
        if self.size is None or want > self.size:
            self.size, self._smaller_since = want, None
        elif want < self.size:
            if self._smaller_since is None:
                self._smaller_since = now
            if now - self._smaller_since >= self.shrink_hold:
                self.size, self._smaller_since = want, None
        else:
            self._smaller_since = None
        return self.size


def pool_processes(
    alive: list[int], active: list[int], wanted: int, spares: int, max_workers: int
) -> tuple[list[int], list[int]]:
    """The launcher's side of an auto pool: worker ids to start and to retire so that `wanted` active
    workers have `spares` warm ones beside them (processes up, torch imported, policy warm). Starts
    take the lowest free ids; retirements the highest idle ones (never an active worker)."""
    target = min(max_workers, wanted + spares)
    start = [w for w in range(max_workers) if w not in alive][: max(0, target - len(alive))]
    idle = sorted((w for w in alive if w not in active), reverse=True)
    retire = idle[: max(0, len(alive) - target)]
    return start, retire


class InferenceTimeEstimator:
    """Running estimate of T: a high percentile of the last `window` measured inference durations.

    A high percentile (not the mean) because a start slot sized for the mean lets every slower-than-mean
    inference miss its tick.
    """

    def __init__(self, window: int = 50, percentile: float = 95.0) -> None:
        self.window = window
        self.percentile = percentile
        self._samples: list[float] = []

    def add(self, seconds: float) -> None:
        if math.isfinite(seconds) and seconds >= 0:
            self._samples.append(seconds)
            del self._samples[: -self.window]

    def __len__(self) -> int:
        return len(self._samples)

    def estimate(self) -> float:
        return self.quantile(self.percentile)

    def mean(self) -> float:
        if not self._samples:
            raise ValueError("no inference time measured yet")
        return sum(self._samples) / len(self._samples)

    def typical(self) -> float:
        """The mean, but no less than the median of the newest quarter of the window: a step up in T
        shows there after a few samples (the mean of the whole window follows it slowly)."""
        newest = sorted(self._samples[-max(1, len(self._samples) // 4) :])
        return max(self.mean(), newest[len(newest) // 2])

    def quantile(self, percentile: float) -> float:
        if not self._samples:
            raise ValueError("no inference time measured yet")
        ordered = sorted(self._samples)
        idx = min(len(ordered) - 1, math.ceil(percentile / 100.0 * len(ordered)) - 1)
        return ordered[max(idx, 0)]
