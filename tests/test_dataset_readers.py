"""Every stage that reads BEIR, STS or classification data fails the same way on the same bad record: one line
naming the file and the line, never a stray KeyError."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import write_jsonl
from embtools.commands.filter import main as emb_filter
from embtools.errors import EmbtoolsError
from embtools.filter.decontamination import ContaminationIndex
from embtools.filter.labeled_data import beir_examples, sts_examples
from embtools.filter.mining_pool import candidate_texts
from embtools.records.datasets import load_classification, load_retrieval, load_sts

QUERY = "what do statins do to the risk of heart attacks in older adults"
DOCUMENT = "Statins lowered the risk of myocardial infarction in adults over seventy in a large randomized trial."


def beir_folder(root: Path, queries: list[dict], corpus: list[dict]) -> Path:
    folder = root / "tiny"
    (folder / "qrels").mkdir(parents=True)
    write_jsonl(folder / "queries.jsonl", queries)
    write_jsonl(folder / "corpus.jsonl", corpus)
    for split in ("train", "test"):
        (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td1\t1\n")
    return folder


@pytest.fixture
def query_without_text(tmp_path) -> Path:
    return beir_folder(tmp_path, [{"_id": "q1", "text": QUERY}, {"_id": "q2", "title": "no text"}],
                       [{"_id": "d1", "title": "Statins", "text": DOCUMENT}])


@pytest.fixture
def document_without_text(tmp_path) -> Path:
    return beir_folder(tmp_path, [{"_id": "q1", "text": QUERY}, {"_id": "q2", "text": QUERY + "?"}],
                       [{"_id": "d1", "text": DOCUMENT}, {"_id": "d2", "text": DOCUMENT}, {"_id": "d3"}])


BEIR_READERS = {
    "evaluation": lambda folder: load_retrieval(folder, "test"),
    "labeled data": lambda folder: list(beir_examples(folder, "test", instruction="Retrieve the document")),
    "decontamination": lambda folder: ContaminationIndex().add_source(folder),
}


@pytest.mark.parametrize("reader", BEIR_READERS)
def test_a_query_without_text_is_named_by_file_and_line(query_without_text, reader):
    with pytest.raises(EmbtoolsError) as failure:
        BEIR_READERS[reader](query_without_text)
    assert str(failure.value) == f'{query_without_text / "queries.jsonl"}: line 2: field "text" is missing'


@pytest.mark.parametrize("reader", [*BEIR_READERS, "mining"])
def test_a_document_without_text_is_named_by_file_and_line(document_without_text, reader):
    read = BEIR_READERS.get(reader, lambda folder: list(candidate_texts(folder)))
    with pytest.raises(EmbtoolsError) as failure:
        read(document_without_text)
    assert str(failure.value) == f'{document_without_text / "corpus.jsonl"}: line 3: field "text" is missing'


def test_emb_filter_from_beir_reports_the_bad_query_in_one_line(query_without_text):
    result = CliRunner().invoke(emb_filter, ["--from-beir", str(query_without_text), "--instruction", "x"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f'emb-filter: error: {query_without_text / "queries.jsonl"}: line 2: field "text" is missing']


STS_READERS = {
    "evaluation": load_sts,
    "labeled data": lambda path: list(sts_examples(path)),
    "decontamination": lambda path: ContaminationIndex().add_source(path),
}


@pytest.mark.parametrize("reader", STS_READERS)
@pytest.mark.parametrize("bad, problem", [({"sentence1": "a b", "sentence2": "c d", "score": "high"},
                                           'field "score" must be a number'),
                                          ({"sentence1": "a b", "score": 1.0}, 'field "sentence2" is missing')])
def test_a_bad_sts_pair_is_named_by_file_and_line(tmp_path, reader, bad, problem):
    path = write_jsonl(tmp_path / "dev.jsonl", [{"sentence1": "A man plays.", "sentence2": "A man plays.",
                                                 "score": 5.0}, bad])
    with pytest.raises(EmbtoolsError) as failure:
        STS_READERS[reader](path)
    assert str(failure.value) == f"{path}: line 2: {problem}"


CLASSIFICATION_READERS = {
    "evaluation": lambda folder: load_classification(folder, "test"),
    "decontamination": lambda folder: ContaminationIndex().add_source(folder),
}


@pytest.mark.parametrize("reader", CLASSIFICATION_READERS)
def test_a_test_text_without_a_label_is_named_by_file_and_line(tmp_path, reader):
    write_jsonl(tmp_path / "train.jsonl", [{"text": "good film", "label": 1}, {"text": "bad film", "label": 0}])
    write_jsonl(tmp_path / "test.jsonl", [{"text": "fine film", "label": 1}, {"text": "no label at all"}])
    with pytest.raises(EmbtoolsError) as failure:
        CLASSIFICATION_READERS[reader](tmp_path)
    assert str(failure.value) == (f'{tmp_path / "test.jsonl"}: line 2: '
                                  'field "label" is missing or not a single value')
