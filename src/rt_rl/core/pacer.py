"""The one drift-free tick pacer, shared by the arbiter's control clock and the simulator's physics loop.

Tick n is due at `start + n * period` on the monotonic clock, never at "last wake-up + period", so
wake-up latency does not accumulate into drift.

Overrun rule: a tick that is reached late still runs at once (no sleep) as long as it is less than
one full period late. When the loop is a period or more behind (the machine stalled, the process was
descheduled), the ticks that were missed are *skipped*, not run back to back: a burst of commands or
physics steps would only make things worse. Skipped ticks are counted (`skipped`) and every tick that
started late by more than `late_tolerance` is counted (`late`), so the statistics can say what
happened. A clock that jumps backwards (the wall clock stepped by NTP) would make the next tick due
far in the future: when a tick is due more than `max_ahead` periods from now the grid is re-anchored
at now (counted in `clock_steps`) instead of sleeping through the jump. The simulator, which must keep simulated time equal to wall time, uses `catch_up=True`
instead: it runs the missed steps back to back (its real-time factor stays 1) and counts them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Pacer:
    period: float
    start: float  # time of tick 0 (monotonic seconds)
    catch_up: bool = False  # True: run missed ticks back to back; False: skip them
    late_tolerance: float = 0.001  # a tick starting later than this counts as late
    max_ahead: float = 2.0  # periods; a due time further ahead means the clock stepped back
    tick: int = field(default=0, init=False)  # index of the tick last returned by `next_due`
    late: int = field(default=0, init=False)
    skipped: int = field(default=0, init=False)
    caught_up: int = field(default=0, init=False)
    clock_steps: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not self.period > 0:
            raise ValueError(f"period must be > 0 s, got {self.period}")

    def due(self, n: int) -> float:
        return self.start + n * self.period

    def next_due(self, now: float) -> tuple[int, float]:
        """Advance to the next tick and return (its index, its due time), applying the overrun rule."""
        n = self.tick + 1
        if self.due(n) - now > self.max_ahead * self.period:
            self.clock_steps += 1
            self.start = now - self.tick * self.period  # tick n is now due one period from now
        behind = now - self.due(n)
        if behind >= self.period:
            missed = math.floor(behind / self.period + 1e-9)  # exact grid readings: no rounding down
            if self.catch_up:
                self.caught_up += 1
            else:
                self.skipped += missed
                n += missed
        self.tick = n
        return n, self.due(n)

    def shift(self, seconds: float) -> None:
        """Move every later tick by `seconds` (> 0: later; the next period is that much longer)."""
        self.start += seconds

    def rebase(self, tick: int, at: float, period: float) -> None:
        """From tick `tick` (due at `at`) on, ticks are `period` apart: a rate change at a tick."""
        if not period > 0:
            raise ValueError(f"period must be > 0 s, got {period}")
        self.period = period
        self.start = at - tick * period

    def record_start(self, due: float, started: float) -> None:
        """Count a tick that began later than the tolerance (called with the real start time)."""
        if started - due > self.late_tolerance:
            self.late += 1

    def wait(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> tuple[int, float]:
        """Sleep until the next tick is due; returns (tick index, due time)."""
        n, due = self.next_due(clock())
        remaining = due - clock()
        if remaining > 0:
            sleep(remaining)
        self.record_start(due, clock())
        return n, due

    def counters(self) -> dict[str, int]:
        return {
            "ticks": self.tick,
            "late": self.late,
            "skipped": self.skipped,
            "caught_up": self.caught_up,
            "clock_steps": self.clock_steps,
        }


@dataclass
class OverloadWatch:
    """Says when the graph falls behind, while it happens (not only in the final counters): fed the
    pacer's counters and the count of fresh ticks once a second, it reports "overload" when more than
    `late_share` of the ticks since the last call started late, any tick was skipped, or (once
    scheduled) fewer than `fresh_floor` of them actuated a fresh action (the workers, at normal
    priority, are starved), and "recovered" at the first quiet second after."""

    late_share: float = 0.05
    fresh_floor: float = 0.8
    overloaded: bool = False
    seconds: int = 0  # overloaded seconds so far
    _last: tuple[int, int, int, int] | None = None

    def update(self, ticks: int, late: int, skipped: int, fresh: int | None = None) -> str | None:
        fresh_now = -1 if fresh is None else fresh
        last, self._last = self._last, (ticks, late, skipped, fresh_now)
        if last is None or ticks <= last[0]:
            return None
        n, n_late, n_skipped = ticks - last[0], late - last[1], skipped - last[2]
        starved = fresh is not None and last[3] >= 0 and fresh - last[3] < self.fresh_floor * n
        bad = n_skipped > 0 or n_late > self.late_share * n or starved
        if bad:
            self.seconds += 1
        if bad and not self.overloaded:
            self.overloaded = True
            return "overload"
        if not bad and self.overloaded:
            self.overloaded = False
            return "recovered"
        return None
