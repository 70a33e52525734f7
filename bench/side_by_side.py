"""Sides of a benchmark timed side by side, and how their runs are reported.

The project's rule for a benchmark: a ratio against a named baseline run side by side in the same script, the sides
taking turns, at least 3 runs, reported as the median and [range] of the runs. Taking the best run instead hides the
noise of a shared machine and favours whichever side had one lucky run.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence


def rotated(sides: Sequence, run: int) -> list:
    """The order of the sides in run `run`: shifted by one each run, so no side always goes first (or last)."""
    return [*sides[run % len(sides):], *sides[:run % len(sides)]]


def untimed_nothing() -> None:
    """A setup for a job that needs none."""


def alternate(repeat: int, sides: dict[str, tuple[Callable, Callable]],
              on_run: Callable[[str, float], None] | None = None) -> dict[str, list[float]]:
    """Wall seconds of `repeat` runs of each side's (job, setup), the sides taking turns in rotated order so that a
    change in the machine's state (other load, page cache, disk write-back) falls on every side alike. Each job is
    given what its setup returned; setup and a garbage collection come before the clock starts. `on_run` is told
    (side, seconds) after each run."""
    times: dict[str, list[float]] = {side: [] for side in sides}
    for run in range(repeat):
        for side in rotated(list(sides), run):
            job, setup = sides[side]
            prepared = setup()
            gc.collect()
            started = time.perf_counter()
            job(prepared)
            times[side].append(time.perf_counter() - started)
            if on_run:
                on_run(side, times[side][-1])
    return times


def median_range(values: Sequence[float], fmt: Callable[[float], str] = "{:.2f}".format) -> str:
    """'median [min-max]' of `values`, each number written by `fmt`."""
    return f"{fmt(statistics.median(values))} [{fmt(min(values))}-{fmt(max(values))}]"


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Run-by-run ratios of two sides timed in the same runs (run r of one against run r of the other)."""
    return [n / d for n, d in zip(numerators, denominators, strict=True)]
