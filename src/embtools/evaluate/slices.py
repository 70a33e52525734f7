"""Smaller evaluations that stay honest: a seeded sample of the queries, a corpus of exactly N documents that
keeps every document judged for an evaluated query plus a seeded sample of the others, and a seeded sample of
STS pairs.

Each slice adds a note (`1000 docs`, `50 queries`, `500 pairs`) that emb-eval puts into the task name:
`SciFact[1000 docs]`.
"""

from __future__ import annotations

import random

from embtools.errors import EmbtoolsError
from embtools.records.datasets import RetrievalData, StsData


def limit_queries(data: RetrievalData, max_queries: int | None, seed: int) -> RetrievalData:
    """At most `max_queries` queries (a seeded sample, in file order) with their judgements."""
    if max_queries is None or max_queries >= len(data.queries):
        return data
    chosen = set(random.Random(seed).sample(sorted(data.queries), max_queries))
    queries = {q: text for q, text in data.queries.items() if q in chosen}
    qrels = {q: docs for q, docs in data.qrels.items() if q in chosen}
    return RetrievalData(data.corpus, queries, qrels, [*data.note, f"{max_queries} queries"])


def judged_documents(data: RetrievalData) -> set[str]:
    """Ids of corpus documents judged (in qrels) for an evaluated query."""
    return {doc for q in data.queries for doc in data.qrels.get(q, {}) if doc in data.corpus}


def limit_corpus(data: RetrievalData, max_corpus: int | None, seed: int) -> RetrievalData:
    """A corpus of exactly `max_corpus` documents (in file order): all judged ones, then a seeded sample."""
    if max_corpus is None or max_corpus >= len(data.corpus):
        return data
    keep = judged_documents(data)
    if len(keep) > max_corpus:
        raise EmbtoolsError(f"--max-corpus {max_corpus} is smaller than the {len(keep)} documents judged for the "
                            "evaluated queries; raise it or lower --max-queries")
    others = sorted(doc for doc in data.corpus if doc not in keep)
    keep.update(random.Random(seed).sample(others, max_corpus - len(keep)))
    corpus = {doc: text for doc, text in data.corpus.items() if doc in keep}
    return RetrievalData(corpus, data.queries, data.qrels, [f"{max_corpus} docs", *data.note])


def sliced_name(name: str, data: RetrievalData) -> str:
    """`SciFact` -> `SciFact[1000 docs, 50 queries]` when the data was sliced."""
    return f"{name}[{', '.join(data.note)}]" if data.note else name


def limit_pairs(data: StsData, max_pairs: int | None, seed: int) -> tuple[StsData, str | None]:
    """At most `max_pairs` sentence pairs (a seeded sample, in file order) and the note for the task name."""
    if max_pairs is None or max_pairs >= len(data.scores):
        return data, None
    chosen = sorted(random.Random(seed).sample(range(len(data.scores)), max_pairs))
    return StsData([data.sentences1[i] for i in chosen], [data.sentences2[i] for i in chosen],
                   [data.scores[i] for i in chosen]), f"{max_pairs} pairs"
