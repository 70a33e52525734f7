"""The candidate texts negatives are mined from, held on disk: each distinct text once, found by its digest.

Texts are appended to a temporary file and read back by offset, so a pool of a million documents costs memory only
for its digests and offsets. Sources: the positives and negatives of the examples being filtered, the corpus of a
BEIR folder, or a JSONL file of text records (`text`, optional `title`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

from embtools.errors import EmbtoolsError
from embtools.records.datasets import CORPUS, beir_texts
from embtools.records.formats import record_file
from embtools.records.text_keys import key_digest


class TextPool:
    """Distinct texts by row: `add(text) -> row`, `row_of(text)`, `text(row)`, `texts(start, stop)`."""

    def __init__(self, directory: str | None = None):
        self._file = tempfile.TemporaryFile(dir=directory)
        self._offsets: list[int] = [0]
        self._rows: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def add(self, value: str) -> int:
        """The row of `value` (equal up to case and spacing counts as the same text), adding it if it is new."""
        digest = key_digest(value)
        row = self._rows.get(digest)
        if row is None:
            row = self._rows[digest] = len(self)
            self._file.seek(self._offsets[-1])
            self._file.write(value.encode("utf-8", "surrogatepass"))
            self._offsets.append(self._file.tell())
        return row

    def row_of(self, value: str) -> int | None:
        return self._rows.get(key_digest(value))

    def text(self, row: int) -> str:
        self._file.seek(self._offsets[row])
        return self._file.read(self._offsets[row + 1] - self._offsets[row]).decode("utf-8", "surrogatepass")

    def texts(self, start: int, stop: int) -> list[str]:
        return [self.text(row) for row in range(start, min(stop, len(self)))]

    def close(self) -> None:
        self._file.close()


def candidate_texts(path: Path) -> Iterator[str]:
    """Texts of a negatives source: a BEIR folder's corpus, or a JSONL file of text records (read alike: an id,
    a `text` string, an optional `title`); empty texts are passed over."""
    path = Path(path)
    corpus = record_file(path / CORPUS) if path.is_dir() else path
    if not corpus.is_file():
        raise EmbtoolsError(f"--negatives-from {path}: expected a BEIR folder (corpus.jsonl) or a JSONL text file")
    yield from (value for _, value in beir_texts(corpus) if value.strip())
