"""Blocks of vectors on their way into an index: the rows of an embedding file checked as a whole (index/inputs.py)
or checked records stacked, then cut to the add batch, L2-normalized and added with their ids.

A block is a list of records without their vectors (`id` and passed-through fields) and one matrix of their rows:
float32, or packed ubinary bytes (uint8). A stream into an index may mix blocks and single checked records (JSONL
inputs); `blocks_of` turns it into blocks of at most `size` rows, in input order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

import numpy as np
import orjson

from embtools.records.jsonl import Record

try:
    import faiss
except ImportError:  # faiss_setup.require_faiss says so
    faiss = None


@dataclass
class VectorBlock:
    """Checked rows: `records` (their `embedding`, if any, is not read) and `vectors`, row i being record i's."""

    records: list[Record]
    vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, rows: slice) -> VectorBlock:
        return VectorBlock(self.records[rows], self.vectors[rows])

    @property
    def binary(self) -> bool:
        return self.vectors.dtype == np.uint8

    def normalized(self) -> np.ndarray:
        """The vectors as a C-contiguous float32 matrix, each row L2-normalized (faiss.normalize_L2); packed ubinary
        rows as they are. Always a copy: the block may be normalized again (a training sample is then added)."""
        if self.binary:
            return np.ascontiguousarray(self.vectors)
        matrix = np.array(self.vectors, dtype=np.float32, order="C")
        faiss.normalize_L2(matrix)
        return matrix

    def write_ids(self, out: IO[bytes]) -> None:
        out.write(b"".join(orjson.dumps(record["id"]) + b"\n" for record in self.records))


def stacked(records: list[Record]) -> VectorBlock:
    """Checked records (their `embedding` a decoded array) as one block."""
    return VectorBlock(records, np.stack([record["embedding"] for record in records]))


def blocks_of(items: Iterable[Record | VectorBlock], size: int) -> Iterator[VectorBlock]:
    """Blocks of at most `size` rows, in order: blocks cut, runs of single records stacked."""
    pending: list[Record] = []
    for item in items:
        if isinstance(item, VectorBlock):
            if pending:
                yield stacked(pending)
                pending = []
            yield from (item[start:start + size] for start in range(0, len(item), size))
            continue
        pending.append(item)
        if len(pending) == size:
            yield stacked(pending)
            pending = []
    if pending:
        yield stacked(pending)
