"""Fault injection: run a command, kill it with SIGKILL at seeded random moments, re-run it, compare.

The reference run is timed, and the moment its first temporary output appears is noted; each killed run is watched
for its own first temporary output and killed a seeded random time after it, within the reference's writing time,
so the kills land in the part of the run that writes (a run that ends first is tried again sooner). After each kill
the output must be as it was before the run or whole (never half-written); after the re-run it must equal the
reference (byte for byte unless the case says how to compare), and no `*.embtools-tmp-*` temporary may be left in
the output's folder.

Used by tests/test_reliability_faults.py; any command that writes files can plug in with a `FaultCase`.
"""

from __future__ import annotations

import operator
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from embtools.records.atomic import remove_stale_temporaries

TMP_MARK = ".embtools-tmp-"
Snapshot = dict[str, bytes] | bytes | None


def snapshot(path: Path) -> Snapshot:
    """A file's bytes, a folder's {relative path: bytes}, or None when the path does not exist."""
    if path.is_dir():
        return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    return path.read_bytes() if path.is_file() else None


def temporaries(folder: Path) -> list[str]:
    """Names of embtools temporaries directly in `folder`."""
    return sorted(p.name for p in folder.iterdir() if TMP_MARK in p.name)


def jsonl_ids(path: Path) -> list:
    """The ids of a JSONL file, asserting every line is whole JSON that ends with a newline."""
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), f"{path} ends in a partial line"
    return [orjson.loads(line)["id"] for line in data.splitlines()]


@dataclass
class FaultCase:
    """One command to kill: `command` writes `output` (a file or folder); `reset` puts the world back as it was
    before a run (by default: delete the output); `rerun` is the command a user would re-run after a kill
    (default: the same); `before` is the output's state before a run (default: absent; compared through `view`,
    as the reference is, with `same`). With `rerun_when_whole`
    off (commands that cannot be repeated, like `emb-index add`), a kill that left the output whole is not followed
    by a re-run; the temporaries it may have left are then removed as the next writer of the output removes them."""

    command: list[str]
    output: Path
    env: dict[str, str] = field(default_factory=dict)
    stdin: Path | None = None
    reset: Callable[[], None] | None = None
    rerun: list[str] | None = None
    before: Snapshot = None
    rerun_when_whole: bool = True
    view: Callable[[Path], Any] = snapshot  # what is compared of the output (default: every byte)
    same: Callable[[Any, Any], bool] = operator.eq
    watch: list[Path] = field(default_factory=list)  # more folders that must hold no temporaries at the end

    def do_reset(self) -> None:
        if self.reset:
            self.reset()
        elif self.output.is_dir():
            shutil.rmtree(self.output)
        else:
            self.output.unlink(missing_ok=True)


@dataclass
class KillReport:
    seed: int
    delay: float
    killed: bool  # False: the run finished before the kill
    state: str  # what the kill left: "before", "whole", or (a failure) "partial"
    leftovers: list[str]  # temporaries the kill left behind (removed by the re-run)


def _popen(command: list[str], env: dict[str, str], stdin: Path | None) -> subprocess.Popen:
    return subprocess.Popen(command, env={**os.environ, **env},
                            stdin=open(stdin, "rb") if stdin else subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def run_to_end(command: list[str], env: dict[str, str], stdin: Path | None, timeout: float = 300) -> None:
    """Run a command to completion; AssertionError with its stderr unless it exits 0."""
    process = _popen(command, env, stdin)
    _, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"{command} exited {process.returncode}: {err.decode()[-2000:]}"


def timed_reference(case: FaultCase) -> tuple[Any, float, float]:
    """Run the case uninterrupted: (its output, seconds to the first temporary output, seconds in all)."""
    case.do_reset()
    started = time.monotonic()
    process = _popen(case.command, case.env, case.stdin)
    first_write = None
    while process.poll() is None:
        if first_write is None and temporaries(case.output.parent):
            first_write = time.monotonic() - started
        time.sleep(0.02)
    total = time.monotonic() - started
    assert process.returncode == 0, f"{case.command}: {process.stderr.read().decode()[-2000:]}"
    process.stderr.close()
    return case.view(case.output), (first_write if first_write is not None else 0.5 * total), total


def kill_at(case: FaultCase, delay: float, after_first_write: bool = False) -> tuple[bool, float]:
    """Start the case, SIGKILL its process group `delay` seconds after its start (or after its first temporary output
    appears); (whether it was still running, seconds from its start to the kill)."""
    started = time.monotonic()
    process = _popen(case.command, case.env, case.stdin)
    try:
        while after_first_write and process.poll() is None and not _temporaries_of(case):
            time.sleep(0.01)
        process.wait(timeout=delay)
        return False, time.monotonic() - started
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return True, time.monotonic() - started
    finally:
        process.stderr.close()


def _temporaries_of(case: FaultCase) -> list[str]:
    return [name for folder in (case.output.parent, *case.watch) if folder.is_dir() for name in temporaries(folder)]


def inject(case: FaultCase, seeds: list[int], reference: Any, window: tuple[float, float],
           after_first_write: bool = False) -> list[KillReport]:
    """For each seed: reset, kill at a seeded moment in `window` (seconds from the start, or from the first temporary
    output with `after_first_write`; halved up to twice when the run ends first), check the state, re-run, compare to
    `reference` (the output of an uninterrupted run, as `case.view` sees it)."""
    reports = []
    for seed in seeds:
        planned = random.Random(seed).uniform(*window)
        for attempt in range(3):  # a run faster than planned finishes first: try again sooner
            case.do_reset()
            killed, delay = kill_at(case, planned / 2**attempt, after_first_write)
            if killed:
                break
        state = case.view(case.output)
        verdict = ("before" if case.same(state, case.before) else "whole" if case.same(state, reference)
                   else "partial")
        assert verdict != "partial", f"seed {seed}: a kill after {delay:.2f} s left a partial {case.output}"
        leftovers = _temporaries_of(case)
        if verdict == "before" or case.rerun_when_whole:
            run_to_end(case.rerun or case.command, case.env, case.stdin)
        else:
            remove_stale_temporaries(case.output)
        assert case.same(case.view(case.output), reference), f"seed {seed}: the re-run differs from the reference"
        remaining = _temporaries_of(case)
        assert not remaining, f"seed {seed}: temporaries left after the re-run: {remaining}"
        reports.append(KillReport(seed, delay, killed, verdict, leftovers))
    return reports


def write_window(first_write: float, total: float) -> tuple[float, float]:
    """Kill moments after the first temporary output appears: within 90% of the reference's writing time."""
    return 0.0, max(0.05, 0.9 * (total - first_write))
