"""Two held-out evaluation tasks for the ablation (issue 18.1), made from STS Benchmark dev, which no training set of
the ablation comes from (the labeled sets are SciFact train and STS Benchmark train; the synthetic examples are
decontaminated against STS Benchmark dev):

- OUT/STSDevGenreClassification/: a classification folder (train.jsonl, test.jsonl; `text`, `label`): `sentence1`
  labelled by the pair's genre (news, captions, forums); of each genre's distinct sentences the first TRAIN for
  training, the next TEST for the test split. emb-eval scores it with mteb's protocol (8 samples per label, 10
  experiments).
- OUT/STSDevParaphraseRetrieval/: a BEIR folder, Quora-duplicates style: each `sentence1` of a pair scored >= 4 is a
  query (`q` + its line number) whose relevant document is its `sentence2`; the corpus is every distinct
  `sentence2` of the dev set.

    python examples/heldout_tasks.py DATA/stsbenchmark/dev.jsonl OUT [--train 60 --test 150]

Each folder is written under a temporary name and renamed when complete (embtools' atomic_dir).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from embtools.records.atomic import atomic_dir


def genre_classification(rows: list[dict], train: int, test: int) -> dict[str, list[dict]]:
    by_genre: dict[str, dict[str, None]] = {}  # each genre's distinct sentences, in file order
    for row in rows:
        by_genre.setdefault(row["genre"].removeprefix("main-"), {})[row["sentence1"]] = None
    return {split: [{"text": text, "label": genre} for genre, texts in sorted(by_genre.items())
                    for text in list(texts)[part]]
            for split, part in (("train", slice(0, train)), ("test", slice(train, train + test)))}


def doc_id(text: str) -> str:
    return "d" + hashlib.sha1(text.encode()).hexdigest()[:12]


def paraphrase_retrieval(rows: list[dict], min_score: float = 4.0) -> dict[str, list]:
    corpus = {doc_id(row["sentence2"]): row["sentence2"] for row in rows}
    pairs = [(f"q{line}", row) for line, row in enumerate(rows, start=1) if row["score"] >= min_score]
    return {"corpus.jsonl": [{"_id": key, "title": "", "text": text} for key, text in corpus.items()],
            "queries.jsonl": [{"_id": query, "text": row["sentence1"]} for query, row in pairs],
            "qrels/test.tsv": [("query-id", "corpus-id", "score")]
            + [(query, doc_id(row["sentence2"]), 1) for query, row in pairs]}


def write_folder(folder: Path, files: dict[str, list]) -> None:
    """The files (JSONL rows, or TSV rows for a .tsv name) in `folder`, replaced whole (records/atomic.py)."""
    with atomic_dir(folder, overwrite=True) as partial:
        for name, rows in files.items():
            path = partial / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if name.endswith(".tsv"):
                path.write_text("".join("\t".join(map(str, row)) + "\n" for row in rows))
            else:
                path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sts_dev", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=60)
    parser.add_argument("--test", type=int, default=150)
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.sts_dev.read_text().splitlines() if line.strip()]
    classification = genre_classification(rows, args.train, args.test)
    write_folder(args.out / "STSDevGenreClassification",
                 {f"{split}.jsonl": part for split, part in classification.items()})
    write_folder(args.out / "STSDevParaphraseRetrieval", paraphrase_retrieval(rows))


if __name__ == "__main__":
    main()
