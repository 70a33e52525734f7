"""The folder an index lives in: its files, its index.json, and the checks that refuse a damaged or foreign one.

An index folder holds three files:
- `index.faiss`: the FAISS index (`faiss.write_index`), built from a factory string with METRIC_INNER_PRODUCT;
- `ids.jsonl`: one JSON id per line (a string or an integer, as given), line n naming row n of the index;
- `index.json`: what was built: format and format_version, model, dim, metric, factory, count, normalized, ...,
  and `files`: the size and CRC-32 of index.faiss and ids.jsonl, checked on every load, so a truncated, damaged or
  hand-edited folder is refused with one line instead of reaching FAISS's reader. CRC-32 is the checksum zip, gzip
  and PNG use against accidental damage: it guards against truncation and bit rot, not tampering, and costs a small
  part of a build where sha256 cost a large one (docs/benchmarks.md, emb-index).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import orjson

from embtools.errors import EmbtoolsError
from embtools.index.embedding_checks import Id

FORMAT, FORMAT_VERSION = "embtools-index", 1
INDEX_FILE, IDS_FILE, META_FILE = "index.faiss", "ids.jsonl", "index.json"


def _checksum(path: Path) -> str:
    """The file's CRC-32 as 8 hex digits, read in 1 MiB blocks."""
    crc = 0
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            crc = zlib.crc32(block, crc)
    return f"{crc:08x}"


def _file_record(path: Path) -> dict:
    """{"bytes", "crc32"} of a file, as index.json records it."""
    return {"bytes": path.stat().st_size, "crc32": _checksum(path)}


def write_meta(folder: Path, meta: dict) -> None:
    """Write index.json: `meta` plus `files`, the size and checksum of index.faiss and ids.jsonl (written before)."""
    meta["files"] = {name: _file_record(folder / name) for name in (INDEX_FILE, IDS_FILE)}
    (folder / META_FILE).write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2) + b"\n")


def _verify_files(index_dir: Path, meta: dict) -> None:
    """EmbtoolsError unless index.faiss and ids.jsonl have the size and checksum that index.json recorded."""
    files = meta.get("files")
    for name in (INDEX_FILE, IDS_FILE):
        expected, path = files.get(name) if isinstance(files, dict) else None, index_dir / name
        if not (isinstance(expected, dict) and isinstance(expected.get("bytes"), int)):
            raise EmbtoolsError(f"{index_dir / META_FILE} is corrupt (no size and checksum recorded for {name})")
        if not path.is_file():
            raise EmbtoolsError(f"{index_dir} is incomplete: {name} is missing")
        if path.stat().st_size != expected["bytes"]:
            raise EmbtoolsError(f"{path} is corrupt: {path.stat().st_size} bytes, {META_FILE} recorded "
                                f"{expected['bytes']}; rebuild the index")
        if _checksum(path) != expected.get("crc32"):
            raise EmbtoolsError(f"{path} is corrupt: its crc32 differs from the one {META_FILE} recorded; "
                                "rebuild the index")


def read_meta(index_dir: Path, verify: bool = True) -> dict:
    """index.json of an index folder, checked; EmbtoolsError when it is missing, corrupt or of another format, or
    (with `verify`) when the files it describes are not the ones it recorded."""
    path = Path(index_dir) / META_FILE
    if not Path(index_dir).is_dir():
        raise EmbtoolsError(f"{index_dir}: no such index folder")
    try:
        meta = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise EmbtoolsError(f"{index_dir} is not an emb-index folder: {META_FILE} is missing") from None
    except orjson.JSONDecodeError:
        raise EmbtoolsError(f"{path} is corrupt (not valid JSON)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise EmbtoolsError(f"{path} does not describe an emb-index folder")
    if meta.get("format_version") != FORMAT_VERSION:
        raise EmbtoolsError(f"{path} has format version {meta.get('format_version')}; "
                            f"this embtools reads version {FORMAT_VERSION}")
    if not all(isinstance(meta.get(key), int) for key in ("dim", "count")):
        raise EmbtoolsError(f"{path} is corrupt (dim and count must be integers)")
    if verify:
        _verify_files(Path(index_dir), meta)
    return meta


def read_ids(index_dir: Path, count: int) -> list[Id]:
    """The ids of an index folder in row order; EmbtoolsError unless there are `count` of them."""
    path = Path(index_dir) / IDS_FILE
    try:
        ids = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    except FileNotFoundError:
        raise EmbtoolsError(f"{index_dir} is incomplete: {IDS_FILE} is missing") from None
    except orjson.JSONDecodeError:
        raise EmbtoolsError(f"{path} is corrupt (not JSON lines)") from None
    if len(ids) != count:
        raise EmbtoolsError(f"{path} holds {len(ids)} ids but {META_FILE} says {count}")
    return ids
