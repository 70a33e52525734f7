"""Outputs that appear whole or not at all: write under a temporary name, rename into place when complete.

Temporary names carry the writer's pid (`.NAME.embtools-tmp-PID`), so a later run can remove the leftovers of a
writer that was killed with kill -9 without touching those of a writer that is still running.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from embtools.errors import EmbtoolsError

_TMP_MARK = ".embtools-tmp-"


def _temporary_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{_TMP_MARK}{os.getpid()}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(target: Path) -> None:
    """Delete temporaries of `target` left by writers that no longer run."""
    prefix = f".{target.name}{_TMP_MARK}"
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        return
    for leftover in parent.glob(f"{prefix}*"):
        pid = leftover.name[len(prefix):]
        if pid.isdigit() and not _pid_alive(int(pid)):
            _remove(leftover)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_file(target: Path) -> Iterator[IO[bytes]]:
    """A binary stream whose content replaces `target` only if the block finishes without an exception."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    temporary = _temporary_path(target)
    try:
        with open(temporary, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
        _fsync_dir(target.parent)
    finally:
        temporary.unlink(missing_ok=True)


def check_output_dir(target: Path, overwrite: bool) -> None:
    """Refuse to replace an existing folder unless the user said `--overwrite`."""
    if target.exists() and not overwrite:
        raise EmbtoolsError(f"{target} exists; pass --overwrite to replace it")


@contextmanager
def atomic_dir(target: Path, overwrite: bool = False) -> Iterator[Path]:
    """A fresh temporary folder that is renamed to `target` when the block completes.

    An existing `target` is replaced only with `overwrite`; the old folder is removed after the new one is in place.
    """
    check_output_dir(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    temporary = _temporary_path(target)
    _remove(temporary)
    temporary.mkdir()
    try:
        yield temporary
        _replace_dir(temporary, target)
    finally:
        _remove(temporary)


def _replace_dir(new: Path, target: Path) -> None:
    if not target.exists():
        os.rename(new, target)
    else:
        old = target.with_name(f".{target.name}.old{_TMP_MARK}{os.getpid()}")
        os.rename(target, old)
        os.rename(new, target)
        _remove(old)
    _fsync_dir(target.parent)
