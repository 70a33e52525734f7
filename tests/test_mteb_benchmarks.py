"""mteb as users run it through emb-eval: tasks, Task@subset and benchmarks selected from mteb's metadata (offline),
--task-type/--language/--dry-run, every subset of a multi-subset task scored and filed under its own name (a locally
built STS task with a subset per STS Benchmark genre), resume from result files, and the Table 1 report."""

from __future__ import annotations

import logging

import pytest

from conftest import run_cli, write_jsonl
from embtools.commands.eval import main as emb_eval
from embtools.errors import EmbtoolsError
from embtools.evaluate.mteb_selection import evaluation_split, planned_runs, select_tasks

GENRES = {"captions": "main-captions", "news": "main-news", "forums": "main-forums"}
PAIRS = 12  # per genre (small: the machine is shared)


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBTOOLS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # selection must need no network


def genre_pairs(sts_dev, genre):
    return [p for p in sts_dev if p["genre"] == genre][:PAIRS]


def sts_task(name, subsets):
    """A local mteb STS task (AbsTaskSTS unchanged, data preloaded) with a subset per entry of `subsets`."""
    from datasets import Dataset
    from mteb.abstasks.sts import AbsTaskSTS
    from mteb.abstasks.task_metadata import TaskMetadata

    from embtools.evaluate.mteb_tasks import preloaded_task

    metadata = TaskMetadata(
        name=name, type="STS", main_score="cosine_spearman", description="STS Benchmark dev by genre",
        reference=None, dataset={"path": "local/stsb-genres", "revision": "local"}, category="t2t",
        eval_splits=["test"], eval_langs={subset: ["eng-Latn"] for subset in subsets}, modalities=["text"],
        date=None, domains=None, task_subtypes=None, license=None, annotations_creators=None, dialect=None,
        sample_creation=None, bibtex_citation=None)
    dataset = {subset: {"test": Dataset.from_list([{k: p[k] for k in ("sentence1", "sentence2", "score")}
                                                   for p in pairs])} for subset, pairs in subsets.items()}
    return preloaded_task(AbsTaskSTS, metadata, dataset)


@pytest.fixture
def genres_task(sts_dev):
    return sts_task("STSBGenres", {s: genre_pairs(sts_dev, g) for s, g in GENRES.items()})


@pytest.fixture(scope="module")
def encoder():
    """minilm-l6, loaded once for the module, without the embedding cache (so `encoded` counts every text)."""
    from embtools.encode.cached_encoder import CachedEncoder
    from embtools.encode.encoder import EncodeSettings

    return CachedEncoder("minilm-l6", EncodeSettings(dtype="float32"), cache=None)


def names(tasks):
    return [t.metadata.name for t in tasks]


def test_benchmarks_tasks_and_subsets_are_selected_from_mteb_metadata_offline():
    import mteb

    assert len(select_tasks(["MTEB(eng, v2)"])) == 41
    sts = select_tasks(["MTEB(eng, v2)"], task_types=["STS"])
    assert names(sts) == ["BIOSSES", "SICK-R", "STS12", "STS13", "STS14", "STS15", "STSBenchmark", "STS17",
                          "STS22.v2"]
    assert [t.hf_subsets for t in sts[-2:]] == [["en-en"], ["en"]]  # the benchmark's own subsets
    [msmarco] = select_tasks(["MSMARCO"])
    assert evaluation_split(msmarco, None) == "dev"
    with pytest.raises(EmbtoolsError, match="no split 'test'"):
        evaluation_split(msmarco, "test")
    [sts22] = select_tasks(["STS22@de-en"])
    assert planned_runs(sts22, None) == [{"task": "STS22", "type": "STS", "split": "test", "subset": "de-en",
                                          "languages": ["deu-Latn", "eng-Latn"]}]
    [german] = select_tasks(["STS22"], languages=["deu"])
    assert german.hf_subsets == ["de", "de-en", "de-fr", "de-pl"]
    assert mteb.get_benchmark("MTEB(eng, v2)").tasks[-1].hf_subsets == ["en"]  # mteb's own objects untouched


@pytest.mark.parametrize("names_, filters, message", [
    (["STS22@xx"], {}, "no such subset (it has: en, de, es,"),
    (["MTEB(eng, v2)"], {"languages": ["deu"]}, "no mteb task of MTEB(eng, v2) matches"),  # filters never widen
    (["NoSuchBenchmark(x)"], {}, "no such task or benchmark"),
])
def test_selection_errors_say_what_is_there(names_, filters, message):
    with pytest.raises(EmbtoolsError) as error:
        select_tasks(names_, **filters)
    assert message in str(error.value)


def test_dry_run_lists_a_record_per_task_and_subset_without_loading_a_model(monkeypatch):
    from embtools.encode.encoder import Encoder

    monkeypatch.setattr(Encoder, "__init__", lambda *a, **k: pytest.fail("the model was loaded in a dry run"))
    code, records, err = run_cli(emb_eval, ["--dry-run", "mteb:MTEB(eng, v2)", "--task-type", "STS",
                                            "mteb:STS22", "mteb:MSMARCO", "--language", "eng", "--split", "test"])
    assert code == 0
    assert len(records) == 9 + 5  # STS22 subsets with English: en, de-en, es-en, pl-en, zh-en
    assert records[0] == {"task": "BIOSSES", "type": "STS", "split": "test", "subset": "default",
                          "languages": ["eng-Latn"]}
    assert {r["subset"] for r in records if r["task"] == "STS22"} == {"en", "de-en", "es-en", "pl-en", "zh-en"}
    assert "warning: mteb:MSMARCO: no task matches --task-type STS and --language eng; skipped" in err[0]
    assert err[-1].endswith("10 tasks, 14 subsets would run")


def test_every_subset_is_scored_and_labelled(genres_task, encoder, sts_dev, tmp_path):
    from embtools.evaluate.mteb_run import evaluate_task
    from embtools.evaluate.results import outcome_records
    from embtools.evaluate.run import EvalOptions
    from embtools.evaluate.sts import evaluate_sts
    from embtools.records.datasets import StsData

    outcomes = evaluate_task(genres_task, encoder, EvalOptions(split=None))
    assert [o.subset for o in outcomes] == list(GENRES)
    for outcome, genre in zip(outcomes, GENRES.values()):
        # each subset's score is emb-eval's own STS evaluator on exactly that genre's pairs
        pairs = genre_pairs(sts_dev, genre)
        own = evaluate_sts(StsData(*([p[k] for p in pairs] for k in ("sentence1", "sentence2", "score"))), encoder,
                           None)
        assert outcome.scores["main_score"] == pytest.approx(own["main_score"], abs=1e-6)
    assert len({o.scores["main_score"] for o in outcomes}) == 3
    records = [r for o in outcomes for r in outcome_records(o, "minilm-l6")]
    mains = [r for r in records if r["main"]]
    assert [(r["task"], r["split"], r["subset"], r["languages"], r["type"], r["metric"]) for r in mains] == [
        ("STSBGenres", "test", s, ["eng-Latn"], "STS", "cosine_spearman") for s in GENRES]


def test_local_data_records_carry_the_same_labels(sts_dev, tmp_path):
    code, records, _ = run_cli(emb_eval, ["-m", "minilm-l6", write_jsonl(tmp_path / "news.jsonl",
                                                                         genre_pairs(sts_dev, "main-news"))])
    assert code == 0 and records
    assert {(r["subset"], tuple(r["languages"]), r["type"]) for r in records} == {("default", ("eng-Latn",), "STS")}


def test_result_file_holds_every_subset_under_its_name_and_mteb_reads_it(genres_task, encoder, tmp_path):
    from mteb import TaskResult

    from embtools.evaluate.mteb_encoder import model_meta
    from embtools.evaluate.mteb_run import evaluate_task
    from embtools.evaluate.results import ResultFolder
    from embtools.evaluate.run import EvalOptions

    outcomes = evaluate_task(genres_task, encoder, EvalOptions(split=None))
    path = ResultFolder(tmp_path / "results", model_meta(encoder)).save(outcomes)
    result = TaskResult.from_disk(path)
    entries = result.scores["test"]
    assert path.name == "STSBGenres.json" and path.parent.parent.name == "sentence-transformers__all-MiniLM-L6-v2"
    assert [(e["hf_subset"], e["languages"]) for e in entries] == [(s, ["eng-Latn"]) for s in GENRES]
    for entry, outcome in zip(entries, outcomes):
        assert entry["main_score"] == pytest.approx(outcome.scores["main_score"], abs=1e-6)
    mean = sum(o.scores["main_score"] for o in outcomes) / 3
    assert result.get_score() == pytest.approx(mean, abs=1e-6)


def test_a_killed_run_resumes_skipping_tasks_whose_result_files_exist(genres_task, sts_dev, encoder, tmp_path,
                                                                      caplog):
    from embtools.evaluate.mteb_encoder import model_meta
    from embtools.evaluate.mteb_run import run_tasks
    from embtools.evaluate.results import ResultFolder
    from embtools.evaluate.run import EvalOptions

    results = ResultFolder(tmp_path / "results", model_meta(encoder))
    single = sts_task("STSBNews", {"default": genre_pairs(sts_dev, "main-news")[:8]})
    first = list(run_tasks([genres_task], encoder, EvalOptions(split=None), results))  # killed after one task
    encoded_before = encoder.encoded
    with caplog.at_level(logging.INFO, logger="embtools"):
        second = list(run_tasks([genres_task, single], encoder, EvalOptions(split=None), results))
    assert encoder.encoded - encoded_before == 16  # only STSBNews's 8 pairs were encoded
    assert any(f"STSBGenres test: skipped, {results.path('STSBGenres')} exists" in m for m in caplog.messages)
    assert [(o.subset, round(o.scores["main_score"], 6)) for o in second[0]] == [
        (o.subset, round(o.scores["main_score"], 6)) for o in first[0]]
    assert [o.task for o in second[1]] == ["STSBNews"] and results.path("STSBNews").is_file()


def test_report_has_table_1_layout_beside_compared_runs(tmp_path):
    from embtools.evaluate.report import write_report

    def record(model, task, type_, value, subset="default"):
        return {"task": task, "split": "test", "subset": subset, "type": type_, "metric": "m", "value": value,
                "main": True, "model": model}

    records = [record("base", "SciFact", "Retrieval", 0.5), record("base", "STSB", "STS", 0.7),
               record("ours", "SciFact", "Retrieval", 0.6), record("ours", "STSB", "STS", 0.8),
               record("ours", "STS22", "STS", 0.4, "de"), record("ours", "STS22", "STS", 0.6, "en")]
    written = write_report(records, tmp_path / "report.md")
    lines = (tmp_path / "report.md").read_text().splitlines()
    assert written["models"] == ["base", "ours"]
    assert "| model | Retr. (1) | STS (2) | Avg (3) |" in lines
    assert "| `base` | 50.00 | 70.00* | 60.00* |" in lines  # base has only one of the two STS tasks
    assert "| `ours` | 60.00 | 65.00 | 63.33 |" in lines  # STS22 counts once, as the mean of its subsets
    assert "| STS22 | test | m | - | 0.5000 |" in lines
