"""Embedding files: the three forms embedding records take on disk, written chunk by chunk and read back in batches.

- `jsonl`: embedding records, one a line (records/embeddings.py: a float list or base64 float32);
- `npy`: `OUT.npy`, a (count x width) matrix in the stored precision's dtype, plus `OUT.ids.jsonl` (line n: row n's
  record without its embedding: `id` and the fields that passed through) and `OUT.meta.json` (precision, dim, count,
  int8 ranges, model). The header is written first with a count of 0 and rewritten with the final count at the end
  (numpy leaves room for 21 digits), so rows stream to disk;
- `parquet`: columns `id` (string or int64, as the first record's), `embedding` (a fixed-size list of the stored
  dtype, one row group per chunk) and `fields` (the other fields as a JSON object, null when none); the same
  metadata as `OUT.meta.json` under the schema's `embtools` key.
Every file is written under a temporary name and renamed when complete (records/atomic.py): the metadata and ids
first, the vectors last; a reader refuses files whose counts disagree. A reader knows npy and emb-encode's Parquet
from their first bytes (and the `embtools` metadata); anything else is read as records by records/jsonl.py (JSONL,
plain or compressed, and Parquet rows of embedding records from elsewhere).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from embtools.errors import EmbtoolsError, InputError
from embtools.records.atomic import atomic_file
from embtools.records.embeddings import encode_vector
from embtools.records.jsonl import Record, dump_record, parse_lines
from embtools.records.vector_precision import precision_of_dtype, stored_dtype, stored_width

if TYPE_CHECKING:
    import numpy as np

FORMATS = ("jsonl", "npy", "parquet")
FILE_FORMAT, FILE_FORMAT_VERSION = "embtools-embeddings", 1
_NPY_MAGIC, _PARQUET_MAGIC = b"\x93NUMPY", b"PAR1"
READ_ROWS = 4096


@dataclass
class EmbeddingFileInfo:
    """What an embedding file holds: the precision, the dimension (bits for ubinary), int8 ranges, the model."""

    precision: str = "float32"
    dim: int = 0
    ranges: Any = None  # a (2, dim) float32 array for int8
    model: str | None = None
    count: int = field(default=0, compare=False)

    def to_json(self) -> dict:
        ranges = None if self.ranges is None else self.ranges.tolist()
        return {"format": FILE_FORMAT, "format_version": FILE_FORMAT_VERSION, "precision": self.precision,
                "dim": self.dim, "count": self.count, "int8_ranges": ranges, "model": self.model}

    @classmethod
    def from_json(cls, meta: dict, where: str) -> EmbeddingFileInfo:
        import numpy as np

        if not isinstance(meta, dict) or meta.get("format") != FILE_FORMAT:
            raise InputError(f"{where} does not describe an embtools embedding file")
        ranges = meta.get("int8_ranges")
        return cls(meta.get("precision", "float32"), int(meta.get("dim", 0)),
                   None if ranges is None else np.asarray(ranges, dtype=np.float32), meta.get("model"),
                   int(meta.get("count", 0)))


def sidecar(path: Path, kind: str) -> Path:
    """`x.npy` -> `x.ids.jsonl` (kind "ids") or `x.meta.json` (kind "meta")."""
    path = Path(path)
    stem = path.name[:-4] if path.name.endswith(".npy") else path.name
    return path.with_name(f"{stem}.{kind}.{'jsonl' if kind == 'ids' else 'json'}")


def _without_embedding(record: Record) -> Record:
    return {key: value for key, value in record.items() if key != "embedding"}


# --- writing -----------------------------------------------------------------------------------------------------

class JsonlWriter:
    """Embedding records to a stream: stored rows written as float lists or base64 float32."""

    def __init__(self, stream: IO[bytes], info: EmbeddingFileInfo, encoding: str = "float"):
        self.stream, self.info, self.encoding = stream, info, encoding

    def write(self, records: list[Record], stored: np.ndarray) -> None:
        self.stream.write(b"".join(dump_record({"id": r["id"], "embedding": encode_vector(v, self.encoding),
                                                **_without_embedding(r)}) for r, v in zip(records, stored)))
        self.info.count += len(records)

    def finish(self) -> None:
        self.stream.flush()


class NpyWriter:
    """`OUT.npy` (rows appended, the header's count rewritten at the end) with `OUT.ids.jsonl` and `OUT.meta.json`."""

    def __init__(self, stack: ExitStack, path: Path, info: EmbeddingFileInfo):
        self.path, self.info, self.stack = Path(path), info, stack
        self.vectors = stack.enter_context(atomic_file(self.path))  # entered first, so renamed last
        self.ids = stack.enter_context(atomic_file(sidecar(self.path, "ids")))
        self._header(0)

    def _header(self, count: int) -> None:
        import numpy as np

        self.vectors.seek(0)
        width = stored_width(self.info.precision, self.info.dim)
        header = {"descr": stored_dtype(self.info.precision), "fortran_order": False, "shape": (count, width)}
        np.lib.format.write_array_header_1_0(self.vectors, header)  # padded: the same length for any count

    def write(self, records: list[Record], stored: np.ndarray) -> None:
        self.vectors.write(stored.astype(stored_dtype(self.info.precision), copy=False).tobytes())
        self.ids.write(b"".join(dump_record(_without_embedding(r)) for r in records))
        self.info.count += len(records)

    def finish(self) -> None:
        self._header(self.info.count)
        self.vectors.seek(0, 2)
        with atomic_file(sidecar(self.path, "meta")) as meta:
            meta.write(orjson.dumps(self.info.to_json(), option=orjson.OPT_INDENT_2) + b"\n")


class ParquetWriter:
    """A Parquet file with `id`, `embedding` (fixed-size list) and `fields` columns, a row group per chunk."""

    def __init__(self, stack: ExitStack, path: Path, info: EmbeddingFileInfo):
        self.stream, self.info, self._writer = stack.enter_context(atomic_file(Path(path))), info, None
        stack.callback(self._close)  # before the file is closed, also when the run fails

    def _close(self) -> None:
        if self._writer is not None and self._writer.is_open:
            self._writer.close()

    def _open(self, first_id: Any) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        values = pa.from_numpy_dtype(stored_dtype(self.info.precision))
        width = stored_width(self.info.precision, self.info.dim)
        schema = pa.schema([("id", pa.int64() if isinstance(first_id, int) else pa.string()),
                            ("embedding", pa.list_(values, width)), ("fields", pa.string())],
                           metadata={"embtools": orjson.dumps(self.info.to_json())})
        self._writer = pq.ParquetWriter(self.stream, schema)

    def write(self, records: list[Record], stored: np.ndarray) -> None:
        import pyarrow as pa

        if self._writer is None:
            self._open(records[0]["id"] if records else "")
        schema = self._writer.schema
        ids = [r["id"] for r in records]
        if any(isinstance(i, int) != pa.types.is_integer(schema.field("id").type) for i in ids):
            raise InputError("a Parquet embedding file holds ids of one type: the first record's id was "
                             f"{'an integer' if pa.types.is_integer(schema.field('id').type) else 'a string'}")
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(stored.reshape(-1)), stored.shape[1])
        fields = [orjson.dumps(rest).decode() if (rest := _fields(r)) else None for r in records]
        self._writer.write_table(pa.table([pa.array(ids, schema.field("id").type), vectors, pa.array(fields,
                                           pa.string())], schema=schema))
        self.info.count += len(records)

    def finish(self) -> None:
        if self._writer is None:  # no records: an empty file that still says what it would hold
            self._open("")
        self._close()


def _fields(record: Record) -> Record:
    return {key: value for key, value in record.items() if key not in ("id", "embedding")}


def open_writer(stack: ExitStack, fmt: str, target: Path | IO[bytes], info: EmbeddingFileInfo,
                encoding: str = "float") -> JsonlWriter | NpyWriter | ParquetWriter:
    """A writer of `fmt` whose files are committed when `stack` closes without an exception; call its `finish()`
    first. `target` is a path, or for jsonl an open stream."""
    if fmt == "npy":
        return NpyWriter(stack, target, info)
    if fmt == "parquet":
        return ParquetWriter(stack, target, info)
    stream = stack.enter_context(atomic_file(Path(target))) if isinstance(target, (str, Path)) else target
    return JsonlWriter(stream, info, encoding)


# --- reading -------------------------------------------------------------------------------------------------------

def file_format(path: str | Path | None) -> str | None:
    """"npy" or "parquet" for an embedding file (an npy file, or a Parquet file with emb-encode's `embtools`
    metadata), known from its first bytes; None for anything to read as records (JSONL, other Parquet, stdin)."""
    if path is None or str(path) == "-" or not Path(path).is_file():
        return None
    with open(path, "rb") as stream:
        head = stream.read(6)
    if head.startswith(_NPY_MAGIC):
        return "npy"
    return "parquet" if head.startswith(_PARQUET_MAGIC) and _has_embtools_metadata(Path(path)) else None


def _has_embtools_metadata(path: Path) -> bool:
    import pyarrow.parquet as pq

    try:
        return b"embtools" in (pq.read_schema(path).metadata or {})
    except (OSError, ValueError):
        return False  # the record reader says what is wrong with it


def read_embedding_file(path: Path, rows: int = READ_ROWS) -> tuple[EmbeddingFileInfo, Iterator[tuple[list, Any]]]:
    """(what the file holds, its chunks: (records without embedding, stored rows)) of an npy or Parquet file."""
    path = Path(path)
    return _read_npy(path, rows) if file_format(path) == "npy" else _read_parquet(path, rows)


def _npy_info(path: Path, matrix: np.ndarray) -> EmbeddingFileInfo:
    meta_path = sidecar(path, "meta")
    if meta_path.is_file():
        try:
            info = EmbeddingFileInfo.from_json(orjson.loads(meta_path.read_bytes()), str(meta_path))
        except orjson.JSONDecodeError:
            raise InputError(f"{meta_path} is not valid JSON") from None
    else:  # a matrix from elsewhere: floats only (int8 needs its ranges, uint8 its dimension)
        info = EmbeddingFileInfo(precision_of_dtype(matrix.dtype), matrix.shape[1], count=matrix.shape[0])
        if info.precision not in ("float32", "float16"):
            raise InputError(f"{path} holds {matrix.dtype} vectors but {meta_path.name} (their precision) is missing")
    if precision_of_dtype(matrix.dtype) != info.precision or info.count != matrix.shape[0]:
        raise InputError(f"{path} holds {matrix.shape[0]} {matrix.dtype} rows but {meta_path.name} says "
                         f"{info.count} {info.precision}")
    return info


def _read_npy(path: Path, rows: int) -> tuple[EmbeddingFileInfo, Iterator]:
    import numpy as np

    try:
        matrix = np.load(path, mmap_mode="r")
    except ValueError as exc:
        raise InputError(f"{path} is not a readable npy file ({exc})") from None
    if matrix.ndim != 2:
        raise InputError(f"{path} holds a {matrix.ndim}-d array; embeddings are a 2-d matrix")
    info = _npy_info(path, matrix)
    return info, _npy_chunks(path, matrix, rows)


def _npy_chunks(path: Path, matrix: np.ndarray, rows: int) -> Iterator[tuple[list, Any]]:
    import numpy as np

    ids_path, start = sidecar(path, "ids"), 0
    try:
        lines = open(ids_path, "rb")
    except FileNotFoundError:
        raise InputError(f"{path}: its ids file {ids_path.name} is missing") from None
    with lines:
        while batch := parse_lines(list(islice(lines, rows))):
            if start + len(batch) > len(matrix):
                break
            yield batch, np.asarray(matrix[start:start + len(batch)])
            start += len(batch)
    if start != len(matrix) or batch:
        raise InputError(f"{path} holds {len(matrix)} rows but {ids_path.name} has a different number of lines")


def _read_parquet(path: Path, rows: int) -> tuple[EmbeddingFileInfo, Iterator]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path, pre_buffer=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not a readable Parquet file ({exc})") from None
    schema = parquet.schema_arrow
    if "id" not in schema.names or "embedding" not in schema.names:
        raise InputError(f"{path}: a Parquet embedding file needs `id` and `embedding` columns")
    meta = (schema.metadata or {}).get(b"embtools")
    info = EmbeddingFileInfo.from_json(orjson.loads(meta), str(path)) if meta else EmbeddingFileInfo(
        precision_of_dtype(_value_dtype(schema.field("embedding").type)), 0)
    info.count = parquet.metadata.num_rows
    return info, _parquet_chunks(parquet, rows)


def _value_dtype(arrow_type: Any) -> np.dtype:
    import numpy as np
    import pyarrow.types as types

    if not (types.is_list(arrow_type) or types.is_fixed_size_list(arrow_type) or types.is_large_list(arrow_type)):
        raise InputError(f"the `embedding` column is {arrow_type}, not a list of numbers")
    return np.dtype(arrow_type.value_type.to_pandas_dtype())


def _parquet_chunks(parquet: Any, rows: int) -> Iterator[tuple[list, Any]]:
    extra = [name for name in parquet.schema_arrow.names if name != "embedding"]
    for batch in parquet.iter_batches(batch_size=rows):
        column = batch.column("embedding")
        if column.null_count:
            raise InputError("the `embedding` column has empty (null) rows")
        flat = column.flatten().to_numpy(zero_copy_only=False)
        if len(flat) % max(len(batch), 1):
            raise InputError("the `embedding` column's vectors differ in length")
        yield [_parquet_record(row) for row in batch.select(extra).to_pylist()], flat.reshape(len(batch), -1)


def _parquet_record(row: dict) -> Record:
    fields = row.pop("fields", None)
    if isinstance(fields, str):
        row.update(orjson.loads(fields))
    elif fields is not None:
        row["fields"] = fields
    return row


def embedding_records(path: Path, rows: int = READ_ROWS) -> tuple[EmbeddingFileInfo, Iterator[Record]]:
    """(what the file holds, its records with `embedding` as float32 rows, ubinary rows as packed bytes)."""
    from embtools.records.vector_precision import dequantize

    info, chunks = read_embedding_file(path, rows)

    def records() -> Iterator[Record]:
        for batch, stored in chunks:
            vectors = dequantize(stored, info.precision, info.ranges)
            for record, vector in zip(batch, vectors):
                record["embedding"] = vector
                yield record
    return info, records()


def require_same(infos: list[tuple[str, EmbeddingFileInfo]]) -> None:
    """EmbtoolsError when input files mix binary (ubinary) and float vectors, or dimensions."""
    (first_name, first), *rest = infos
    for name, info in rest:
        if (info.precision == "ubinary") != (first.precision == "ubinary") or (info.dim and first.dim and
                                                                               info.dim != first.dim):
            raise EmbtoolsError(f"{name} holds {info.dim}-d {info.precision} vectors, {first_name} "
                                f"{first.dim}-d {first.precision}: index files of one kind together")
