"""Progress bars: drawn on stderr when it is a terminal (a real pseudo-terminal here), never into a pipe or a file
unless forced, never into stdout's records; `--progress/--no-progress` > EMBTOOLS_PROGRESS > the terminal test."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest

from conftest import DATA, REPO, read_jsonl, write_jsonl

BAR = b"%|"  # tqdm's percentage and bar edge: drawn only where a total is known


def run_command(module: str, args, stdin: Path | None = None, tty: bool = True, env: dict | None = None):
    """Run `python -m embtools.commands.MODULE ARGS` as its own process, stderr on a pseudo-terminal (80 columns) or
    a pipe; returns (exit code, stdout bytes, stderr bytes)."""
    environment = {k: v for k, v in os.environ.items() if k != "EMBTOOLS_PROGRESS"}
    environment |= {"PYTHONPATH": str(REPO / "src"), **(env or {})}
    master, slave = pty.openpty() if tty else (None, subprocess.PIPE)
    if tty:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    with open(stdin or os.devnull, "rb") as source:
        process = subprocess.Popen([sys.executable, "-m", f"embtools.commands.{module}", *map(str, args)],
                                   stdin=source, stdout=subprocess.PIPE, stderr=slave, env=environment)
    if not tty:
        out, err = process.communicate(timeout=300)
        return process.returncode, out, err
    os.close(slave)
    chunks: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(master, chunks))
    reader.start()
    out = process.communicate(timeout=300)[0]
    reader.join()
    os.close(master)
    return process.returncode, out, b"".join(chunks)


def _drain(fd: int, chunks: list[bytes]) -> None:
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return
        if not data:
            return
        chunks.append(data)


def no_bar(err: bytes) -> bool:
    return b"\r" not in err.replace(b"\r\n", b"\n") and BAR not in err


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> Path:
    """40 SciFact documents as text records."""
    docs = read_jsonl(DATA / "scifact" / "corpus.jsonl")[:40]
    return write_jsonl(tmp_path_factory.mktemp("texts") / "texts.jsonl",
                       [{"id": d["_id"], "text": d["text"][:300]} for d in docs])


@pytest.fixture(scope="module")
def encoded(texts):
    """emb-encode --model minilm-l6 on the texts under a terminal and into a pipe."""
    args = ["--model", "minilm-l6", "--dtype", "float32", "--batch-tokens", "1024", texts]
    return run_command("encode", args, tty=True), run_command("encode", args, tty=False)


def test_encode_draws_a_bar_on_a_terminal_and_none_into_a_pipe(encoded):
    (code, out, err), (piped_code, piped_out, piped_err) = encoded
    assert code == 0 and piped_code == 0, err + piped_err
    assert BAR in err and b"40/40" in err and b"tokens/s" in err, err
    assert no_bar(piped_err), piped_err
    assert out == piped_out and len(out.splitlines()) == 40  # the records are the same, byte for byte
