"""The data of `make gpu-check`, built on the spot (the GPU machine gets only the repository, not ../shared).

A seeded vocabulary of made-up words; documents of 24 such words; each query is 4 words of one document, which is
its only relevant document. Written as a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) for emb-eval and as
example records (query -> its document, the next document as the hard negative) for emb-train.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import orjson

INSTRUCTION = "Given a few words, retrieve the document that contains them"
_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


@dataclass
class Slice:
    folder: Path  # the BEIR folder
    examples: Path  # example records for emb-train
    documents: list[str]
    queries: list[str]


def _words(rng: random.Random, count: int) -> list[str]:
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))))
    return sorted(words)


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))


def build_slice(out_dir: Path, documents: int = 256, queries: int = 32, examples: int = 16, seed: int = 0) -> Slice:
    """Write the slice under `out_dir`; the same arguments always write the same files."""
    rng = random.Random(seed)
    vocabulary = _words(rng, 600)
    docs = [" ".join(rng.sample(vocabulary, 24)) for _ in range(documents)]
    asked = [" ".join(rng.sample(doc.split(), 4)) for doc in docs[:max(queries, examples)]]
    folder = out_dir / "retrieval"
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    _write_jsonl(folder / "corpus.jsonl", [{"_id": f"d{i}", "title": "", "text": t} for i, t in enumerate(docs)])
    _write_jsonl(folder / "queries.jsonl", [{"_id": f"q{i}", "text": t} for i, t in enumerate(asked[:queries])])
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(queries)))
    train = out_dir / "examples.jsonl"
    _write_jsonl(train, [{"id": i, "task_type": "short-long", "instruction": INSTRUCTION, "query": asked[i],
                          "positive": docs[i], "negative": docs[(i + 1) % documents], "language": "en", "meta": {}}
                         for i in range(examples)])
    return Slice(folder, train, docs, asked[:queries])
