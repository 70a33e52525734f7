"""The evaluation data formats: tell a DATA argument's shape apart, and the one reader of each format.

- an STS file: JSONL with `sentence1`, `sentence2`, `score` (the file is the split);
- a bitext file: JSONL with `sentence1`, `sentence2` and no `score`, each `sentence2` the translation of its
  `sentence1` (mteb's BitextMining layout; the file is the split);
- a BEIR retrieval folder: `corpus.jsonl` (`_id`, `title`, `text`), `queries.jsonl` (`_id`, `text`),
  `qrels/<split>.tsv` (`query-id`, `corpus-id`, `score`, tab-separated, an optional header);
- a classification folder: `train.jsonl` and `<split>.jsonl` with `text` and `label`;
- each `.jsonl` file of these may also come as `.jsonl.gz`, `.jsonl.zst` or `.parquet` (BEIR on the hub ships
  `corpus.jsonl.gz`): `record_file` finds it;
- `hf://datasets/ORG/NAME`: a BEIR data set on the hub (BeIR's or mteb's layout), downloaded and read as a folder
  (records.hub_beir); its qrels may be record files (`query-id`, `corpus-id`, `score`) as well as TSV;
- `mteb:TaskName`: a task of the installed mteb.

Evaluation, labeled data, decontamination and negative mining all read through these functions, so every stage
checks a record the same way and fails with one line naming the file and the line at the first bad record.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Container, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from embtools.errors import EmbtoolsError, InputError
from embtools.instructions import TASK_NAMES_BY_PATH, document_text
from embtools.records.formats import RECORD_SUFFIXES, record_file, record_stem
from embtools.records.hub_datasets import hub_name, is_hub_dataset
from embtools.records.jsonl import read_records, require_string

# The file names of the two folder formats.
CORPUS, QUERIES, QRELS = "corpus.jsonl", "queries.jsonl", "qrels"
EVALUATION_SPLIT = "test"  # the split evaluated, and kept out of training data, unless told otherwise
TRAIN = "train.jsonl"  # a classification folder's training texts; every other file is a split to evaluate

_SPLIT_NAMES = {"train", "dev", "validation", "val", "test"}
# mteb (and the Hugging Face copies it loads) call the development split "validation".
_SPLIT_ALIASES = {"dev": "validation", "val": "validation"}


@dataclass
class DataSource:
    """One DATA argument: its kind (sts, bitext, retrieval, classification, mteb, passkey), where it is, and its
    task name."""

    kind: str
    name: str
    path: Path | None = None
    length: int | None = None  # passkey: tokens per document


@dataclass
class StsData:
    sentences1: list[str]
    sentences2: list[str]
    scores: list[float]


@dataclass
class BitextData:
    """Aligned sentences: sentences2[i] is the translation of sentences1[i]."""

    sentences1: list[str]
    sentences2: list[str]


@dataclass
class RetrievalData:
    """corpus: doc id -> text as the model reads it (`title text`); queries: id -> text; qrels: qid -> {doc: rel}."""

    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    note: list[str] = field(default_factory=list)  # how the data was sliced, for the task name


@dataclass
class ClassificationData:
    train_texts: list[str]
    train_labels: list
    test_texts: list[str]
    test_labels: list


def task_name_for(path: Path) -> str:
    """`scifact` -> SciFact, `stsbenchmark/dev.jsonl` -> STSBenchmark; an unknown name is kept as written."""
    stem = record_stem(path.name)
    if stem.lower() in _SPLIT_NAMES and path.parent.name:
        stem = path.resolve().parent.name
    return TASK_NAMES_BY_PATH.get(stem.lower(), stem)


def split_of_file(path: Path) -> str:
    """An STS file's split, from its name: `dev.jsonl` -> validation; any other name counts as test."""
    stem = path.name.split(".")[0].lower()
    return _SPLIT_ALIASES.get(stem, stem) if stem in _SPLIT_NAMES else EVALUATION_SPLIT


def detect(argument: str) -> DataSource:
    """The kind of one DATA argument, without loading it (a BEIR data set on the hub is downloaded, not read)."""
    if argument.startswith("mteb:"):
        return DataSource("mteb", argument[len("mteb:"):])
    if is_hub_dataset(argument):
        folder = beir_folder(argument)
        return DataSource("retrieval", task_name_for(folder), folder)
    path = Path(argument)
    if path.is_dir():
        return DataSource(_folder_kind(path), task_name_for(path), path)
    if path.is_file():
        return DataSource(_file_kind(path), task_name_for(path), path)
    raise EmbtoolsError(f"{argument}: no such file or folder")


def _folder_kind(path: Path) -> str:
    if record_file(path / CORPUS).is_file() and record_file(path / QUERIES).is_file():
        return "retrieval"
    if record_file(path / TRAIN).is_file():
        return "classification"
    raise EmbtoolsError(f"{path}: unknown data folder: expected corpus.jsonl + queries.jsonl + qrels/ (retrieval) "
                        "or train.jsonl + test.jsonl (classification)")


def _file_kind(path: Path) -> str:
    """`sts` for a file of sentence1, sentence2, score; `bitext` for sentence1, sentence2 without a score."""
    try:
        with closing(read_records(path)) as records:
            record = next(records, {})
    except InputError:
        record = {}
    if {"sentence1", "sentence2"} <= set(record):
        return "sts" if "score" in record else "bitext"
    raise EmbtoolsError(f"{path}: unknown data file: expected JSONL with sentence1, sentence2, score (STS) or "
                        "sentence1, sentence2 (bitext), a retrieval folder or a classification folder")


def beir_folder(argument: str | Path) -> Path:
    """A BEIR folder: the one named, or for `hf://datasets/ORG/NAME` a folder of links to its downloaded files
    (records.hub_beir)."""
    if is_hub_dataset(argument):
        from embtools.records.hub_beir import hub_beir_folder

        return hub_beir_folder(argument)
    return Path(argument)


def file_name(path: Path) -> str:
    """How errors name a data file: its path, or `hf://datasets/ORG/NAME/PATH` for a file downloaded from the hub."""
    return hub_name(path) or str(path)


def folder_name(folder: Path) -> str:
    """How messages and `meta` name a BEIR folder: its path, or the `hf://datasets/ORG/NAME` it was made from."""
    from embtools.records.hub_beir import made_for

    made = made_for(folder)
    return made[0] if made else str(folder)


def _records(path: Path, validate):
    """read_records with the file's name in front of any error."""
    try:
        yield from read_records(path, validate)
    except InputError as exc:
        raise EmbtoolsError(f"{file_name(path)}: {exc}") from None


def _pair_record(record: dict) -> dict:
    require_string(record, "sentence1")
    require_string(record, "sentence2")
    return record


def _sts_record(record: dict) -> dict:
    _pair_record(record)
    if isinstance(record.get("score"), bool) or not isinstance(record.get("score"), (int, float)):
        raise InputError('field "score" must be a number')
    return record


def sts_pairs(path: Path) -> Iterator[dict]:
    """The records of an STS file, each checked (`sentence1`, `sentence2` strings, a numeric `score`), streamed."""
    return _records(path, _sts_record)


def _all_pairs(pairs: Iterator[dict], path: Path) -> tuple[list[dict], list[str], list[str]]:
    """(records, sentence1s, sentence2s) of a file of sentence pairs; an error when it has none."""
    rows = list(pairs)
    if not rows:
        raise EmbtoolsError(f"{path}: no sentence pairs")
    return rows, [r["sentence1"] for r in rows], [r["sentence2"] for r in rows]


def load_sts(path: Path) -> StsData:
    """Sentence pairs and gold scores of an STS file."""
    rows, sentences1, sentences2 = _all_pairs(sts_pairs(path), path)
    return StsData(sentences1, sentences2, [float(r["score"]) for r in rows])


def bitext_pairs(path: Path) -> Iterator[dict]:
    """The records of a bitext file, each checked (`sentence1`, `sentence2` strings), streamed."""
    return _records(path, _pair_record)


def load_bitext(path: Path) -> BitextData:
    """The aligned sentences of a bitext file."""
    return BitextData(*_all_pairs(bitext_pairs(path), path)[1:])


def _beir_record(record: dict) -> dict:
    if "_id" not in record and "id" not in record:
        raise InputError('field "_id" is missing')
    require_string(record, "text")
    require_string(record, "title", optional=True)
    return record


def beir_texts(path: Path, wanted: Container[str] | None = None) -> Iterator[tuple[str, str]]:
    """(id, text as the model reads it: `title text`) of a BEIR corpus or queries file, in file order, streamed.

    Every record is checked, also those not `wanted`; with `wanted`, only the ids in it are yielded (a corpus of
    millions of documents is never held whole when only its judged documents are needed)."""
    for record in _records(path, _beir_record):
        record_id = str(record.get("_id", record.get("id")))
        if wanted is None or record_id in wanted:
            yield record_id, document_text(record["text"], record.get("title"))


def qrels_file(folder: Path, split: str, option: str = "--split") -> Path:
    """`qrels/<split>.tsv` of a BEIR folder (or `qrels/<split>.jsonl`, `.parquet`... of records with `query-id`,
    `corpus-id`, `score`, as mteb's copies on the hub have them); an error naming the splits it has (and `option`)
    when it is missing."""
    path = folder / QRELS / f"{split}.tsv"
    if not path.is_file():
        path = record_file(path.with_suffix(".jsonl"))
    if not path.is_file():
        have = sorted({record_stem(p.name).removesuffix(".tsv") for p in (folder / QRELS).glob("*")
                       if p.name.endswith((".tsv", *RECORD_SUFFIXES))})
        raise EmbtoolsError(f"{folder_name(folder)}/{QRELS}/{split}.tsv: no qrels for split {split!r}"
                            + (f" (this folder has: {', '.join(have)}; choose one with {option})" if have else ""))
    return path


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    """BEIR qrels: query id -> {doc id: relevance}; a header line is skipped. A record file (`.jsonl`, `.parquet`...)
    holds them as `query-id`, `corpus-id`, `score` fields."""
    if path.name.endswith(RECORD_SUFFIXES):
        return _record_qrels(path)
    qrels: dict[str, dict[str, int]] = {}
    number = 0
    try:
        with open(path, newline="", encoding="utf-8") as stream:
            for number, row in enumerate(csv.reader(stream, delimiter="\t"), start=1):
                _add_judgement(qrels, row, number, path)
    except UnicodeDecodeError:
        raise EmbtoolsError(f"{file_name(path)}: not valid UTF-8") from None
    except csv.Error as exc:
        raise EmbtoolsError(f"{file_name(path)}: line {number + 1}: {exc}") from None
    return qrels


def _add_judgement(qrels: dict[str, dict[str, int]], row: list[str], number: int, path: Path) -> None:
    if not row or (number == 1 and row[-1].strip().lower() == "score"):
        return
    if len(row) < 3 or not row[-1].strip().lstrip("-").isdigit():
        raise EmbtoolsError(f"{file_name(path)}: line {number}: expected query-id<TAB>corpus-id<TAB>score")
    qrels.setdefault(row[0], {})[row[-2]] = int(row[-1])


def _qrels_record(record: dict) -> dict:
    for name in ("query-id", "corpus-id"):
        if isinstance(record.get(name), bool) or not isinstance(record.get(name), (str, int)):
            raise InputError(f'field "{name}" must be a string or an integer')
    if isinstance(record.get("score"), bool) or not isinstance(record.get("score"), int):
        raise InputError('field "score" must be an integer')
    return record


def _record_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for record in _records(path, _qrels_record):
        qrels.setdefault(str(record["query-id"]), {})[str(record["corpus-id"])] = record["score"]
    return qrels


def load_retrieval(path: Path, split: str) -> RetrievalData:
    """A BEIR folder's corpus, the queries judged in qrels/<split>.tsv, and those judgements."""
    qrels_path = qrels_file(path, split)
    qrels = {q: docs for q, docs in load_qrels(qrels_path).items() if docs}
    queries = dict(beir_texts(record_file(path / QUERIES), qrels))
    if not queries:
        raise EmbtoolsError(f"{file_name(qrels_path)}: none of its query ids is in "
                            f"{file_name(record_file(path / QUERIES))}")
    return RetrievalData(dict(beir_texts(record_file(path / CORPUS))), queries, qrels)


def judged_texts(folder: Path, qrels: dict[str, Iterable[str]]) -> tuple[dict[str, str], dict[str, str]]:
    """(query id -> text, doc id -> text) of the queries and documents `qrels` names, read from a BEIR folder;
    the rest of the corpus is checked as it streams past but never held."""
    judged = {doc for docs in qrels.values() for doc in docs}
    return (dict(beir_texts(record_file(folder / QUERIES), qrels)),
            dict(beir_texts(record_file(folder / CORPUS), judged)))


def _labelled_record(record: dict) -> dict:
    require_string(record, "text")
    if "label" not in record or isinstance(record["label"], (dict, list)) or record["label"] is None:
        raise InputError('field "label" is missing or not a single value')
    return record


def labelled_records(path: Path) -> Iterator[dict]:
    """The records of one file of a classification folder, each checked (a `text` string, a single `label`)."""
    return _records(path, _labelled_record)


def evaluation_files(folder: Path) -> list[Path]:
    """The files of a classification folder that hold splits to evaluate: every record file but the training one."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(RECORD_SUFFIXES))
    return [p for p in files if record_stem(p.name) != record_stem(TRAIN)]


def load_classification(path: Path, split: str) -> ClassificationData:
    """Texts and labels of train.jsonl and <split>.jsonl."""
    test_path = record_file(path / f"{split}.jsonl")
    if not test_path.is_file():
        raise EmbtoolsError(f"{test_path}: no such file (a classification folder needs train.jsonl and "
                            f"{split}.jsonl; choose the evaluated split with --split)")
    train_path = record_file(path / TRAIN)
    train = list(labelled_records(train_path))
    test = list(labelled_records(test_path))
    if len({r["label"] for r in train}) < 2:
        raise EmbtoolsError(f"{train_path}: needs at least two labels")
    return ClassificationData([r["text"] for r in train], [r["label"] for r in train],
                              [r["text"] for r in test], [r["label"] for r in test])


def data_revision(source: DataSource) -> str:
    """`local-` and the first 12 hex digits of a sha256 over the data files' names, sizes and mtimes; for a data set
    from the hub, its commit."""
    from embtools.records.hub_beir import made_for

    path = source.path
    if made_for(path):
        return made_for(path)[1]
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(f"{file.relative_to(path) if path.is_dir() else file.name}:{stat.st_size}:{stat.st_mtime_ns}\n"
                      .encode())
    return "local-" + digest.hexdigest()[:12]
