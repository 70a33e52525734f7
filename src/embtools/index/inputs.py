"""What emb-index reads: embedding records from JSONL (stdin or files) and embedding files (npy, Parquet), several
files one after another (the shards of `emb-encode --shard`), each record through the stream's EmbeddingChecker.

The kind of each file is known from its first bytes (records/embedding_files.py); a Parquet file that emb-encode
did not write is read as records, as any record input. Vectors reach the index as float32
(int8 codes dequantized with the file's ranges, float16 widened) or, for ubinary files, as packed bits; files of both
kinds cannot be mixed in one index.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import chain

from embtools.command_runner import RecordRun
from embtools.errors import InputError
from embtools.index.embedding_checks import EmbeddingChecker
from embtools.records.embedding_files import EmbeddingFileInfo, embedding_records, file_format, require_same
from embtools.records.jsonl import Record, RejectSink


def read_inputs(run: RecordRun, sources: Sequence[str] | None, checker: EmbeddingChecker
                ) -> tuple[EmbeddingFileInfo, Iterator[Record]]:
    """(what the inputs hold, their checked records in order) of FILE arguments, or of stdin for none or `-`.
    Binary files are opened now (a missing or foreign one fails before anything is built)."""
    opened = [_open(run, source, checker) for source in (sources or ["-"])]
    require_same([(source or "stdin", info) for source, (info, _) in zip(sources or ["-"], opened)])
    return opened[0][0], chain.from_iterable(records for _, records in opened)


def _open(run: RecordRun, source: str, checker: EmbeddingChecker) -> tuple[EmbeddingFileInfo, Iterator[Record]]:
    if file_format(source) is None:
        return EmbeddingFileInfo(), run.read(checker, source=source)
    info, records = embedding_records(source)
    return info, _checked_rows(source, records, checker, run.input_rejects)


def _checked_rows(source: str, records: Iterator[Record], checker: EmbeddingChecker,
                  rejects: RejectSink | None) -> Iterator[Record]:
    """The records of a binary file through the checker; errors name the file and the 1-based row."""
    for number, record in enumerate(records, start=1):
        try:
            yield checker(record)
        except InputError as exc:
            if rejects is None:
                raise InputError(f"{source}: row {number}: {exc}") from None
            rejects.reject(record, str(exc), line=number, unit="row")
