"""Where emb-encode's vectors go: shaped (truncated, quantized) and written as JSONL, npy or Parquet, either straight
to the output or, with `--resume`, through the progress kept beside it (encode/resume.py)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO

import numpy as np

from embtools.distributed import is_main_process
from embtools.encode.encoder import Encoder
from embtools.encode.resume import Progress
from embtools.encode.stream import embedded_chunks, output_record
from embtools.records.embedding_files import EmbeddingFileInfo, open_writer
from embtools.records.jsonl import Record
from embtools.records.vector_precision import VectorShaper


@dataclass
class OutputSettings:
    """What emb-encode writes: `fmt` (jsonl, npy, parquet) to `path` (jsonl goes to the stream it is given: stdout or
    -o), how JSONL spells a vector, and the vectors' precision and dimension (None: the model's)."""

    fmt: str = "jsonl"
    path: str | None = None
    encoding: str = "float"
    precision: str = "float32"
    truncate_dim: int | None = None
    chunk_size: int = 1024


def encode_to_output(records: Iterable[Record], encoder: Encoder, instruction: str | None, settings: OutputSettings,
                     stdout: IO[bytes] | None = None, resume_print: str | None = None) -> EmbeddingFileInfo:
    """Embed the records and write them; with `resume_print` (the run's fingerprint) continue from and keep the
    progress beside the output. Returns what was written (count, dim, precision); on ranks other than 0 nothing is
    written and the count is 0."""
    shaper = VectorShaper(settings.precision, settings.truncate_dim, encoder.normalize)
    info = EmbeddingFileInfo(settings.precision, shaper.out_dim(encoder.dim), model=str(encoder.spec.name))
    if resume_print is None:
        chunks = embedded_chunks(records, encoder, instruction, settings.chunk_size)
        return _write(_shaped(chunks, shaper, info), settings, info, stdout)
    progress = Progress.open(settings.path, resume_print, info.precision, info.dim, writable=is_main_process())
    shaper.ranges = progress.ranges
    chunks = embedded_chunks(islice(records, progress.rows, None), encoder, instruction, settings.chunk_size)
    for chunk, stored in _shaped(chunks, shaper, info):
        progress.append(chunk, stored, shaper.ranges)
    if not is_main_process():
        return info
    info.ranges = shaper.ranges
    _write(progress.chunks(), settings, info, stdout)
    progress.remove()
    return info


def _shaped(chunks: Iterable[tuple[list[Record], np.ndarray]], shaper: VectorShaper,
            info: EmbeddingFileInfo) -> Iterator[tuple[list, np.ndarray]]:
    """(output records, stored rows) per chunk; `info` learns the int8 ranges from the first."""
    for chunk, vectors in chunks:
        stored = shaper(vectors)
        info.ranges = shaper.ranges
        yield [output_record(r) for r in chunk], stored


def _write(chunks: Iterable[tuple[list[Record], np.ndarray]], settings: OutputSettings, info: EmbeddingFileInfo,
           stdout: IO[bytes] | None) -> EmbeddingFileInfo:
    """Write the chunks in the settings' format (rank 0; the other ranks only drain theirs)."""
    if not is_main_process():
        for _ in chunks:
            pass
        return info
    with ExitStack() as stack:
        target = stdout if settings.fmt == "jsonl" else Path(settings.path)  # JSONL: stdout or -o, as every command
        writer = open_writer(stack, settings.fmt, target, info, settings.encoding)
        for chunk, stored in chunks:
            writer.write(chunk, stored)
        writer.finish()
    return info
