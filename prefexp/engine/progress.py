"""Progress of a long loop off a terminal (a log file, a SLURM job): a line every 10 % of the work
with the rate and the ETA, so minutes of a reference pass or of tokenising are never silent. On a
terminal the loops keep their tqdm bar, and a loop that ends within ``QUIET_S`` prints nothing.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Callable, Optional

QUIET_S = 5.0  # no line before this much time has passed: short loops stay silent


def duration(seconds: float) -> str:
    """12 s, 3m20s, 1h02m."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """``update(done)`` after each chunk of work; logs ``<what>: done/total <unit> (p %), r <unit>/s,
    ETA t`` each time another tenth is done (after ``QUIET_S``), and the last one."""

    def __init__(self, total: int, what: str, unit: str, log: logging.Logger, every: float = 0.1,
                 enabled: Optional[bool] = None, clock: Callable[[], float] = time.perf_counter):
        self.total, self.what, self.unit, self.log = total, what, unit, log
        self.enabled = (not sys.stderr.isatty()) if enabled is None else enabled
        self.clock = clock
        self.start = clock()
        self.parts = max(1, round(1 / every))  # lines at done >= total * k / parts, k = 1, 2, ...
        self.k = 1

    def update(self, done: int) -> None:
        if not self.enabled or self.total <= 0:
            return
        if done * self.parts < self.total * self.k and done < self.total:  # integer test: no rounding
            return
        self.k = done * self.parts // self.total + 1
        fraction = done / self.total
        elapsed = self.clock() - self.start
        if elapsed < QUIET_S:
            return
        rate = done / elapsed if elapsed > 0 else float("inf")
        eta = (self.total - done) / rate if rate > 0 else 0.0
        self.log.info("%s: %d/%d %s (%.0f %%), %.1f %s/s, ETA %s", self.what, done, self.total, self.unit,
                      100 * fraction, rate, self.unit, duration(eta))
