"""Outputs that appear whole or not at all: write under a temporary name, rename into place when complete.

Temporary names carry the writer's pid (`.NAME.embtools-tmp-PID`), so a later run can remove the leftovers of a
writer that was killed with kill -9 without touching those of a writer that is still running. A pid that is alive
but belongs to a process started after the leftover was last written (pids are reused, in containers soon) does not
count as its writer.

A folder replaces an existing one with one atomic exchange (Linux renameat2 RENAME_EXCHANGE), so the target name
always names a whole folder, old or new. Where the exchange is not available the old folder is first moved aside to
`.NAME.old.embtools-tmp-PID`; if the writer dies between the two renames, the next writer of NAME moves it back.
File contents are fsynced before the rename, and the parent folder after it, so a crash of the machine cannot leave
a renamed but empty output either.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import IO

from embtools.errors import EmbtoolsError

_TMP_MARK = ".embtools-tmp-"
_OLD_MARK = ".old" + _TMP_MARK
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _temporary_path(target: Path, mark: str = _TMP_MARK) -> Path:
    return target.with_name(f".{target.name}{mark}{os.getpid()}")


def _process_start(pid: int) -> float | None:
    """When a process started (seconds since the epoch), from /proc on Linux; None where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        return int(boot.split()[1]) + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _writer_alive(pid: int, leftover: Path) -> bool:
    """Whether the process that wrote `leftover` may still be writing it."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = _process_start(pid)
    try:
        written = leftover.lstat().st_mtime
    except FileNotFoundError:
        return False
    return started is None or started <= written + 2.0  # a process started later reuses a dead writer's pid


def _leftovers(target: Path, mark: str) -> Iterator[Path]:
    """Temporaries of `target` with `mark` whose writer no longer runs."""
    prefix = f".{target.name}{mark}"
    for leftover in target.parent.glob(f"{prefix}*"):
        pid = leftover.name[len(prefix):]
        if pid.isdigit() and not _writer_alive(int(pid), leftover):
            yield leftover


def remove_stale_temporaries(target: Path) -> None:
    """Delete temporaries of `target` left by writers that no longer run; put back an old folder that a dead
    writer had moved aside but not yet replaced (so `target` is never left missing)."""
    target = Path(target)
    if not target.parent.is_dir():
        return
    for leftover in _leftovers(target, _OLD_MARK):
        if not os.path.lexists(target):
            os.rename(leftover, target)
        else:
            _remove(leftover)
    for leftover in _leftovers(target, _TMP_MARK):
        _remove(leftover)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    """fsync every file and folder under `folder`, and the folder itself."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            _fsync_path(Path(root) / name)
        _fsync_path(Path(root))


@contextmanager
def atomic_file(target: Path) -> Iterator[IO[bytes]]:
    """A binary stream whose content replaces `target` only if the block finishes without an exception."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    temporary = _temporary_path(target)
    try:
        with open(temporary, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
        _fsync_path(target.parent)
    finally:
        temporary.unlink(missing_ok=True)


def check_output_dir(target: Path, overwrite: bool) -> None:
    """Refuse to replace an existing folder unless the user said `--overwrite`."""
    if os.path.lexists(target) and not overwrite:
        raise EmbtoolsError(f"{target} exists; pass --overwrite to replace it")


@contextmanager
def atomic_dir(target: Path, overwrite: bool = False) -> Iterator[Path]:
    """A fresh temporary folder that is renamed to `target` when the block completes.

    An existing `target` is replaced only with `overwrite`; the old folder is removed after the new one is in place.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    check_output_dir(target, overwrite)
    temporary = _temporary_path(target)
    _remove(temporary)
    temporary.mkdir()
    try:
        yield temporary
        _fsync_tree(temporary)
        _replace_dir(temporary, target)
    finally:
        _remove(temporary)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where that is not available."""
    libc = _libc()
    renameat2 = getattr(libc, "renameat2", None) if libc else None
    if renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return result == 0


@cache
def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    except OSError:
        return None


def _replace_dir(new: Path, target: Path) -> None:
    """Put the folder `new` at `target`; an existing target ends up at `new` (and is removed by the caller)."""
    if not os.path.lexists(target):
        os.rename(new, target)
    elif not _exchange(new, target):
        old = _temporary_path(target, _OLD_MARK)
        os.rename(target, old)
        os.rename(new, target)
        _remove(old)
    _fsync_path(target.parent)
