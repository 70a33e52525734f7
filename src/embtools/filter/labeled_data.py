"""Real labeled data as example records, so it enters the same pipeline as generated data.

- A BEIR folder (`corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`; or one made from a BEIR data set on the hub,
  records.hub_beir): one `short-long` example per judged (query, document) pair with a positive relevance; the
  document is `title text` as BEIR joins it. The negative is null (fill it with `--mine-negatives`). The
  instruction is the one given, else the E5 instruction known for the dataset (SciFact), else an error asking for
  one.
- An STS file (`sentence1`, `sentence2`, `score`): one `sts` example per pair scoring at least `min_score`
  (default 4.0 of 5), with the paper's STS instruction.
Ids are `<dataset>-<split>-<query id>-<doc id>` and `<dataset>-<file stem>-<pair number>`; `meta.source` says where
each came from.
Only the judged documents of a corpus are held in memory, never the whole corpus.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from embtools.errors import EmbtoolsError
from embtools.filter import defaults
from embtools.instructions import STS_INSTRUCTION, TASK_INSTRUCTIONS
from embtools.records.datasets import (
    folder_name,
    judged_texts,
    load_qrels,
    qrels_file,
    sts_pairs,
    task_name_for,
)
from embtools.records.jsonl import Record


def beir_instruction(folder: Path, instruction: str | None) -> str:
    if instruction:
        return instruction
    name = task_name_for(folder)
    if name in TASK_INSTRUCTIONS:
        return TASK_INSTRUCTIONS[name]
    raise EmbtoolsError(f"--from-beir {folder}: no instruction known for {name}; give one with --instruction")


def beir_examples(folder: Path, split: str = "train", instruction: str | None = None,
                  language: str = "English") -> Iterator[Record]:
    """Example records from the positive judgements of a BEIR folder's qrels/<split>.tsv, in qrels order."""
    folder = Path(folder)
    qrels_path = qrels_file(folder, split)
    instruction = beir_instruction(folder, instruction)
    qrels = {q: [d for d, rel in docs.items() if rel > 0] for q, docs in load_qrels(qrels_path).items()}
    queries, documents = judged_texts(folder, qrels)
    name = task_name_for(folder)
    for query_id, docs in qrels.items():
        for doc_id in docs:
            if query_id in queries and doc_id in documents:
                yield {"id": f"{name}-{split}-{query_id}-{doc_id}", "task_type": "short-long",
                       "instruction": instruction, "query": queries[query_id], "positive": documents[doc_id],
                       "negative": None, "language": language,
                       "meta": {"source": {"dataset": name, "path": folder_name(folder), "split": split,
                                           "query_id": query_id, "doc_id": doc_id}}}


def sts_examples(path: Path, min_score: float = defaults.MIN_STS_SCORE, instruction: str = STS_INSTRUCTION,
                 language: str = "English") -> Iterator[Record]:
    """Example records from the pairs of an STS file that score at least `min_score`, in file order."""
    path = Path(path)
    stem = path.name.split(".")[0]
    for number, pair in enumerate(sts_pairs(path), start=1):
        if pair["score"] >= min_score:
            yield {"id": f"{task_name_for(path)}-{stem}-{number}", "task_type": "sts", "instruction": instruction,
                   "query": pair["sentence1"], "positive": pair["sentence2"], "negative": None,
                   "language": language,
                   "meta": {"source": {"dataset": task_name_for(path), "path": str(path), "score": pair["score"]}}}
