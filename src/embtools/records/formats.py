"""The input formats every record reader accepts: JSONL (plain, gzip or zstd compressed) and Parquet.

A format is known from the input's first bytes, so stdin (`-`) works compressed too; a file's name must agree with
them (`x.jsonl.gz` that is not gzip data is an error, not JSONL). Everything streams: compressed input is
decompressed as it is read (gzip by the standard library, zstd by pyarrow's codec), Parquet is read a batch of rows
at a time (memory follows a row group, not the file). Parquet values become JSON values here, so that a record from
Parquet is the record the same data would give as JSONL.
"""

from __future__ import annotations

import datetime
import decimal
import gzip
import io
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from embtools.errors import InputError

JSONL, GZIP, ZSTD, PARQUET = "jsonl", "gzip", "zstd", "parquet"
_MAGIC = {GZIP: b"\x1f\x8b", ZSTD: b"\x28\xb5\x2f\xfd", PARQUET: b"PAR1"}  # none of them can begin a JSON text
_FORMAT_OF_SUFFIX = {".gz": GZIP, ".zst": ZSTD, ".parquet": PARQUET}
# The names a data file may have, in the order a folder's files are looked for (`corpus.jsonl`, `corpus.jsonl.gz`...).
RECORD_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".parquet")
# Raised by gzip, zlib and pyarrow's codec on data that ends early or is damaged (pyarrow's are OSErrors).
_DECOMPRESSION_ERRORS = (EOFError, OSError, zlib.error)
_ROWS_PER_BATCH = 256


def record_stem(name: str) -> str:
    """A data file's name without its record suffix: `dev.jsonl.gz` -> dev; a name without one is kept."""
    return next((name[:-len(suffix)] for suffix in RECORD_SUFFIXES if name.endswith(suffix)), name)


def record_file(path: Path) -> Path:
    """`folder/corpus.jsonl` as it is, or the first of `corpus.jsonl.gz`, `corpus.jsonl.zst`, `corpus.parquet`
    beside it that exists; `path` itself when none does (so that errors name the usual file)."""
    stem = record_stem(path.name)
    return next((candidate for suffix in RECORD_SUFFIXES if (candidate := path.with_name(stem + suffix)).is_file()),
                path)


def detect_format(stream: IO[bytes]) -> str:
    """JSONL, GZIP, ZSTD or PARQUET from the stream's first bytes, checked against its file name (if it has one).
    The bytes are peeked, not consumed."""
    head = _peek(stream, 4)
    found = next((name for name, magic in _MAGIC.items() if head.startswith(magic)), JSONL)
    named = _FORMAT_OF_SUFFIX.get(Path(str(getattr(stream, "name", ""))).suffix.lower())
    if named and head and named != found:
        raise InputError(f"{stream.name}: its name says {named}, but it holds {found} data")
    return found


def _peek(stream: IO[bytes], size: int) -> bytes:
    # A pipe's first read may in principle return fewer bytes, but every writer of these formats writes its header
    # in one piece; a stream that can neither peek nor seek (a plain text source) is taken for JSONL.
    if hasattr(stream, "peek"):
        return stream.peek(size)[:size]
    if stream.seekable():
        start = stream.tell()
        head = stream.read(size)
        stream.seek(start)
        return head
    return b""


def text_lines(stream: IO[bytes], kind: str) -> Iterator[bytes]:
    """The lines of a JSONL stream, decompressed as they are read when `kind` is GZIP or ZSTD. Compressed data that
    ends early or is damaged raises InputError (without a line number: the caller knows it)."""
    if kind == JSONL:
        yield from stream
        return
    try:
        yield from _decompressed(stream, kind)
    except _DECOMPRESSION_ERRORS as exc:
        raise InputError(f"{kind} data is truncated or damaged ({_first_line(exc)})") from None


def _decompressed(stream: IO[bytes], kind: str) -> IO[bytes]:
    if kind == GZIP:
        return gzip.GzipFile(fileobj=stream, mode="rb")
    import pyarrow  # zstd comes with pyarrow (already needed for Parquet); imported only when used

    return io.BufferedReader(pyarrow.CompressedInputStream(pyarrow.PythonFile(stream, mode="r"), "zstd"))


def _first_line(exc: Exception) -> str:
    """A library's message, cut to its first line: errors are one line."""
    return (str(exc).splitlines() or [type(exc).__name__])[0]


class ParquetRows:
    """The rows of a Parquet file as records, read a batch at a time: `numbered()` yields (1-based row number, the
    row as Arrow gives it) and `to_record` makes one JSON-able (InputError naming the field when it cannot)."""

    def __init__(self, stream: IO[bytes]):
        if not stream.seekable():  # Parquet's index is at the end of the file
            raise InputError("Parquet input must be a file, not a pipe (it is read from its end): pass its name")
        import pyarrow.parquet

        try:
            # pre_buffer (pyarrow's default) reads every row group's columns ahead: the whole file, before row 1
            self._file = pyarrow.parquet.ParquetFile(stream, pre_buffer=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"not a readable Parquet file ({_first_line(exc)})") from None
        converters = ((field.name, _converter(field.type, field.name)) for field in self._file.schema_arrow)
        self._converters = {name: convert for name, convert in converters if convert}

    def numbered(self) -> Iterator[tuple[int, dict]]:
        number = 0
        try:
            for batch in self._file.iter_batches(batch_size=_ROWS_PER_BATCH):
                for number, row in enumerate(batch.to_pylist(maps_as_pydicts="strict"), start=number + 1):
                    yield number, row
        except (OSError, ValueError) as exc:
            raise InputError(f"Parquet data is damaged ({_first_line(exc)})", line=number + 1, unit="row") from None

    def to_record(self, row: dict) -> dict:
        for name, convert in self._converters.items():
            if row[name] is not None:
                row[name] = convert(row[name], name)
        return row


Converter = Callable[[Any, str], Any]


def _converter(arrow_type: Any, field: str) -> Converter | None:
    """How a value of this Arrow type becomes a JSON value; None when it already is one (most columns are: their
    rows pass untouched). A type with no JSON form is an error when the file is opened, naming the column."""
    import pyarrow.types as types

    if types.is_dictionary(arrow_type):
        return _converter(arrow_type.value_type, field)
    if types.is_list(arrow_type) or types.is_large_list(arrow_type) or types.is_fixed_size_list(arrow_type):
        return _each_item(_converter(arrow_type.value_type, field))
    if types.is_map(arrow_type):
        if not (types.is_string(arrow_type.key_type) or types.is_large_string(arrow_type.key_type)):
            raise InputError(f'column "{field}": a map with {arrow_type.key_type} keys has no JSON form')
        return _each_value(_converter(arrow_type.item_type, field))
    if types.is_struct(arrow_type):
        return _each_field({f.name: _converter(f.type, field) for f in arrow_type})
    for is_type, convert in _scalar_converters():
        if is_type(arrow_type):
            return convert
    if _is_json_scalar(arrow_type):
        return None
    raise InputError(f'column "{field}": Parquet type {arrow_type} has no JSON form')


def _is_json_scalar(arrow_type: Any) -> bool:
    import pyarrow.types as types

    return (types.is_null(arrow_type) or types.is_boolean(arrow_type) or types.is_integer(arrow_type)
            or types.is_floating(arrow_type) or types.is_string(arrow_type) or types.is_large_string(arrow_type))


def _each_item(convert: Converter | None) -> Converter | None:
    if convert is None:
        return None
    return lambda values, field: [None if v is None else convert(v, field) for v in values]


def _each_value(convert: Converter | None) -> Converter | None:
    if convert is None:
        return None
    return lambda mapping, field: {k: None if v is None else convert(v, field) for k, v in mapping.items()}


def _each_field(converters: dict[str, Converter | None]) -> Converter | None:
    converters = {name: convert for name, convert in converters.items() if convert}
    if not converters:
        return None

    def convert_struct(value: dict, field: str) -> dict:
        return {k: v if v is None or k not in converters else converters[k](v, field) for k, v in value.items()}
    return convert_struct


def _iso_text(value: datetime.date | datetime.time, field: str) -> str:
    return value.isoformat()  # timestamps keep their time zone, if they have one


def _number(value: decimal.Decimal, field: str) -> float:
    return float(value)


def _utf8_text(value: bytes, field: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f'field "{field}" holds binary data that is not UTF-8 text') from None


def _scalar_converters() -> list[tuple[Callable[[Any], bool], Converter]]:
    import pyarrow.types as types

    return [(types.is_date, _iso_text), (types.is_time, _iso_text), (types.is_timestamp, _iso_text),
            (types.is_decimal, _number),
            (types.is_binary, _utf8_text), (types.is_large_binary, _utf8_text),
            (types.is_fixed_size_binary, _utf8_text)]
