"""EMBTOOLS_HOME: where converted models and caches live, and a lock for work done once per machine."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def home_dir() -> Path:
    """`EMBTOOLS_HOME`, by default `~/.cache/embtools`; created on first use."""
    path = Path(os.environ.get("EMBTOOLS_HOME") or Path.home() / ".cache" / "embtools").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def home_subdir(name: str) -> Path:
    path = home_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock held for the block; a second process waits. Released if the holder dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
