"""What emb-index reads: embedding records from JSONL (stdin or files) and embedding files (npy, Parquet), several
files one after another (the shards of `emb-encode --shard`), each record through the stream's EmbeddingChecker.

The kind of each file is known from its first bytes (records/embedding_files.py); a Parquet file that emb-encode
did not write is read as records, as any record input. Vectors reach the index as float32
(int8 codes dequantized with the file's ranges, float16 widened) or, for ubinary files, as packed bits; files of both
kinds cannot be mixed in one index.

With `bulk`, an embedding file goes in blocks of BULK_ROWS rows (npy memory-mapped, Parquet a record batch at a
time; never the whole matrix): each block is checked at once (EmbeddingChecker.passes_block: the same rules as for
one record) and passed on as one VectorBlock; a block with a bad row is checked row by row instead, so errors and
rejects still name the file and the 1-based row. JSONL inputs, and any input without `bulk`, stay records.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import chain

from embtools.command_runner import RecordRun
from embtools.errors import InputError
from embtools.index.embedding_checks import EmbeddingChecker
from embtools.index.vector_blocks import VectorBlock
from embtools.records.embedding_files import (
    EmbeddingFileInfo,
    embedding_records,
    file_format,
    read_embedding_file,
    require_same,
)
from embtools.records.jsonl import Record, RejectSink

BULK_ROWS = 65_536


def read_inputs(run: RecordRun, sources: Sequence[str] | None, checker: EmbeddingChecker, bulk: bool = False
                ) -> tuple[EmbeddingFileInfo, Iterator[Record | VectorBlock]]:
    """(what the inputs hold, their checked records in order, embedding files as VectorBlocks with `bulk`) of FILE
    arguments, or of stdin for none or `-`. Binary files are opened now (a missing or foreign one fails before
    anything is built)."""
    opened = [(_open_bulk if bulk else _open)(run, source, checker) for source in (sources or ["-"])]
    require_same([(source or "stdin", info) for source, (info, _) in zip(sources or ["-"], opened)])
    return opened[0][0], chain.from_iterable(records for _, records in opened)


def _open(run: RecordRun, source: str, checker: EmbeddingChecker) -> tuple[EmbeddingFileInfo, Iterator[Record]]:
    if file_format(source) is None:
        return EmbeddingFileInfo(), run.read(checker, source=source)
    info, records = embedding_records(source)
    return info, _checked_rows(source, records, checker, run.input_rejects)


def _open_bulk(run: RecordRun, source: str, checker: EmbeddingChecker
               ) -> tuple[EmbeddingFileInfo, Iterator[Record | VectorBlock]]:
    if file_format(source) is None:
        return _open(run, source, checker)
    info, chunks = read_embedding_file(source, BULK_ROWS)
    return info, _checked_blocks(source, info, chunks, checker, run.input_rejects)


def _checked_blocks(source: str, info: EmbeddingFileInfo, chunks: Iterator, checker: EmbeddingChecker,
                    rejects: RejectSink | None) -> Iterator[Record | VectorBlock]:
    """The file's chunks as checked VectorBlocks; a chunk with a bad row goes through the checker row by row."""
    from embtools.records.vector_precision import dequantize

    done = 0
    for records, stored in chunks:
        vectors = dequantize(stored, info.precision, info.ranges, copy=False)  # VectorBlock.normalized() copies
        if checker.passes_block(records, vectors):
            yield VectorBlock(records, vectors)
        else:
            rows = (dict(record, embedding=vector) for record, vector in zip(records, vectors))
            yield from _checked_rows(source, rows, checker, rejects, first=done + 1)
        done += len(records)


def _checked_rows(source: str, records: Iterator[Record], checker: EmbeddingChecker,
                  rejects: RejectSink | None, first: int = 1) -> Iterator[Record]:
    """The records of a binary file (from its row `first` on) through the checker; errors name the file and the
    1-based row."""
    for number, record in enumerate(records, start=first):
        try:
            yield checker(record)
        except InputError as exc:
            if rejects is None:
                raise InputError(f"{source}: row {number}: {exc}") from None
            rejects.reject(record, str(exc), line=number, unit="row")
