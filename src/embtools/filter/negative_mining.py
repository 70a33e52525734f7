"""Hard negatives for examples that have none, mined with an embedding model from a pool of candidate texts.

NV-Retriever's "TopK-PercPos" (Moreira et al. 2024): rank the pool by similarity to the query and take the best
candidates inside a rank window whose score stays below `margin` x the positive's score (and, when asked, below an
absolute `max_score`), so the near-copies of the positive near the top, the likely false negatives, are skipped.
`num_negatives` K > 1 takes K of the allowed candidates, the best K (`top`) or a seeded random K (`random`, seeded per
example, so the choice does not depend on the order of the input); K = 1 writes a string as the paper's recipe has
it, K > 1 a list, best first. Never a known positive: every positive of every example with the same query (up to
case and spacing) is excluded, as is the query's own text. With `consistency`, examples whose positive does not
score above every negative (given or mined) are rejected.

Every text is embedded through the embedding cache (encode/cached_encoder.py, the one emb-eval uses), so a second
run over the same pool with other ranks, margins or K encodes nothing; the report says how many texts were encoded
and how many came from the cache. The records are spooled to a temporary file (the pool must be complete before the
first search), the pool's texts live on disk (mining_pool.TextPool) and its vectors in a FAISS flat inner-product
index: exact search, no training.
"""

from __future__ import annotations

import logging
import random
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
from embtools.languages import iso_code
from embtools.models.builtin import DEFAULT_MINING_MODEL
from embtools.models.language_support import ENGLISH, is_english_only
from embtools.progress import Bar, attached
from embtools.records.examples import filter_meta, negatives, text
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
    max_score: float | None = None  # an absolute bound on a negative's cosine, beside the margin; None: none
    num_negatives: int = 1
    sampling: str = "top"  # top | random: which of the allowed candidates in the window
    seed: int = 0
    consistency: bool = False
    max_length: int = defaults.MINING_MAX_LENGTH
    dtype: str = "auto"
    chunk_size: int = 512
    candidate_sources: tuple[Path, ...] = ()
    use_instruction: bool | None = None  # None: as the model was trained (decoders and models with prompts)


@dataclass
class MiningStats:
    wanted: int = 0
    mined: int = 0  # examples that got at least one
    negatives: int = 0
    none_found: int = 0
    skipped: Counter = field(default_factory=Counter)  # why in-window candidates were passed over
    ranks: Counter = field(default_factory=Counter)
    negative_scores: Counter = field(default_factory=Counter)  # rounded to 0.001: bounded, enough for a report
    positive_scores: Counter = field(default_factory=Counter)
    non_english: Counter = field(default_factory=Counter)  # examples by their `language`, for the model warning


def counter_median(counts: Counter) -> float:
    """The median of the values a Counter counts (its keys weighted by their counts)."""
    middle, seen = (sum(counts.values()) - 1) // 2, 0
    for value in sorted(counts):
        seen += counts[value]
        if seen > middle:
            return value
    return float("nan")


def skip_reason(row: int, score: float, positive_score: float, excluded: set[int],
                settings: MiningSettings) -> str | None:
    if row in excluded:
        return "known positive"
    if score >= settings.margin * positive_score:
        return "above the margin"
    if settings.max_score is not None and score >= settings.max_score:
        return "above the bound"
    return None


def pick_negatives(rows: np.ndarray, scores: np.ndarray, positive_score: float, excluded: set[int],
                   settings: MiningSettings, skipped: Counter,
                   rng: random.Random | None = None) -> list[tuple[int, int, float]]:
    """(row, 1-based rank, score) of up to K allowed candidates in the window, best first: the first K (`top`) or
    K drawn with `rng` from all of them (`random`); counts what it passed over."""
    wanted = settings.num_negatives
    allowed: list[tuple[int, int, float]] = []
    for rank in range(settings.first_rank, min(settings.last_rank, len(rows)) + 1):
        row, score = int(rows[rank - 1]), float(scores[rank - 1])
        if row < 0 or (settings.sampling == "top" and len(allowed) == wanted):
            break
        reason = skip_reason(row, score, positive_score, excluded, settings)
        if reason:
            skipped[reason] += 1
        else:
            allowed.append((row, rank, score))
    if len(allowed) > wanted:
        allowed = sorted((rng or random.Random(settings.seed)).sample(allowed, wanted), key=lambda c: c[1])
    return allowed


class NegativeMiner:
    """`mine(records, sink)` yields the records with negatives filled in (and inconsistent ones rejected)."""

    def __init__(self, settings: MiningSettings, encoder=None, cache=None):
        """`encoder`: an Encoder already loaded (else settings.model is loaded when a text is not in the cache);
        `cache`: an EmbeddingCache, or None to encode every text afresh."""
        from embtools.encode.cached_encoder import CachedEncoder
        from embtools.encode.encoder import EncodeSettings

        if not 1 <= settings.first_rank <= settings.last_rank:
            raise ValueError("the rank window must satisfy 1 <= first <= last")
        self.settings = settings
        if encoder is not None:
            self.encoder = CachedEncoder(encoder.spec, encoder.settings, cache=cache, encoder=encoder)
        else:
            self.encoder = CachedEncoder(settings.model, EncodeSettings(max_length=settings.max_length,
                                                                        dtype=settings.dtype), cache=cache)
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
            self._warn_of_language()
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
        for negative in negatives(record):
            self.pool.add(negative)
        language = record.get("language")
        if isinstance(language, str) and language.strip() and iso_code(language) != ENGLISH:
            self.stats.non_english[language] += 1

    def _warn_of_language(self) -> None:
        """One warning line when non-English examples are mined with a model whose card says English only."""
        counts = self.stats.non_english
        if counts and is_english_only(self.encoder.spec):
            named = ", ".join(name for name, _ in counts.most_common(3)) + (", ..." if len(counts) > 3 else "")
            log.warning(f"mining negatives for {sum(counts.values())} non-English examples ({named}) with "
                        f"{self.settings.model}, an English-only model: their negatives may be poor; a "
                        "multilingual --model mines them better")

    def _build_index(self):
        import faiss

        index, step = None, self.settings.chunk_size * 4
        for start in range(0, len(self.pool), step):
            vectors = self.encoder.embed(self.pool.texts(start, start + step), normalize=True)
            if index is None:
                index = faiss.IndexFlatIP(vectors.shape[1])
            index.add(vectors)
        return index

    def _query_vectors(self, batch: list[Record]) -> np.ndarray:
        queries = [with_instruction(text(r, "query"), text(r, "instruction") if self.instructed else None)
                   for r in batch]
        return self.encoder.embed(queries, normalize=True)

    def _complete(self, batch: list[Record], index, sink: RejectSink) -> Iterator[Record]:
        """The batch with negatives filled in; queries are encoded only where mining or the consistency check needs
        them."""
        needed = [r for r in batch if r.get("negative") is None or self.settings.consistency]
        vectors = dict(zip(map(id, needed), self._query_vectors(needed))) if needed else {}
        wanted = [r for r in needed if r.get("negative") is None]
        k = min(self.settings.last_rank, index.ntotal) if index is not None else 0
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
        rng = random.Random(f"{self.settings.seed}:{key_digest(text(record, 'query'))}:"
                            f"{key_digest(text(record, 'positive'))}")
        chosen = pick_negatives(ranking[0], ranking[1], positive_score, excluded, self.settings, self.stats.skipped,
                                rng)
        if not chosen:
            self.stats.none_found += 1
            return
        self._record(record, chosen, positive_score)

    def _record(self, record: Record, chosen: list[tuple[int, int, float]], positive_score: float) -> None:
        """Write the chosen negatives (a string for K = 1, else a list) and their ranks and scores into meta."""
        cfg, single = self.settings, self.settings.num_negatives == 1
        record["negative"] = self.pool.text(chosen[0][0]) if single else [self.pool.text(row) for row, _, _ in chosen]
        ranks, scores = [rank for _, rank, _ in chosen], [round(score, 4) for _, _, score in chosen]
        filter_meta(record)["mined_negative"] = {
            "model": cfg.model, "rank": ranks[0] if single else ranks, "score": scores[0] if single else scores,
            "positive_score": round(positive_score, 4), "window": [cfg.first_rank, cfg.last_rank],
            "margin": cfg.margin, **({} if cfg.max_score is None else {"max_score": cfg.max_score}),
            **({} if single else {"sampling": cfg.sampling})}
        self.stats.mined += 1
        self.stats.negatives += len(chosen)
        for _, rank, score in chosen:
            self.stats.ranks[rank] += 1
            self.stats.negative_scores[round(score, 3)] += 1
        self.stats.positive_scores[round(positive_score, 3)] += 1

    def _inconsistency(self, record: Record, vector: np.ndarray | None, index) -> str | None:
        if not self.settings.consistency or record.get("negative") is None or vector is None:
            return None
        positive_score = self._positive_score(record, vector, index)
        negative_score = max(float(vector @ index.reconstruct(self.pool.row_of(negative)))
                             for negative in negatives(record))
        if negative_score >= positive_score:
            return f"{INCONSISTENT}: positive scores {positive_score:.3f}, negative {negative_score:.3f}"
        return None

    def report(self) -> str:
        """The window used and what it gave, one paragraph for stderr."""
        s, cfg = self.stats, self.settings
        bound = f" and < {cfg.max_score:g}" if cfg.max_score is not None else ""
        took = "" if cfg.num_negatives == 1 else f", up to {cfg.num_negatives} each ({cfg.sampling})"
        head = (f"mined negatives with {cfg.model} from {len(self.pool)} candidate texts: ranks "
                f"{cfg.first_rank}-{cfg.last_rank}, score < {cfg.margin:g} x the positive's score{bound}{took}; "
                f"{s.mined} of {s.wanted} examples got one ({s.negatives} negatives), {s.none_found} had no "
                f"candidate in the window; {self.encoder.encoded} texts encoded, {self.encoder.reused} from the "
                "embedding cache")
        if not s.mined:
            return head
        scores = s.negative_scores
        return (head + f"; chosen rank median {counter_median(s.ranks)} (range {min(s.ranks)}-{max(s.ranks)}); "
                f"negative score median {counter_median(scores):.3f} (range {min(scores):.3f}-"
                f"{max(scores):.3f}), positive score median {counter_median(s.positive_scores):.3f}; passed over "
                f"in the window: {s.skipped['known positive']} known positives, {s.skipped['above the margin']} "
                f"above the margin" + (f", {s.skipped['above the bound']} above the bound" if bound else ""))
