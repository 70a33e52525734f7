"""Streaming records in and out: the record I/O every embtools command uses.

Input is read lazily line by line (memory bounded by the longest line), parsed with orjson, and checked by a
per-command validator; gzip- or zstd-compressed JSONL and Parquet files are read the same way (records.formats tells
them apart), Parquet row by row. A bad line (or row) either stops the command with `line N: reason` (`row N: ...`)
or, under `--skip-invalid`, is counted and written with its reason to the rejects file. Nothing is dropped silently.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import orjson

from embtools.errors import InputError
from embtools.records.atomic import atomic_file
from embtools.records.formats import JSONL, PARQUET, ParquetRows, detect_format, text_lines
from embtools.records.hub_datasets import hub_record_files, is_hub_dataset

Record = dict[str, Any]
Validator = Callable[[Record], Record]

_DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
# orjson reads 1024 levels of nesting but writes only 254: deeper input would pass here and fail at output, far from
# its line. Records may nest this deep, which leaves room for stages that wrap them (a rejects entry, meta).
MAX_NESTING = 200
_BOM = b"\xef\xbb\xbf"


def open_input(source: str | Path | IO[bytes] | None) -> IO[bytes]:
    """A binary stream for FILE, or stdin for `-` / None; a stream already open is returned as it is."""
    if hasattr(source, "read"):
        return source
    if source is None or str(source) == "-":
        return sys.stdin.buffer
    try:
        return open(source, "rb")
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror}") from None


def count_lines(source: str | Path | None) -> int | None:
    """The lines of a plain JSONL file, counted without parsing them (a progress bar's total); None for stdin, a data
    set on the hub, or a compressed or Parquet file, whose count would cost a real read."""
    if source is None or str(source) == "-" or is_hub_dataset(str(source)):
        return None
    try:
        with open(source, "rb") as stream:
            if detect_format(stream) != JSONL:
                return None
            count, last = 0, b"\n"
            while block := stream.read(1 << 20):
                count, last = count + block.count(b"\n"), block[-1:]
    except (OSError, InputError):
        return None  # the reader reports it
    return count + (last != b"\n")


def parse_line(raw: bytes) -> Record:
    """One JSON object from one line; InputError (without a line number) when it is anything else."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        reason = "not valid UTF-8" if "utf-8" in str(exc).lower() else f"not valid JSON ({exc.msg} at byte {exc.pos})"
        raise InputError(reason) from None
    if not isinstance(value, dict):
        raise InputError(f"expected a JSON object, got {type(value).__name__}")
    if _may_nest_deeply(value, raw) and _nesting_exceeds(value, MAX_NESTING):
        raise InputError(f"nested deeper than {MAX_NESTING} levels")
    return value


def parse_lines(lines: list[bytes]) -> list[Record]:
    """parse_line of each line, faster for a block of flat lines (an ids sidecar): every line an object and the
    block's brackets beyond one a line fewer than MAX_NESTING, no line can nest too deeply, so none is scanned.
    Anything else, or any error, goes line by line through parse_line."""
    try:
        values = [orjson.loads(line) for line in lines]
    except orjson.JSONDecodeError:
        values = None
    if values is not None and all(type(value) is dict for value in values):
        joined = b"".join(lines)
        if joined.count(b"{") + joined.count(b"[") - len(lines) < MAX_NESTING:
            return values
    return [parse_line(line) for line in lines]


def _may_nest_deeply(record: dict, raw: bytes) -> bool:
    """A cheap test that passes every record nested deeper than MAX_NESTING: one with a list or object among its
    values and more than MAX_NESTING brackets and braces in its line. Flat records (base64 embeddings) skip the scan."""
    return (any(type(value) in (dict, list) for value in record.values())
            and raw.count(b"{") + raw.count(b"[") > MAX_NESTING)


def _nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether lists and objects nest more than `limit` levels deep (the record itself is level 1)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


class RejectSink:
    """Counts skipped records by reason and writes each, with its reason, to an optional rejects file."""

    def __init__(self, stream: IO[bytes] | None = None):
        self.stream = stream
        self.counts: Counter[str] = Counter()

    def reject(self, record: Record | None, reason: str, line: int | None = None, raw: bytes | None = None,
               unit: str = "line", file: str | None = None) -> None:
        """Count a skipped record; `line` is its number in the input, a `unit` ("line", or "row" for Parquet), in
        `file` when the input is several files (a data set on the hub)."""
        self.counts[reason_kind(reason)] += 1
        if self.stream is not None:
            entry = {"file": file} if file else {}
            entry |= {unit: line, "reason": reason, "record": record}
            if record is None and raw is not None:
                entry["raw"] = raw[:1000].decode("utf-8", "replace")
            self.stream.write(orjson.dumps(entry, option=_DUMP_OPTIONS))

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def reason_kind(reason: str) -> str:
    """What a reason counts as in the summary: the part before `:` or ` (`, without the record's own values (its id,
    numbers in a sentence), so a million bad records make a handful of kinds, not a million. A one-word reason code
    (`parse_error`, `near-duplicate`) is its own kind."""
    kind = re.sub(r'^id ("(?:[^"\\]|\\.)*"|-?\d+): ', "", reason).split(":")[0].split(" (")[0]
    if " " not in kind:
        return kind
    return re.sub(r"\d+", "N", re.sub(r"\bid .*$", "id", kind))


def read_records(
    source: str | Path | IO[bytes] | None,
    validate: Validator | None = None,
    rejects: RejectSink | None = None,
) -> Iterator[Record]:
    """Yield validated records from a JSONL file (plain, .gz or .zst), a Parquet file, stdin, or the files of a data
    set on the hub (`hf://datasets/...`, records.hub_datasets: downloaded when this is called, read as asked for).

    Blank lines are ignored, and a UTF-8 byte order mark before the first; errors name the 1-based line number (for
    Parquet: the row number), and for a hub data set the file in the repo. With `rejects` given (the
    `--skip-invalid` mode) a bad record is counted and skipped; without, it raises InputError. Compressed data that
    ends early or is damaged always raises.
    """
    if is_hub_dataset(source):
        return _hub_records(hub_record_files(source), validate, rejects)
    return _stream_records(source, validate, rejects)


def _hub_records(files: list[tuple[Path, str]], validate: Validator | None,
                 rejects: RejectSink | None) -> Iterator[Record]:
    for path, name in files:
        try:
            yield from _stream_records(path, validate, rejects, name)
        except InputError as exc:
            raise InputError(f"{name}: {exc}") from None


def _stream_records(source: str | Path | IO[bytes] | None, validate: Validator | None, rejects: RejectSink | None,
                    name: str | None = None) -> Iterator[Record]:
    stream = open_input(source)
    try:
        unit, entries, to_record = _numbered_entries(stream)
        for number, entry in entries:
            record = None
            try:
                record = to_record(entry)
                yield validate(record) if validate else record
            except InputError as exc:
                if rejects is None:
                    raise InputError(str(exc), line=number, unit=unit) from None
                raw = entry if isinstance(entry, bytes) else None
                rejects.reject(record, str(exc), line=number, raw=raw, unit=unit, file=name)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def _numbered_entries(stream: IO[bytes]) -> tuple[str, Iterator[tuple[int, Any]], Callable[[Any], Record]]:
    """What the input counts ("line" or "row"), its (number, entry) pairs, and how an entry becomes a record."""
    kind = detect_format(stream)
    if kind == PARQUET:
        rows = ParquetRows(stream)
        return "row", rows.numbered(), rows.to_record
    return "line", _numbered_lines(text_lines(stream, kind)), parse_line


def _numbered_lines(lines: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line) of the lines that are not blank, a leading byte order mark removed."""
    number = 0
    try:
        for number, raw in enumerate(lines, start=1):
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            if raw.isspace() or not raw:  # isspace stops at the first other byte; strip() would copy the line
                continue
            yield number, raw
    except InputError as exc:  # the decompressor failed while reading the line after the last one read
        raise InputError(str(exc), line=number + 1) from None


def dump_record(record: Record) -> bytes:
    """One JSONL line (with its newline) for a record; numpy arrays serialize natively."""
    return orjson.dumps(record, option=_DUMP_OPTIONS)


@contextmanager
def record_output(target: str | Path | None) -> Iterator[IO[bytes]]:
    """stdout for None / `-`, else an atomic file that appears only when the block completes."""
    if target is None or str(target) == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with atomic_file(Path(target)) as stream:
        yield stream


def write_records(records: Iterable[Record], stream: IO[bytes]) -> int:
    """Write records as JSONL; return how many were written."""
    count = 0
    for record in records:
        stream.write(dump_record(record))
        count += 1
    return count


def require_string(record: Record, field: str, *, optional: bool = False) -> str | None:
    """The field's value if it is a string; InputError naming the field otherwise."""
    if field not in record or record[field] is None:
        if optional:
            return None
        raise InputError(f'field "{field}" is missing')
    value = record[field]
    if not isinstance(value, str):
        raise InputError(f'field "{field}" must be a string, got {type(value).__name__}')
    return value


def is_id(value: object) -> bool:
    """Whether a value can be a record's id: a string or an integer (not a boolean)."""
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def require_id(record: Record) -> str | int:
    """The record's id: a string or an integer, kept as given."""
    if "id" not in record:
        raise InputError('field "id" is missing')
    value = record["id"]
    if not is_id(value):
        raise InputError(f'field "id" must be a string or an integer, got {type(value).__name__}')
    return value
