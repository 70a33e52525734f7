"""The progress of a resumable `emb-encode -o OUT --resume`: what a killed run had finished, kept beside OUT.

`OUT.progress/` holds `vectors.bin` (the stored rows, appended chunk by chunk), `records.jsonl` (each row's record
without its embedding) and `ledger.json`: the run's fingerprint (input content and options), the rows finished, the
bytes of both files at that point, and the int8 ranges. After each chunk both files are fsynced and then the ledger
is replaced atomically, so the ledger never counts a row that is not on disk; a run killed mid-chunk leaves bytes
past the ledger's sizes, which the next run cuts off before it appends. At the end the rows are written to OUT in its
format (atomically, as any output) and the folder is removed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import IO

import numpy as np
import orjson

from embtools.errors import EmbtoolsError
from embtools.records.atomic import atomic_file
from embtools.records.embedding_files import READ_ROWS
from embtools.records.jsonl import Record, dump_record, parse_line
from embtools.records.vector_precision import stored_dtype, stored_width

LEDGER, VECTORS, RECORDS = "ledger.json", "vectors.bin", "records.jsonl"


def progress_folder(output: str | Path) -> Path:
    return Path(f"{output}.progress")


def fingerprint(input_file: str | Path, options: dict) -> str:
    """sha256 of the input's bytes and the options that decide the output: a resumed run must match it."""
    digest = hashlib.sha256(orjson.dumps(options, option=orjson.OPT_SORT_KEYS))
    with open(input_file, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_ledger(folder: Path, print_: str) -> dict:
    """The ledger of a progress folder (an empty one where there is none); EmbtoolsError when it was kept for
    another input or other options, or is damaged."""
    try:
        ledger = orjson.loads((folder / LEDGER).read_bytes())
    except FileNotFoundError:
        return {"fingerprint": print_, "rows": 0, "bytes": {VECTORS: 0, RECORDS: 0}, "int8_ranges": None}
    except orjson.JSONDecodeError:
        raise EmbtoolsError(f"{folder / LEDGER} is corrupt; delete {folder} to start over") from None
    if ledger.get("fingerprint") != print_:
        raise EmbtoolsError(f"--resume: the input or the options differ from those of the run that left "
                            f"{folder}; run with the same ones, or delete it to start over")
    return ledger


class Progress:
    """The finished rows of one output; `rows` of them, `ranges` the int8 ranges they were quantized with."""

    def __init__(self, folder: Path, ledger: dict, precision: str, dim: int):
        self.folder, self.ledger = folder, ledger
        self.dtype, self.width = np.dtype(stored_dtype(precision)), stored_width(precision, dim)
        ranges = ledger.get("int8_ranges")
        self.ranges = None if ranges is None else np.asarray(ranges, dtype=np.float32)
        self._vectors: IO[bytes] | None = None
        self._records: IO[bytes] | None = None

    @property
    def rows(self) -> int:
        return self.ledger["rows"]

    @classmethod
    def open(cls, output: str | Path, print_: str, precision: str, dim: int, writable: bool = True) -> Progress:
        """The progress kept for `output`, or a fresh one; EmbtoolsError when it was kept for another input or
        other options. Only a `writable` one (rank 0's) creates or trims files."""
        folder = progress_folder(output)
        progress = cls(folder, read_ledger(folder, print_), precision, dim)
        if writable:
            progress._open_files()
        return progress

    def _open_files(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, attr in ((VECTORS, "_vectors"), (RECORDS, "_records")):
            stream = open(self.folder / name, "ab")
            stream.truncate(self.ledger["bytes"][name])  # what a killed run wrote after its last ledger
            setattr(self, attr, stream)

    def append(self, records: list[Record], stored: np.ndarray, ranges: np.ndarray | None) -> None:
        """Add one chunk's rows durably, then count them in the ledger."""
        self._vectors.write(np.ascontiguousarray(stored, dtype=self.dtype).tobytes())
        self._records.write(b"".join(dump_record(r) for r in records))
        for stream in (self._vectors, self._records):
            stream.flush()
            os.fsync(stream.fileno())
        self.ledger = {**self.ledger, "rows": self.rows + len(records),
                       "bytes": {VECTORS: self._vectors.tell(), RECORDS: self._records.tell()},
                       "int8_ranges": None if ranges is None else ranges.tolist()}
        with atomic_file(self.folder / LEDGER) as stream:
            stream.write(orjson.dumps(self.ledger))

    def chunks(self, rows: int = READ_ROWS) -> Iterator[tuple[list[Record], np.ndarray]]:
        """The finished rows, `rows` at a time: (records without embedding, stored rows)."""
        for stream in (self._vectors, self._records):
            stream.flush()
        matrix = np.memmap(self.folder / VECTORS, dtype=self.dtype, mode="r", shape=(self.rows, self.width)) \
            if self.rows else np.zeros((0, self.width), dtype=self.dtype)
        with open(self.folder / RECORDS, "rb") as lines:
            for start in range(0, self.rows, rows):
                batch = [parse_line(line) for line in islice(lines, min(rows, self.rows - start))]
                yield batch, np.asarray(matrix[start:start + len(batch)])

    def remove(self) -> None:
        for stream in (self._vectors, self._records):
            if stream is not None:
                stream.close()
        shutil.rmtree(self.folder, ignore_errors=True)
