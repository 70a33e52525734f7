"""Never pay twice: answered chat requests, keyed by the request's content hash, in one SQLite file.

SQLite in WAL mode: many processes (a Slurm array sharing a folder on one machine, or a re-run while another runs)
read and write the same file safely, each answer is committed the moment it arrives, and a process killed with
kill -9 loses at most the answer it was writing. Only the request's hash and the answer (text, finish reason, token
counts, model) are stored: never the API key, the endpoint URL, or the request's headers.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import orjson

from embtools.errors import EmbtoolsError
from embtools.generate.chat_request import ChatRequest, ChatResult
from embtools.home import home_subdir

CACHE_FILE = "responses.sqlite"
FORMAT_VERSION = 1  # sqlite's user_version of the file; 0 is a file this process has just created
_COLUMNS = ["key", "response", "created"]


def default_cache_dir() -> Path:
    return home_subdir("generate-cache")


class ResponseCache:
    """get / put ChatResults by ChatRequest; `hits` counts answers served from the file."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / CACHE_FILE
        self.hits = 0
        try:
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
            self._db.execute("CREATE TABLE IF NOT EXISTS responses "
                             "(key TEXT PRIMARY KEY, response BLOB NOT NULL, created REAL NOT NULL)")
            self._check_format()
        except sqlite3.Error as exc:
            raise EmbtoolsError(f"cannot open the response cache {self.path}: {exc}") from None

    def _check_format(self) -> None:
        """Refuse a file of another program or another format version, in one line that says what to do."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        columns = [row[1] for row in self._db.execute("PRAGMA table_info(responses)")]
        if version not in (0, FORMAT_VERSION) or columns != _COLUMNS:
            found = f"format version {version}" if version not in (0, FORMAT_VERSION) else "another table layout"
            raise EmbtoolsError(f"response cache {self.path} is not this embtools' response cache ({found}); "
                                "move it away or give another --cache DIR")
        if version == 0:
            self._db.execute(f"PRAGMA user_version = {FORMAT_VERSION}")

    def get(self, request: ChatRequest) -> ChatResult | None:
        row = self._db.execute("SELECT response FROM responses WHERE key = ?",
                               (request.content_hash(),)).fetchone()
        if row is None:
            return None
        self.hits += 1
        return ChatResult.from_json(orjson.loads(row[0]), cached=True)

    def put(self, request: ChatRequest, result: ChatResult) -> None:
        self._db.execute("INSERT OR REPLACE INTO responses (key, response, created) VALUES (?, ?, ?)",
                         (request.content_hash(), orjson.dumps(result.to_json()), time.time()))

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self._db.close()
