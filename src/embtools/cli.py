"""What every embtools command shares: error lines, exit codes, broken pipes, verbosity and common options.

Exit codes: 0 success; 1 a runtime failure (EmbtoolsError, OSError); 2 a usage error; 130 interrupted.
Errors are one line on stderr, `emb-encode: error: ...`; the traceback only with `-v`.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

import click

from embtools import distributed, progress
from embtools.errors import EmbtoolsError

log = logging.getLogger("embtools")

EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def _quiet_broken_pipe() -> None:
    """The reader went away (`| head`): stop quietly, and keep Python from complaining at shutdown."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(0)


class _CommandFormatter(logging.Formatter):
    """Prefixes each message with the running command's name, and warnings with `warning: `: the library modules
    say only what happened (`emb-index: warning: training 64 centroids ...`)."""

    prog = "embtools"

    def format(self, record: logging.LogRecord) -> str:
        level = "warning: " if record.levelno == logging.WARNING else ""
        return f"{self.prog}: {level}{record.getMessage()}"


_FORMATTER = _CommandFormatter()


def _report(prog: str, message: str, code: int) -> None:
    if log.isEnabledFor(logging.DEBUG):
        traceback.print_exc()
    click.echo(f"{prog}: error: {message}", err=True)
    sys.exit(code)


class _EmbtoolsMain:
    """Mixin for click commands and groups: runs the command and turns every failure into one line and a code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except BrokenPipeError:  # click would turn this into exit code 1
            _quiet_broken_pipe()

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> Any:  # noqa: D401
        prog = prog_name or self.name or os.path.basename(sys.argv[0])
        _FORMATTER.prog = prog
        log.setLevel(logging.INFO)  # -v / -q of an earlier in-process run (tests, scripts) must not leak into this one
        try:
            rv = super().main(args=args, prog_name=prog, standalone_mode=False, **extra)  # type: ignore[misc]
            if isinstance(rv, int) and rv:
                sys.exit(rv)
            sys.stdout.flush()
            distributed.finish_process()  # a process that was in a process group ends here
            return rv
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo(f"{prog}: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            _report(prog, exc.format_message() + hint, EXIT_USAGE)
        except click.ClickException as exc:
            _report(prog, exc.format_message(), exc.exit_code)
        except BrokenPipeError:
            _quiet_broken_pipe()
        except KeyboardInterrupt:
            click.echo(f"{prog}: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except EmbtoolsError as exc:
            _report(prog, str(exc), EXIT_FAILURE)
        except OSError as exc:
            _report(prog, f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), EXIT_FAILURE)
        except MemoryError:
            _report(prog, "out of memory", EXIT_FAILURE)
        except Exception as exc:  # a bug or a library failure: still one line, the traceback under -v
            first_line = (str(exc).splitlines() or [""])[0]
            _report(prog, f"unexpected {type(exc).__name__}: {first_line} (run with -v for the traceback)",
                    EXIT_FAILURE)


class EmbtoolsCommand(_EmbtoolsMain, click.Command):
    """A click command with embtools' error handling."""


class EmbtoolsGroup(_EmbtoolsMain, click.Group):
    """A click group with embtools' error handling."""


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value:
        log.setLevel(logging.DEBUG if param.name == "verbose" else logging.ERROR)
    return value


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of the message (so redirections and test runners see it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        with progress.above_bars():
            super().emit(record)


def _deepspeed_to_stderr(record: logging.LogRecord) -> bool:
    """DeepSpeed logs to stdout, which carries records only: re-route its messages to stderr (its CPU-fallback
    notice only under -v) and keep them off its stdout handler."""
    noise = "Setting accelerator to CPU" in record.getMessage()
    if not noise or log.isEnabledFor(logging.DEBUG):
        log.handle(record)
    return False


def _configure_logging() -> None:
    """embtools' own messages go to stderr, one line each behind the command's name; other libraries keep their own
    settings."""
    deepspeed_logger = logging.getLogger("DeepSpeed")
    if _deepspeed_to_stderr not in deepspeed_logger.filters:
        deepspeed_logger.addFilter(_deepspeed_to_stderr)
    if not log.handlers:
        handler = _CurrentStderrHandler()
        handler.setFormatter(_FORMATTER)
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def _set_progress(ctx: click.Context, param: click.Parameter, value: bool | None) -> None:
    """Decide on progress bars once, for this process and the workers it launches; undone when the run ends."""
    ctx.call_on_close(functools.partial(progress.restore, progress.export_decision(value)))


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """`-v/--verbose`, `-q/--quiet` and `--progress/--no-progress`, shared by every command."""
    func = click.option("--progress/--no-progress", default=None, expose_value=False, callback=_set_progress,
                        help=f"Progress bars on stderr. Default: when stderr is a terminal (and not -q). Env: "
                             f"{progress.ENV} (1 or 0).")(func)
    func = click.option("-q", "--quiet", is_flag=True, expose_value=False, is_eager=True,
                        callback=_set_verbosity, help="Print errors only.")(func)
    func = click.option("-v", "--verbose", is_flag=True, expose_value=False, is_eager=True,
                        callback=_set_verbosity, help="Debug logging, and a traceback with errors.")(func)
    _configure_logging()
    return func


class ParsedBy(click.ParamType):
    """An option value that a library function parses: what it refuses is a usage error (exit 2), reported before
    anything runs, not a runtime failure (exit 1) halfway through."""

    def __init__(self, parse: Callable[[str], Any], name: str):
        self.parse, self.name = parse, name

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self.parse(value)
        except EmbtoolsError as exc:
            raise click.UsageError(str(exc), ctx) from None


def info(message: str) -> None:
    """A line for the person at the terminal (stderr); hidden by --quiet."""
    log.info(message)


def warning(message: str) -> None:
    """`emb-x: warning: message` on stderr; hidden by --quiet."""
    log.warning(message)
