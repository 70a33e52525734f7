"""Progress bars on stderr for the long stages: whether to draw them, and the bars (tqdm), or nothing at all.

The decision, in one place: `--progress` / `--no-progress`, else EMBTOOLS_PROGRESS (1 or 0), else whether stderr is
a terminal (and `-q` was not given); and only the main process (rank 0) draws. The command layer resolves it once and
exports it in EMBTOOLS_PROGRESS (`export_decision`), so worker processes launched under accelerate, whose stderr is a
pipe to the launcher, keep the choice. A bar never writes to stdout; when progress is off a Bar is a no-op and tqdm
is not imported.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from embtools.distributed import is_main_process

ENV = "EMBTOOLS_PROGRESS"
_ON, _OFF = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}
_drawn = 0  # bars open now: log lines are written above them


def wanted(flag: bool | None = None) -> bool:
    """flag (`--progress/--no-progress`) > EMBTOOLS_PROGRESS > stderr is a terminal (and `-q` was not given)."""
    if flag is not None:
        return flag
    value = os.environ.get(ENV, "").strip().lower()
    if value in _ON | _OFF:
        return value in _ON
    quiet = logging.getLogger("embtools").getEffectiveLevel() >= logging.ERROR
    return bool(sys.stderr is not None and sys.stderr.isatty() and not quiet)


def enabled() -> bool:
    """Whether this process draws bars: progress is wanted and this is the main process."""
    return wanted() and is_main_process()


def export_decision(flag: bool | None) -> str | None:
    """Resolve the decision now and put it in EMBTOOLS_PROGRESS for worker processes; returns the previous value,
    for `restore`."""
    previous = os.environ.get(ENV)
    os.environ[ENV] = "1" if wanted(flag) else "0"
    return previous


def restore(previous: str | None) -> None:
    """Put EMBTOOLS_PROGRESS back as it was before `export_decision` (an in-process run must not leak into the next)."""
    if previous is None:
        os.environ.pop(ENV, None)
    else:
        os.environ[ENV] = previous


class Bar:
    """A bar on stderr, drawn from the first update on, or nothing when progress is off.

    `update(n, **fields)` advances by n units; a field named in `rates` is a running total shown per second
    (`tokens` -> `tokens/s 1375`), any other is shown as given (`loss 0.4521`, `stage corpus`, `cached 3/10`).
    `total` may be a function (a line count of the input): called only when the bar is drawn, so a run without a
    bar never pays for it.
    """

    def __init__(self, desc: str, total: int | Callable[[], int | None] | None = None, unit: str = "it",
                 rates: tuple[str, ...] = (), initial: int = 0, on: bool | None = None):
        self.rates, self.counts, self.fields = rates, Counter(), {}
        self._shape = (desc, total, unit, initial)
        self._on = enabled() if on is None else on
        self._bar, self._started = None, 0.0

    def update(self, n: int = 1, **fields: Any) -> None:
        if not self._on:
            return
        if self._bar is None:  # drawn with the first unit of work: a stage that does nothing shows nothing
            self._bar, self._started = _tqdm(*self._shape), time.perf_counter()
        for name, value in fields.items():
            if name in self.rates:
                self.counts[name] += value
            else:
                self.fields[name] = value
        if fields:
            self._bar.set_postfix_str(self._postfix(), refresh=False)
        self._bar.update(n)

    def show(self, **fields: Any) -> None:
        """Set fields and redraw now (a new stage)."""
        self.update(0, **fields)
        if self._on:
            self._bar.refresh()

    def _postfix(self) -> str:
        seconds = max(time.perf_counter() - self._started, 1e-9)
        parts = [f"{name}/s {self.counts[name] / seconds:.0f}" for name in self.rates if name in self.counts]
        parts += [f"{name} {_format(value)}" for name, value in self.fields.items()]
        return ", ".join(parts)

    def close(self) -> None:
        global _drawn
        if self._bar is not None:
            self._bar.close()
            _drawn -= 1
        self._on, self._bar = False, None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


NO_BAR = Bar("", on=False)


def track(items: Iterable, desc: str, total: int | Callable[[], int | None] | None = None,
          unit: str = "it") -> Iterator:
    """The items, one bar unit each; the bar closes when they run out (or the reader stops)."""
    with Bar(desc, total, unit) as bar:
        for item in items:
            yield item
            bar.update()


def _tqdm(desc: str, total: int | Callable[[], int | None] | None, unit: str, initial: int):
    global _drawn
    from tqdm import tqdm

    if callable(total):
        total = total()

    _drawn += 1
    return tqdm(desc=desc, total=total, unit=f" {unit}", initial=initial, file=sys.stderr, dynamic_ncols=True,
                mininterval=0.2, leave=None)  # a bar inside another's stage vanishes


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


def above_bars():
    """A context in which a log line is written to stderr above the open bars (which are redrawn below it)."""
    if not _drawn:
        return nullcontext()
    from tqdm import tqdm

    return tqdm.external_write_mode(file=sys.stderr)


@contextmanager
def attached(target: Any, bar: Bar) -> Iterator[Bar]:
    """`target.progress = bar` for the context (an Encoder reporting its batches), then the bar closed and
    `target.progress` back to NO_BAR."""
    target.progress = bar
    try:
        with bar:
            yield bar
    finally:
        target.progress = NO_BAR
