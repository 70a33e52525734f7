"""Checks on streams of embedding records before they reach an index: decodable vector, one dimension, unique ids."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import orjson

from embtools.errors import InputError
from embtools.records.embeddings import all_finite, read_embedding
from embtools.records.jsonl import Record, is_id

Id = str | int


def id_text(value: Id) -> str:
    return orjson.dumps(value).decode()


class EmbeddingChecker:
    """Checks embedding records one by one; usable as read_records' validator (its errors then carry line numbers).

    A record passes if read_embedding accepts it, its dimension is `dim` (default: that of the first record that
    passed) and, with `unique`, its id is neither in `known_ids` nor an earlier record's. Its `embedding` is replaced
    by the decoded float32 array, so the vector is decoded once.
    """

    def __init__(self, dim: int | None = None, known_ids: Iterable[Id] = (), unique: bool = True,
                 binary: bool = False):
        self.dim, self.binary = dim, binary  # binary: `dim` counts the bytes of packed ubinary bits
        self.unique = unique
        self.seen: set[Id] = set(known_ids) if unique else set()

    def passes_block(self, records: list[Record], vectors: np.ndarray) -> bool:
        """Whether every row of a block (records without `embedding`, their vectors as one float32 or uint8 matrix)
        passes the checks __call__ makes, done on the whole block; if so its ids count as seen. False when any row
        fails (nothing is then recorded): check the rows one by one with __call__, whose errors say which and why."""
        if vectors.ndim != 2 or len(vectors) != len(records) or vectors.shape[1] == 0:
            return False
        if (self.binary and vectors.dtype != np.uint8) or (self.dim is not None and vectors.shape[1] != self.dim):
            return False
        if vectors.dtype != np.uint8 and not all_finite(vectors):
            return False
        ids = [record.get("id") for record in records]
        if not ({type(value) for value in ids} <= {str, int} or all(map(is_id, ids))):  # exact str, int: ids
            return False
        if self.unique:
            if len(set(ids)) != len(ids) or not self.seen.isdisjoint(ids):
                return False
            self.seen.update(ids)
        self.dim = vectors.shape[1]
        return True

    def __call__(self, record: Record) -> Record:
        record_id, vector = read_embedding(record)
        if self.binary and vector.dtype != np.uint8:
            raise InputError(f"id {id_text(record_id)}: this index holds ubinary vectors; give ubinary ones")
        if self.dim is not None and vector.size != self.dim:
            raise InputError(f"id {id_text(record_id)}: dimension {self.dim} expected, got {vector.size}")
        if self.unique:
            if record_id in self.seen:
                raise InputError(f"duplicate id {id_text(record_id)}")
            self.seen.add(record_id)
        self.dim = vector.size
        record["embedding"] = vector
        return record


def checked_records(records: Iterable[Record], checker: EmbeddingChecker) -> Iterator[Record]:
    """Records through `checker`; an error names the record's 1-based position."""
    for number, record in enumerate(records, start=1):
        try:
            yield checker(record)
        except InputError as exc:
            raise InputError(f"record {number}: {exc}") from None
