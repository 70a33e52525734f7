"""Retrieval evaluation through our own index: embed the corpus into an emb-index folder, search it, score the run.

The corpus is embedded in chunks and streamed into `vector_index.build_index` (a Flat index in a temporary folder),
the queries (with the E5 instruction, documents without) are searched for their top 1000, and the run is scored by
mteb's own `calculate_retrieval_scores` (pytrec_eval for nDCG/MAP/recall/precision, mteb's MRR), so the numbers
mean what they mean on the MTEB leaderboard. The main score is nDCG@10.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from embtools.encode.cached_encoder import CachedEncoder
from embtools.instructions import with_instruction
from embtools.records.datasets import RetrievalData

MAIN_SCORE = "ndcg_at_10"
TOP_K = 1000


def k_values() -> tuple[int, ...]:
    """mteb's cut-offs: (1, 3, 5, 10, 20, 100, 1000)."""
    from mteb.abstasks.retrieval import AbsTaskRetrieval

    return tuple(AbsTaskRetrieval.k_values)


def corpus_records(corpus: dict[str, str], encoder: CachedEncoder, chunk_size: int = 4096) -> Iterator[dict]:
    """Embedding records ({"id", "embedding"}: a float32 array) of the corpus, L2-normalized, chunk by chunk."""
    ids = list(corpus)
    encoder.progress.show(stage="corpus")
    for start in range(0, len(ids), chunk_size):
        chunk = ids[start:start + chunk_size]
        vectors = encoder.embed([corpus[i] for i in chunk], normalize=True)
        yield from ({"id": doc_id, "embedding": vector}
                    for doc_id, vector in zip(chunk, vectors))


def search_corpus(data: RetrievalData, encoder: CachedEncoder, instruction: str | None,
                  factory: str = "Flat") -> dict[str, dict[str, float]]:
    """The run: query id -> {doc id: cosine score} for the top min(1000, corpus size) documents of each query."""
    from embtools.index.vector_index import VectorIndex, build_index

    query_ids = list(data.queries)
    encoder.progress.show(stage="queries")
    queries = encoder.embed([with_instruction(data.queries[q], instruction) for q in query_ids], normalize=True)
    with tempfile.TemporaryDirectory(prefix="emb-eval-index-") as work:
        index_dir = Path(work) / "index"
        build_index(corpus_records(data.corpus, encoder), index_dir, factory)
        hits = VectorIndex.load(index_dir).search(np.ascontiguousarray(queries), min(TOP_K, len(data.corpus)))
    return {q: {str(doc): float(score) for doc, score in found} for q, found in zip(query_ids, hits)}


def drop_identical_ids(run: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """mteb's ignore_identical_ids: a document never counts as a hit for the query of the same id."""
    return {q: {doc: s for doc, s in docs.items() if doc != q} for q, docs in run.items()}


def retrieval_scores(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """mteb's retrieval score dict (ndcg_at_k, map_at_k, recall_at_k, precision_at_k, mrr_at_k, ...)."""
    from mteb._evaluators.retrieval_metrics import calculate_retrieval_scores, make_score_dict

    result = calculate_retrieval_scores(run, qrels, list(k_values()))
    scores = make_score_dict(ndcg=result.ndcg, _map=result.map, recall=result.recall,
                             precision=result.precision, mrr=result.mrr, naucs=result.naucs,
                             naucs_mrr=result.naucs_mrr, hit_rate=result.hit_rate, task_scores={})
    return {**scores, "main_score": scores[MAIN_SCORE]}


def evaluate_retrieval(data: RetrievalData, encoder: CachedEncoder, instruction: str | None,
                       ignore_identical_ids: bool = False) -> dict[str, float]:
    """Search the corpus with every judged query and score the run against the qrels."""
    run = search_corpus(data, encoder, instruction)
    if ignore_identical_ids:
        run = drop_identical_ids(run)
    return retrieval_scores(run, data.qrels)
