"""A content-addressed store of embeddings, so the same text under the same model is encoded once.

A key is sha256(model fingerprint, exact model input text); the fingerprint covers everything that changes the
vector the model emits: the model folder and the size and mtime of its weight files, pooling, dtype, maximum length,
device kind. Vectors are stored as the model emits them, before L2 normalization, which callers apply on read: a
normalized and a raw evaluation share entries.

The store is one sqlite database under EMBTOOLS_HOME (WAL mode, so concurrent readers and writers are safe; a writer
waits for another up to a minute). The database carries FORMAT_VERSION as sqlite's `user_version`. A file that
sqlite cannot read, a database of another program or another format version, or a vector of the wrong size, is
refused with a one-line message saying how to rebuild.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from embtools.errors import EmbtoolsError
from embtools.home import home_subdir
from embtools.models.loading import ModelSpec
from embtools.models.rope import RopeOverride

FORMAT_VERSION = 1
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
_QUERY_BATCH = 500  # sqlite's limit on bound parameters is 999 in old builds
_COLUMNS = ["key", "dim", "vector"]
_REBUILD = "delete it to rebuild, or run with --no-cache"


def default_cache_path() -> Path:
    return home_subdir("cache") / "embeddings.sqlite"


def weight_files(folder: Path | None) -> list[tuple[str, int, int]]:
    """(name, size, mtime_ns) of each weight file in a model folder; empty for None."""
    if folder is None:
        return []
    found = [p for p in sorted(folder.iterdir()) if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES)]
    return [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in found]


def model_fingerprint(spec: ModelSpec, pooling: str, dtype: str, max_length: int, device: str,
                      rope: RopeOverride | None = None) -> str:
    """A hex digest naming one model configuration: what a cached vector depends on besides the text. A RoPE
    override joins it only when there is one, so caches of models run as they are keep their keys."""
    identity = {
        "format": FORMAT_VERSION,
        "path": str(spec.path.resolve()),
        "weights": weight_files(spec.path),
        "base_path": str(spec.base_path.resolve()) if spec.base_path else None,
        "base_weights": weight_files(spec.base_path),
        "pooling": pooling,
        "dtype": dtype,
        "max_length": max_length,
        "device": device.split(":")[0],
        "vectors": "raw, before normalization",
    }
    if rope:
        identity["rope"] = rope.to_json()
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def text_key(fingerprint: str, text: str) -> bytes:
    """The cache key of one model input text under one model configuration."""
    return hashlib.sha256(fingerprint.encode() + b"\0" + text.encode("utf-8")).digest()


class EmbeddingCache:
    """get_many / put_many of float32 vectors by key, in a sqlite file shared by concurrent processes."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = None
        with self._guard():
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._check_or_create()
            except BaseException:
                self.close()
                raise

    def _check_or_create(self) -> None:
        """Create the table in an empty database; refuse one of another program or another format version."""
        self._db.execute("BEGIN IMMEDIATE")  # two processes creating the cache at once: one creates, one checks
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            tables = [row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            if not tables and version == 0:
                self._db.execute("CREATE TABLE vectors (key BLOB PRIMARY KEY, dim INTEGER NOT NULL, "
                                 "vector BLOB NOT NULL)")
                self._db.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
            elif version not in (0, FORMAT_VERSION):
                raise EmbtoolsError(f"embedding cache {self.path} has format version {version}; this embtools "
                                    f"uses version {FORMAT_VERSION}: {_REBUILD}")
            elif version == 0 or tables != ["vectors"] or self._columns() != _COLUMNS:  # 0: never stamped by us
                raise EmbtoolsError(f"embedding cache {self.path} is not an embtools embedding cache "
                                    f"(tables: {', '.join(tables) or 'none'}): {_REBUILD}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _columns(self) -> list[str]:
        return [row[1] for row in self._db.execute("PRAGMA table_info(vectors)")]

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn sqlite's 'not a database' / 'malformed' errors into one clear EmbtoolsError."""
        try:
            yield
        except sqlite3.OperationalError as exc:  # locked too long, disk full, read-only
            raise EmbtoolsError(f"embedding cache {self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise EmbtoolsError(f"embedding cache {self.path} is corrupt ({exc}): {_REBUILD}") from None

    def get_many(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        """The stored vectors among `keys`; absent keys are left out."""
        found: dict[bytes, np.ndarray] = {}
        with self._guard():
            for start in range(0, len(keys), _QUERY_BATCH):
                batch = keys[start:start + _QUERY_BATCH]
                marks = ",".join("?" * len(batch))
                rows = self._db.execute(f"SELECT key, dim, vector FROM vectors WHERE key IN ({marks})", batch)
                found.update((key, self._vector(dim, blob)) for key, dim, blob in rows)
        return found

    def _vector(self, dim: int, blob: bytes) -> np.ndarray:
        if len(blob) != 4 * dim:
            raise EmbtoolsError(f"embedding cache {self.path} is corrupt (a vector of {len(blob)} bytes, "
                                f"expected {4 * dim}): {_REBUILD}")
        return np.frombuffer(blob, dtype="<f4")

    def put_many(self, items: Iterable[tuple[bytes, np.ndarray]]) -> None:
        """Store vectors (one transaction; an existing key is replaced by the same content)."""
        rows = [(key, int(v.shape[0]), np.asarray(v, dtype="<f4").tobytes()) for key, v in items]
        with self._guard():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
