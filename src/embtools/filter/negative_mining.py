"""Hard negatives for examples that have none, mined with an embedding model from a pool of candidate texts.

NV-Retriever's "TopK-PercPos" (Moreira et al. 2024): rank the pool by similarity to the query and take the best
candidate inside a rank window whose score stays below `margin` x the positive's score, so the near-copies of the
positive near the top, the likely false negatives, are skipped. Never a known positive: every positive of every
example with the same query (up to case and spacing) is excluded, as is the query's own text. With `consistency`,
examples whose positive does not score above their negative (given or mined) are rejected.

The records are spooled to a temporary file (the pool must be complete before the first search), the pool's texts
live on disk (mining_pool.TextPool) and its vectors in a FAISS flat inner-product index: exact search, no training.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
import orjson

from embtools.filter import defaults
from embtools.filter.mining_pool import TextPool, candidate_texts
from embtools.instructions import model_takes_instructions, with_instruction
from embtools.models.builtin import DEFAULT_MINING_MODEL
from embtools.progress import Bar, attached
from embtools.records.examples import filter_meta, text
from embtools.records.jsonl import Record, RejectSink, dump_record
from embtools.records.text_keys import key_digest

log = logging.getLogger("embtools")

INCONSISTENT = "inconsistent-negative"


@dataclass
class MiningSettings:
    model: str = DEFAULT_MINING_MODEL
    first_rank: int = defaults.NEGATIVE_RANKS[0]
    last_rank: int = defaults.NEGATIVE_RANKS[1]
    margin: float = defaults.NEGATIVE_MARGIN
    consistency: bool = False
    max_length: int = defaults.MINING_MAX_LENGTH
    dtype: str = "auto"
    chunk_size: int = 512
    candidate_sources: tuple[Path, ...] = ()
    use_instruction: bool | None = None  # None: as the model was trained (decoders and models with prompts)


@dataclass
class MiningStats:
    wanted: int = 0
    mined: int = 0
    none_found: int = 0
    skipped: Counter = field(default_factory=Counter)  # why in-window candidates were passed over
    ranks: Counter = field(default_factory=Counter)
    negative_scores: Counter = field(default_factory=Counter)  # rounded to 0.001: bounded, enough for a report
    positive_scores: Counter = field(default_factory=Counter)


def counter_median(counts: Counter) -> float:
    """The median of the values a Counter counts (its keys weighted by their counts)."""
    middle, seen = (sum(counts.values()) - 1) // 2, 0
    for value in sorted(counts):
        seen += counts[value]
        if seen > middle:
            return value
    return float("nan")


def pick_negative(rows: np.ndarray, scores: np.ndarray, positive_score: float, excluded: set[int],
                  settings: MiningSettings, skipped: Counter) -> tuple[int, int, float] | None:
    """(row, 1-based rank, score) of the best allowed candidate in the window, or None; counts what it skipped."""
    for rank in range(settings.first_rank, min(settings.last_rank, len(rows)) + 1):
        row, score = int(rows[rank - 1]), float(scores[rank - 1])
        if row < 0:
            break
        if row in excluded:
            skipped["known positive"] += 1
        elif score >= settings.margin * positive_score:
            skipped["above the margin"] += 1
        else:
            return row, rank, score
    return None


class NegativeMiner:
    """`mine(records, sink)` yields the records with negatives filled in (and inconsistent ones rejected)."""

    def __init__(self, settings: MiningSettings, encoder=None):
        from embtools.encode.encoder import Encoder, EncodeSettings

        if not 1 <= settings.first_rank <= settings.last_rank:
            raise ValueError("the rank window must satisfy 1 <= first <= last")
        self.settings = settings
        self.encoder = encoder or Encoder(settings.model, EncodeSettings(max_length=settings.max_length,
                                                                         dtype=settings.dtype))
        takes = model_takes_instructions(self.encoder.spec.is_decoder, self.encoder.spec.prompts)
        self.instructed = takes if settings.use_instruction is None else settings.use_instruction
        self.pool = TextPool()
        self.positives: dict[int, set[int]] = {}
        self.stats = MiningStats()

    def mine(self, records: Iterable[Record], sink: RejectSink) -> Iterator[Record]:
        with tempfile.TemporaryFile() as spool, attached(self.encoder, Bar("mining", unit="text", rates=("tokens",))):
            for record in records:
                self._collect(record)
                spool.write(dump_record(record))
            for source in self.settings.candidate_sources:
                for value in candidate_texts(source):
                    self.pool.add(value)
            log.info(f"encoding {len(self.pool)} candidate texts with {self.settings.model} for mining")
            index = self._build_index()
            spool.seek(0)
            lines = (orjson.loads(line) for line in spool)
            while batch := list(islice(lines, self.settings.chunk_size)):
                yield from self._complete(batch, index, sink)
        self.pool.close()

    def _collect(self, record: Record) -> None:
        rows = self.positives.setdefault(key_digest(text(record, "query")), set())
        rows.add(self.pool.add(text(record, "positive")))
        if record.get("negative") is not None:
            self.pool.add(text(record, "negative"))

    def _build_index(self):
        import faiss

        index = faiss.IndexFlatIP(self.encoder.dim)
        for start in range(0, len(self.pool), self.settings.chunk_size * 4):
            vectors = self.encoder.encode(self.pool.texts(start, start + self.settings.chunk_size * 4))
            faiss.normalize_L2(vectors)
            index.add(vectors)
        return index

    def _query_vectors(self, batch: list[Record]) -> np.ndarray:
        import faiss

        queries = [with_instruction(text(r, "query"), text(r, "instruction") if self.instructed else None)
                   for r in batch]
        vectors = self.encoder.encode(queries)
        faiss.normalize_L2(vectors)
        return vectors

    def _complete(self, batch: list[Record], index, sink: RejectSink) -> Iterator[Record]:
        """The batch with negatives filled in; queries are encoded only where mining or the consistency check needs
        them."""
        needed = [r for r in batch if r.get("negative") is None or self.settings.consistency]
        vectors = dict(zip(map(id, needed), self._query_vectors(needed))) if needed else {}
        wanted = [r for r in needed if r.get("negative") is None]
        k = min(self.settings.last_rank, index.ntotal)
        if wanted and k:
            scores, rows = index.search(np.stack([vectors[id(r)] for r in wanted]), k)
            for record, row_ids, row_scores in zip(wanted, rows, scores):
                self._fill(record, (row_ids, row_scores), self._positive_score(record, vectors[id(record)], index))
        for record in batch:
            reason = self._inconsistency(record, vectors.get(id(record)), index)
            if reason:
                sink.reject(record, reason)
            else:
                yield record

    def _positive_score(self, record: Record, vector: np.ndarray, index) -> float:
        return float(vector @ index.reconstruct(self.pool.row_of(text(record, "positive"))))

    def _fill(self, record: Record, ranking, positive_score: float) -> None:
        self.stats.wanted += 1
        excluded = set(self.positives.get(key_digest(text(record, "query")), ()))
        own = self.pool.row_of(text(record, "query"))
        excluded |= {own} if own is not None else set()
        chosen = pick_negative(ranking[0], ranking[1], positive_score, excluded, self.settings, self.stats.skipped)
        if chosen is None:
            self.stats.none_found += 1
            return
        row, rank, score = chosen
        record["negative"] = self.pool.text(row)
        filter_meta(record)["mined_negative"] = {
            "model": self.settings.model, "rank": rank, "score": round(score, 4),
            "positive_score": round(positive_score, 4),
            "window": [self.settings.first_rank, self.settings.last_rank], "margin": self.settings.margin}
        self.stats.mined += 1
        self.stats.ranks[rank] += 1
        self.stats.negative_scores[round(score, 3)] += 1
        self.stats.positive_scores[round(positive_score, 3)] += 1

    def _inconsistency(self, record: Record, vector: np.ndarray | None, index) -> str | None:
        if not self.settings.consistency or record.get("negative") is None or vector is None:
            return None
        positive_score = self._positive_score(record, vector, index)
        negative_score = float(vector @ index.reconstruct(self.pool.row_of(text(record, "negative"))))
        if negative_score >= positive_score:
            return f"{INCONSISTENT}: positive scores {positive_score:.3f}, negative {negative_score:.3f}"
        return None

    def report(self) -> str:
        """The window used and what it gave, one paragraph for stderr."""
        s, cfg = self.stats, self.settings
        head = (f"mined negatives with {cfg.model} from {len(self.pool)} candidate texts: ranks "
                f"{cfg.first_rank}-{cfg.last_rank}, score < {cfg.margin:g} x the positive's score; "
                f"{s.mined} of {s.wanted} examples got one, {s.none_found} had no candidate in the window")
        if not s.mined:
            return head
        negatives = s.negative_scores
        return (head + f"; chosen rank median {counter_median(s.ranks)} (range {min(s.ranks)}-{max(s.ranks)}); "
                f"negative score median {counter_median(negatives):.3f} (range {min(negatives):.3f}-"
                f"{max(negatives):.3f}), positive score median {counter_median(s.positive_scores):.3f}; passed over "
                f"in the window: {s.skipped['known positive']} known positives, {s.skipped['above the margin']} "
                "above the margin")
