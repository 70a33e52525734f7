"""Which E5 instruction each task gets (paper Table 15, the A.9 type rules, mteb's prompts, local folders, a warning
where none is known) and each model's own L2-normalization rule, checked against mteb's SentenceTransformer wrapper."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from conftest import DATA, read_jsonl, run_cli, write_jsonl
from embtools.commands.eval import main as emb_eval
from embtools.instructions import (
    BITEXT_INSTRUCTION,
    CQADUPSTACK_INSTRUCTION,
    STS_INSTRUCTION,
    SUMMARIZATION_INSTRUCTION,
    TASK_INSTRUCTIONS,
    task_instruction,
)
from embtools.records.datasets import task_name_for

SCIFACT = "Given a scientific claim, retrieve documents that support or refute the claim"
NO_INSTRUCTION_WARNING = "no E5 instruction known for {}; encoding plain texts; give one with --instruction"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A fresh EMBTOOLS_HOME per test: an empty embedding cache."""
    monkeypatch.setenv("EMBTOOLS_HOME", str(tmp_path / "home"))


@pytest.mark.parametrize("name, task_type, expected", [
    ("SciFact", "Retrieval", SCIFACT),
    ("Banking77Classification", "Classification", "Given a online banking query, find the corresponding intents"),
    ("ArxivClusteringP2P", "Clustering",
     "Identify the main and secondary category of Arxiv papers based on the titles and abstracts"),
    ("TwitterSemEval2015", "PairClassification", "Retrieve tweets that are semantically similar to the given tweet"),
    ("STS12", "STS", STS_INSTRUCTION),  # by type: every STS task
    ("SummEvalSummarization.v2", "Summarization", SUMMARIZATION_INSTRUCTION),
    ("Tatoeba", "BitextMining", BITEXT_INSTRUCTION),
    ("CQADupstackGamingRetrieval", "Retrieval", CQADUPSTACK_INSTRUCTION),
    ("FEVERHardNegatives", "Retrieval", TASK_INSTRUCTIONS["FEVER"]),  # mteb's revisions keep the instruction
    ("StackExchangeClustering.v2", "Clustering", TASK_INSTRUCTIONS["StackExchangeClustering"]),
    ("Touche2020Retrieval.v3", "Retrieval", TASK_INSTRUCTIONS["Touche2020"]),
    ("ArXivHierarchicalClusteringP2P", "Clustering", None),  # not in the paper, and no type rule for clustering
    ("my-labels", "Classification", None),
])
def test_each_task_gets_the_papers_instruction_by_name_or_type(name, task_type, expected):
    assert task_instruction(name, task_type) == expected


def test_mteb_ships_the_papers_strings_as_its_task_prompts():
    """Every task of Table 15 that the installed mteb has carries the paper's instruction as its query prompt."""
    import mteb

    from embtools.evaluate.run import _task_prompt

    checked = {}
    for name, instruction in TASK_INSTRUCTIONS.items():
        try:
            checked[name] = _task_prompt(mteb.get_task(name).metadata) == instruction
        except KeyError:  # CMedQAv1/v2: mteb names them CMedQAv1-reranking/-v2-reranking
            continue
    assert len(checked) >= 60
    assert [name for name, same in checked.items() if not same] == []


@pytest.mark.parametrize("path, name", [
    ("data/scifact", "SciFact"),
    ("beir/trec-covid", "TRECCOVID"),
    ("beir/fiqa", "FiQA2018"),
    ("beir/nfcorpus", "NFCorpus"),
    ("x/banking77classification", "Banking77Classification"),
    ("x/claims", "claims"),
])
def test_local_folders_take_the_listed_task_name(path, name):
    assert task_name_for(Path(path)) == name


def _instruction(encoder, name, task_type, fallback=None, **options):
    from embtools.evaluate.run import EvalOptions, instruction_for

    return instruction_for(name, encoder, EvalOptions(**options), fallback=fallback, task_type=task_type)


def test_instruction_sources_in_order_with_a_warning_where_none_is_known(tiny_decoder, caplog):
    from embtools.encode.cached_encoder import CachedEncoder

    decoder, minilm = CachedEncoder(str(tiny_decoder)), CachedEncoder("minilm-l6")  # neither loads weights yet
    with caplog.at_level(logging.WARNING, logger="embtools"):
        assert _instruction(decoder, "SciFact", "Retrieval", fallback="mteb's") == SCIFACT
        assert _instruction(decoder, "my-sts", "STS") == STS_INSTRUCTION
        assert _instruction(decoder, "NewTask", "Retrieval", fallback="mteb's prompt") == "mteb's prompt"
        assert _instruction(decoder, "claims", "Retrieval", instruction="Find it") == "Find it"
        assert _instruction(decoder, "claims", "Retrieval", use_instruction=False) is None
        assert _instruction(minilm, "claims", "Retrieval") is None  # a plain encoder reads plain text: no warning
        assert caplog.messages == []
        assert _instruction(decoder, "claims", "Retrieval") is None
    assert caplog.messages == [NO_INSTRUCTION_WARNING.format("claims")]


def _beir_slice(folder: Path, queries: int = 6, extra_docs: int = 20) -> Path:
    """A small BEIR folder from the real SciFact: the first test judgements, their documents and a few others."""
    qrels = (DATA / "scifact" / "qrels" / "test.tsv").read_text().splitlines()[:queries + 1]
    judged = {line.split("\t")[1] for line in qrels[1:]}
    asked = {line.split("\t")[0] for line in qrels[1:]}
    docs = read_jsonl(DATA / "scifact" / "corpus.jsonl")
    (folder / "qrels").mkdir(parents=True)
    (folder / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n")
    write_jsonl(folder / "queries.jsonl", [q for q in read_jsonl(DATA / "scifact" / "queries.jsonl")
                                           if q["_id"] in asked])
    write_jsonl(folder / "corpus.jsonl", [d for d in docs if d["_id"] in judged] + docs[:extra_docs])
    return folder


def _scores(model, data, *options):
    code, records, stderr = run_cli(emb_eval, ["--model", model, data, *options])
    assert code == 0, stderr
    return {r["metric"]: r["value"] for r in records}, stderr


def test_a_local_scifact_folder_gets_scifacts_instruction_and_an_unknown_one_a_warning(tmp_path, tiny_decoder):
    scifact = _beir_slice(tmp_path / "scifact")
    default, stderr = _scores(tiny_decoder, scifact)
    explicit, _ = _scores(tiny_decoder, scifact, "--instruction", SCIFACT)
    plain, _ = _scores(tiny_decoder, scifact, "--no-instruction")
    assert default == explicit != plain
    assert not [line for line in stderr if "warning" in line]
    claims = (tmp_path / "scifact").rename(tmp_path / "claims")
    unknown, stderr = _scores(tiny_decoder, claims)
    assert unknown == plain
    assert f"emb-eval: warning: {NO_INSTRUCTION_WARNING.format('claims')}" in stderr


def _model_folder(tmp_path, name: str, source: Path, files: dict[str, object]) -> Path:
    """A model folder `name` whose files link to `source`'s, with `files` written over them (JSON)."""
    folder = tmp_path / name
    folder.mkdir()
    for item in source.iterdir():
        (folder / item.name).symlink_to(item)
    for file_name, value in files.items():
        (folder / file_name).unlink(missing_ok=True)
        (folder / file_name).write_text(json.dumps(value))
    return folder


def test_each_model_declares_its_own_normalization_rule(tmp_path, tiny_decoder):
    from embtools.evaluate.mteb_encoder import normalizes
    from embtools.models.loading import inspect_model, resolve_model_path

    minilm_path = resolve_model_path("minilm-l6")
    modules = json.loads((minilm_path / "modules.json").read_text())
    specs = {
        "minilm-l6": inspect_model("minilm-l6"),  # sentence-transformers, modules end in Normalize
        "decoder": inspect_model(str(tiny_decoder)),  # no sentence-transformers files: embedded the E5 way
        "e5-small-v2": inspect_model(str(_model_folder(tmp_path, "e5-small-v2", minilm_path, {}))),
        "trained": inspect_model(str(_model_folder(tmp_path, "trained", minilm_path, {"training_args.json": {}}))),
        "no-normalize": inspect_model(str(_model_folder(tmp_path, "st", minilm_path, {"modules.json": modules[:2]}))),
    }
    rules = {name: (normalizes(spec, "Classification"), normalizes(spec, "Clustering"))
             for name, spec in specs.items()}
    assert rules == {"minilm-l6": (True, True), "decoder": (False, True), "e5-small-v2": (False, True),
                     "trained": (False, True), "no-normalize": (False, False)}


@pytest.fixture
def source_folder(tmp_path):
    """Classification from real data: STS Benchmark train sentences labelled by genre (news, captions, forum)."""
    by_genre: dict[str, list[str]] = {}
    for row in read_jsonl(DATA / "stsbenchmark" / "train.jsonl"):
        by_genre.setdefault(row["genre"], []).append(row["sentence2"])
    folder = tmp_path / "genres"
    folder.mkdir()
    for split, rows in (("train", slice(0, 16)), ("test", slice(16, 56))):
        write_jsonl(folder / f"{split}.jsonl", [{"text": text, "label": genre}
                                                for genre in sorted(by_genre) for text in by_genre[genre][rows]])
    return folder


def test_minilm_classification_equals_mteb_with_its_own_sentence_transformers_wrapper(source_folder):
    """emb-eval's accuracy is the one mteb gets when it runs the model itself (normalized, as its Normalize module
    makes it), not the one of raw embeddings (E5's rule, which emb-eval once applied to every model)."""
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper
    from sentence_transformers import SentenceTransformer

    from embtools.evaluate.mteb_tasks import classification_task, local_metadata, run_task
    from embtools.models.loading import resolve_model_path
    from embtools.records.datasets import load_classification

    ours, _ = _scores("minilm-l6", source_folder)
    metadata = local_metadata("genres", "Classification", "accuracy", "test", "local")
    task = classification_task(load_classification(source_folder, "test"), metadata, "test")
    model = SentenceTransformerEncoderWrapper(SentenceTransformer(str(resolve_model_path("minilm-l6")), device="cpu"))
    expected = run_task(task, model, "test")["default"]
    assert ours["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-12)
    assert ours["f1"] == pytest.approx(expected["f1"], abs=1e-12)
