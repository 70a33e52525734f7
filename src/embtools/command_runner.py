"""One way to run a command: read -> validate -> transform -> write, with rejects and the summary line.

csvkit's shared utility base is the model: a command module declares its own options and its transform; this module
declares the options every record path shares (FILE, `-o/--output`, `--skip-invalid`, `--rejects`) and runs the path.
`record_command` hands the command a RecordRun, which opens what the run touches only when it is first used (the
input, the rejects file, the output), so a command that relaunches itself under accelerate or stops at a usage
error has created nothing. Every file it writes appears whole when the command succeeds, or not at all.

It lives beside cli.py, not in records/: it is the command layer (click options, stdout, the summary line), while
records/ holds the formats and knows nothing about options.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import click

from embtools.distributed import is_main_process
from embtools.records.atomic import atomic_file
from embtools.records.hub_datasets import is_hub_dataset
from embtools.records.jsonl import (
    Record,
    RejectSink,
    Validator,
    open_input,
    read_records,
    record_output,
    write_records,
)

log = logging.getLogger("embtools")

OUTPUT_HELP = "Write to FILE (atomically: it appears only when complete). Default: stdout."


class RecordRun:
    """The record path of one command run: where records come from and go, and where bad input is counted.

    Input rejects: without `--skip-invalid` (or `--rejects`, which implies it) the first bad record stops the run
    with `line N: reason`; with it, each bad record is counted for the summary line and written with its reason to
    the rejects file. Only the main process writes stdout, the output file and the rejects file.
    """

    def __init__(self, source: str | None = None, output: str | None = None, skip_invalid: bool = False,
                 rejects: str | None = None):
        self.source, self.output = source, output
        self.skip_invalid = skip_invalid or bool(rejects)
        self._rejects_path = rejects
        self._stack = ExitStack()
        self._rejects: RejectSink | None = None
        self._stream: IO[bytes] | None = None

    def __enter__(self) -> RecordRun:
        return self

    def __exit__(self, *exc_info: Any) -> bool:
        return self._stack.__exit__(*exc_info)

    def open_rejects(self, path: str | Path | None) -> RejectSink:
        """A RejectSink that counts, and writes to `path` (atomically, with the run) when one is given."""
        if path is None or not is_main_process():
            return RejectSink()
        return RejectSink(self._stack.enter_context(atomic_file(Path(path))))

    @property
    def rejects(self) -> RejectSink:
        """Everything this run turned away, for `--rejects FILE` and the summary line."""
        if self._rejects is None:
            self._rejects = self.open_rejects(self._rejects_path)
        return self._rejects

    @property
    def input_rejects(self) -> RejectSink | None:
        """Where bad input records go; None means: stop at the first."""
        return self.rejects if self.skip_invalid else None

    def read(self, validate: Validator | None = None, source: str | None = None) -> Iterator[Record]:
        """Validated records of FILE (or `source`), stdin for none or `-`. The file is opened now (a hub data set's
        files downloaded), so a missing one fails before a model loads; its records are read as they are asked for."""
        path = source if source is not None else self.source
        if is_hub_dataset(path):
            return read_records(path, validate, rejects=self.input_rejects)
        stream = open_input(path)
        if path not in (None, "-"):
            self._stack.callback(stream.close)  # also when the run stops before reading it (read_records closes too)
        return read_records(stream, validate, rejects=self.input_rejects)

    @property
    def stream(self) -> IO[bytes]:
        """The output: stdout, or `-o FILE` written under a temporary name and renamed when the run succeeds."""
        if self._stream is None:
            self._stream = self._stack.enter_context(record_output(self.output))
        return self._stream

    @property
    def streams_to_stdout(self) -> bool:
        return self.output in (None, "-")

    def write(self, records: Iterable[Record], flush: bool = False) -> int:
        """Write records (on the main process; the others only drain theirs); return how many."""
        if not is_main_process():
            return sum(1 for _ in records)
        count = write_records(records, self.stream)
        if flush:
            self.stream.flush()
        return count

    def summarize(self, message: str) -> None:
        """The summary line on stderr (the main process's), with the skipped input records counted by reason."""
        if is_main_process():
            log.info(message + skipped_summary(self._rejects if self.skip_invalid else None))


def skipped_summary(sink: RejectSink | None) -> str:
    """`; N skipped (reason: count, ...)` for a summary line, or nothing when nothing was skipped."""
    if not (sink and sink.total):
        return ""
    return f"; {sink.total} skipped (" + ", ".join(f"{k}: {v}" for k, v in sink.counts.items()) + ")"


_INPUT_ARGUMENTS = {
    "file": click.argument("input_file", metavar="[FILE]", required=False,
                           type=click.Path(allow_dash=True, dir_okay=False)),
    "files": click.argument("input_file", metavar="[FILE]...", nargs=-1,
                            type=click.Path(allow_dash=True, dir_okay=False)),
}


_REJECTS_HELP = ("Write each skipped input record with its reason to FILE (JSONL). Implies --skip-invalid. "
                 "Default: none.")


def _record_options(reads: str | None, writes: bool, rejects_flag: str, rejects_help: str) -> list[Callable]:
    options = [_INPUT_ARGUMENTS[reads]] if reads in _INPUT_ARGUMENTS else []
    if writes:
        options.append(click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True),
                                    default=None, help=OUTPUT_HELP))
    if reads:
        options.append(click.option("--skip-invalid", is_flag=True, envvar="EMBTOOLS_SKIP_INVALID",
                                    help="Skip bad input records (counted on stderr) instead of stopping at the "
                                         "first. Default: stop. Env: EMBTOOLS_SKIP_INVALID."))
        options.append(click.option(rejects_flag, "rejects", type=click.Path(dir_okay=False), default=None,
                                    help=rejects_help))
    return options


def record_command(reads: str | None = "file", writes: bool = True, rejects_flag: str = "--rejects",
                   rejects_help: str = _REJECTS_HELP) -> Callable[[Callable], Callable]:
    """Give a click command the shared record options and call it as `func(run, **its own options)`.

    reads: "file" ([FILE], stdin for none or `-`), "files" ([FILE]...), "own" (the command's own arguments name
    its inputs; it reads them with `run.input_rejects`), or None (the command reads no records);
    writes: whether records go to stdout or `-o FILE`; rejects_flag and rejects_help: the input rejects option
    (emb-generate keeps `--rejects` for the LLM's answers; emb-filter's holds its own verdicts too).
    """
    def decorate(func: Callable) -> Callable:
        @functools.wraps(func)
        def run_command(**options):
            source = options.pop("input_file", None) if reads in _INPUT_ARGUMENTS else None
            output = options.pop("output", None) if writes else None  # else -o is the command's own (a folder)
            skip_invalid = options.pop("skip_invalid", False) if reads else False
            rejects = options.pop("rejects", None) if reads else None
            with RecordRun(source or None, output, skip_invalid, rejects) as run:
                return func(run, **options)

        for option in reversed(_record_options(reads, writes, rejects_flag, rejects_help)):
            run_command = option(run_command)
        return run_command

    return decorate
