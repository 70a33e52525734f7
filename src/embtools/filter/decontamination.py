"""Keep evaluation data out of training data: exact matches and long shared n-grams, as the paper's App. B checks.

Evaluation texts come from STS files (both sentences), BEIR folders (the queries of `qrels/<split>.tsv` and the
documents judged there; the rest of a corpus is shared text, which the paper does not count as contamination) and
classification folders (the texts of every file but train.jsonl). An example is contaminated when one of its texts
- equals an evaluation text after normalizing case and spacing (`contaminated-exact`), or
- shares a run of `ngram` words with one, or contains a whole evaluation text of `contained_min_words` to `ngram`
  words (`contaminated-ngram`).
Short-text allowance: evaluation texts of fewer than `min_words` words ("i need a coffee") never count, and a short
evaluation sentence ("A man is playing a guitar.") found inside a longer text counts only from `contained_min_words`.
Everything is kept as 64-bit hashes: a set for the exact keys, one sorted numpy array for the n-grams.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from embtools.errors import EmbtoolsError
from embtools.filter import defaults
from embtools.records.datasets import (
    bitext_pairs,
    detect,
    evaluation_files,
    judged_texts,
    labelled_records,
    load_qrels,
    qrels_file,
    sts_pairs,
)
from embtools.records.examples import field_texts
from embtools.records.jsonl import Record
from embtools.records.text_keys import key_digest, token_hashes

EXACT, NGRAM = "contaminated-exact", "contaminated-ngram"
_WINDOW_KEYS = np.random.default_rng(13).integers(1, 2**63, size=256, dtype=np.uint64) | np.uint64(1)
_LENGTH_KEYS = np.random.default_rng(17).integers(1, 2**63, size=257, dtype=np.uint64)
_BATCH = 512


@dataclass
class DecontaminationSettings:
    ngram: int = defaults.NGRAM
    min_words: int = defaults.MIN_CONTAMINATION_WORDS
    contained_min_words: int = 8
    split: str = defaults.DECONTAMINATE_SPLIT
    fields: tuple[str, ...] = ("query", "positive", "negative")


def window_hashes(tokens: np.ndarray, length: int) -> np.ndarray:
    """One 64-bit hash per run of `length` consecutive token hashes (none when there are fewer tokens)."""
    if len(tokens) < length:
        return np.zeros(0, dtype=np.uint64)
    windows = sliding_window_view(tokens, length)
    return (windows * _WINDOW_KEYS[:length]).sum(axis=1, dtype=np.uint64) + _LENGTH_KEYS[length]


def evaluation_texts(path: Path, split: str) -> Iterator[str]:
    """The texts of one evaluation source, streamed (a BEIR corpus is read once, keeping only judged documents)."""
    source = detect(str(path))
    if source.kind in ("sts", "bitext"):
        for pair in (sts_pairs if source.kind == "sts" else bitext_pairs)(path):
            yield from (pair["sentence1"], pair["sentence2"])
    elif source.kind == "retrieval":
        yield from _judged_texts(Path(path), split)
    elif source.kind == "classification":
        for file in evaluation_files(Path(path)):
            yield from (record["text"] for record in labelled_records(file))
    else:
        raise EmbtoolsError(f"--decontaminate {path}: only STS and bitext files, BEIR folders and classification "
                            "folders")


def _judged_texts(folder: Path, split: str) -> Iterator[str]:
    """The queries of qrels/<split>.tsv and every document judged there."""
    queries, documents = judged_texts(folder, load_qrels(qrels_file(folder, split, option="--decontaminate-split")))
    yield from queries.values()
    yield from documents.values()


class ContaminationIndex:
    """Hashes of evaluation texts; `add(texts, source)` to fill, then call it on a record."""

    name = "decontamination"

    def __init__(self, settings: DecontaminationSettings | None = None):
        self.settings = settings or DecontaminationSettings()
        if self.settings.ngram > 255 or self.settings.min_words < 1:
            raise EmbtoolsError("--ngram must be at most 255 and --min-contamination-words at least 1")
        self.exact: dict[int, int] = {}
        self.sources: list[str] = []
        self.counts: list[int] = []
        self._parts: list[np.ndarray] = []
        self._owners: list[np.ndarray] = []
        self.ngrams = np.zeros(0, dtype=np.uint64)
        self.owners = np.zeros(0, dtype=np.int32)
        self.short_lengths: set[int] = set()

    def add_source(self, path: Path) -> int:
        """Index every text of one evaluation source; return how many texts it had."""
        texts = evaluation_texts(Path(path), self.settings.split)
        source = len(self.sources)
        self.sources.append(str(path))
        count = 0
        while batch := list(islice(texts, _BATCH)):
            self._add_batch(batch, source)
            count += len(batch)
        self.counts.append(count)
        self._freeze()
        return count

    def _add_batch(self, texts: list[str], source: int) -> None:
        tokens, counts = token_hashes(texts)
        for piece, value in zip(np.split(tokens, np.cumsum(counts)[:-1]), texts):
            if len(piece) < self.settings.min_words:
                continue  # the short-text allowance
            self.exact.setdefault(key_digest(value), source)
            length = min(len(piece), self.settings.ngram)
            if length < self.settings.contained_min_words:
                continue
            if length < self.settings.ngram:
                self.short_lengths.add(length)
            hashes = window_hashes(piece, length)
            self._parts.append(hashes)
            self._owners.append(np.full(len(hashes), source, dtype=np.int32))

    def _freeze(self) -> None:
        """Merge what was added into one sorted array (searched with binary search)."""
        merged = np.concatenate([self.ngrams, *self._parts])
        owners = np.concatenate([self.owners, *self._owners])
        order = np.argsort(merged, kind="stable")
        self.ngrams, self.owners = merged[order], owners[order]
        self._parts, self._owners = [], []

    def _shared_ngram(self, tokens: np.ndarray) -> int | None:
        """The source of an evaluation n-gram (or whole short text) these tokens contain, or None."""
        if not len(self.ngrams):
            return None
        for length in (self.settings.ngram, *sorted(self.short_lengths)):
            hashes = window_hashes(tokens, length)
            if not len(hashes):
                continue
            where = np.minimum(np.searchsorted(self.ngrams, hashes), len(self.ngrams) - 1)
            hits = np.flatnonzero(self.ngrams[where] == hashes)
            if len(hits):
                return int(self.owners[where[hits[0]]])
        return None

    def __call__(self, record: Record) -> str | None:
        pairs = field_texts(record, self.settings.fields)
        fields, values = [name for name, _ in pairs], [value for _, value in pairs]
        for field, value in pairs:
            source = self.exact.get(key_digest(value))
            if source is not None:
                return f"{EXACT}: {field} equals a text of {self.sources[source]}"
        tokens, counts = token_hashes(values)
        for field, piece in zip(fields, np.split(tokens, np.cumsum(counts)[:-1])):
            source = self._shared_ngram(piece)
            if source is not None:
                return f"{NGRAM}: {field} shares a run of words with {self.sources[source]}"
        return None
