"""emb-eval through its real CLI on real data: STS, retrieval, classification, result files, cache, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import orjson
import pytest

from conftest import DATA, REPO, read_jsonl, run_cli, write_jsonl
from embtools.commands.eval import main as emb_eval

MINILM = ["--model", "minilm-l6"]


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A fresh EMBTOOLS_HOME per test: an empty embedding cache."""
    path = tmp_path / "home"
    monkeypatch.setenv("EMBTOOLS_HOME", str(path))
    return path


def run(args):
    """(exit code, metric records, stderr lines) of emb-eval with minilm-l6."""
    return run_cli(emb_eval, [*MINILM, *args])


def main_record(records):
    [main] = [r for r in records if r["main"]]
    return main


@pytest.fixture
def sts_file(tmp_path, sts_dev):
    return write_jsonl(tmp_path / "sts.jsonl", sts_dev[:120])


@pytest.fixture
def beir_folder(tmp_path, sts_dev):
    """A BEIR folder from real pairs: query i is sentence1 of pair i, its one relevant doc sentence2 of pair i."""
    pairs = [p for p in sts_dev if p["score"] >= 4.5][:30]
    folder = tmp_path / "pairs"
    (folder / "qrels").mkdir(parents=True)
    write_jsonl(folder / "corpus.jsonl", [{"_id": f"d{i}", "title": "", "text": p["sentence2"]}
                                          for i, p in enumerate(pairs)])
    write_jsonl(folder / "queries.jsonl", [{"_id": f"q{i}", "text": p["sentence1"]} for i, p in enumerate(pairs)])
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n"
                                               + "".join(f"q{i}\td{i}\t1\n" for i in range(len(pairs))))
    return folder


@pytest.fixture
def genre_folder(tmp_path):
    """Classification from real data: STS Benchmark sentences labelled by genre (news, captions, forum)."""
    rows = read_jsonl(DATA / "stsbenchmark" / "train.jsonl")
    by_genre: dict[str, list[str]] = {}
    for row in rows:
        by_genre.setdefault(row["genre"], []).append(row["sentence1"])
    folder = tmp_path / "genres"
    folder.mkdir()
    for split, part in (("train", slice(0, 24)), ("test", slice(100, 140))):
        write_jsonl(folder / f"{split}.jsonl", [{"text": t, "label": g} for g, texts in sorted(by_genre.items())
                                                for t in texts[part]])
    return folder


def test_sts_equals_sentence_transformers_spearman(sts_file, sts_dev):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    from embtools.models.loading import resolve_model_path

    code, records, _ = run([sts_file])
    pairs = sts_dev[:120]
    evaluator = EmbeddingSimilarityEvaluator([p["sentence1"] for p in pairs], [p["sentence2"] for p in pairs],
                                             [p["score"] / 5 for p in pairs])
    expected = evaluator(SentenceTransformer(str(resolve_model_path("minilm-l6")), device="cpu"))
    main = main_record(records)
    assert code == 0
    assert (main["task"], main["split"], main["metric"]) == ("sts", "test", "cosine_spearman")
    assert main["value"] == pytest.approx(expected["spearman_cosine"], abs=1e-4)
    pearson = next(r for r in records if r["metric"] == "cosine_pearson")
    assert pearson["value"] == pytest.approx(expected["pearson_cosine"], abs=1e-4)
    assert all(set(r) == {"task", "split", "subset", "languages", "type", "metric", "value", "main", "model"}
               for r in records)


def brute_force_scores(folder, minilm, skip_own_id=False) -> dict[str, float]:
    """pytrec_eval's mean nDCG@10 and recall@1 of every query against every document of a BEIR folder (`d{i}` is the
    one relevant document of `q{i}`), optionally leaving out the document with the query's own id."""
    import pytrec_eval

    corpus, queries = read_jsonl(folder / "corpus.jsonl"), read_jsonl(folder / "queries.jsonl")
    scores = minilm.encode([q["text"] for q in queries]) @ minilm.encode([d["text"] for d in corpus]).T
    run_dict = {q["_id"]: {d["_id"]: float(s) for d, s in zip(corpus, row)
                           if not (skip_own_id and d["_id"] == q["_id"])} for q, row in zip(queries, scores)}
    qrels = {q["_id"]: {f"d{q['_id'][1:]}": 1} for q in queries}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.1"}).evaluate(run_dict).values()
    return {"ndcg_at_10": np.mean([v["ndcg_cut_10"] for v in per_query]),
            "recall_at_1": np.mean([v["recall_1"] for v in per_query])}


def test_retrieval_metrics_equal_pytrec_eval_on_a_brute_force_run(beir_folder, minilm):
    code, records, _ = run([beir_folder])
    expected = brute_force_scores(beir_folder, minilm)
    values = {r["metric"]: r["value"] for r in records}
    assert code == 0
    assert main_record(records)["metric"] == "ndcg_at_10"
    assert values["ndcg_at_10"] == pytest.approx(expected["ndcg_at_10"], abs=1e-5)
    assert values["recall_at_1"] == pytest.approx(expected["recall_at_1"], abs=1e-5)
    assert {"map_at_100", "mrr_at_10", "precision_at_3", "recall_at_1000"} <= set(values)


def test_identical_ids_are_ignored_only_when_asked(beir_folder, minilm):
    """Each query's own text joins the corpus under the query's id (as in ArguAna): without --ignore-identical-ids it
    is every query's first hit; with it, the scores are those of a run that never saw those documents."""
    queries = read_jsonl(beir_folder / "queries.jsonl")
    with open(beir_folder / "corpus.jsonl", "ab") as corpus:
        corpus.write(b"".join(orjson.dumps({"_id": q["_id"], "title": "", "text": q["text"]}) + b"\n" for q in queries))
    counted = {r["metric"]: r["value"] for r in run([beir_folder])[1]}
    ignored = {r["metric"]: r["value"] for r in run([beir_folder, "--ignore-identical-ids"])[1]}
    expected = brute_force_scores(beir_folder, minilm, skip_own_id=True)
    assert counted["recall_at_1"] == 0 and expected["recall_at_1"] > 0.5
    assert ignored["recall_at_1"] == pytest.approx(expected["recall_at_1"], abs=1e-5)
    assert ignored["ndcg_at_10"] == pytest.approx(expected["ndcg_at_10"], abs=1e-5)


def test_max_corpus_slice_is_named_in_the_task(tmp_path):
    source = DATA / "scifact"
    folder = tmp_path / "scifact"
    (folder / "qrels").mkdir(parents=True)
    qrels = (source / "qrels" / "test.tsv").read_text().splitlines()[:13]
    (folder / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n")
    shutil.copy(source / "queries.jsonl", folder / "queries.jsonl")
    judged = {line.split("\t")[1] for line in qrels[1:]}
    docs = read_jsonl(source / "corpus.jsonl")
    write_jsonl(folder / "corpus.jsonl", [d for d in docs if d["_id"] in judged] + docs[:40])
    code, records, _ = run([folder, "--max-corpus", 30, "--max-queries", 5])
    assert code == 0
    assert main_record(records)["task"] == "SciFact[30 docs, 5 queries]"


def test_classification_follows_mteb_and_beats_chance(genre_folder):
    code, records, _ = run([genre_folder])
    values = {r["metric"]: r["value"] for r in records}
    assert code == 0
    assert main_record(records)["metric"] == "accuracy"
    assert values["accuracy"] > 0.5  # three balanced genres: chance is 1/3
    assert {"f1", "f1_weighted", "precision", "recall"} <= set(values)
    # mteb's average precision is NaN for three labels: no record rather than `"value": null`, which --compare and
    # --report refuse to read back
    assert "ap" not in values and all(isinstance(value, float) for value in values.values())


def test_output_folder_is_read_by_mteb(sts_file, tmp_path):
    from mteb import TaskResult

    code, records, _ = run([sts_file, "--output-folder", tmp_path / "results"])
    [path] = (tmp_path / "results").glob("*/*/sts.json")
    result = TaskResult.from_disk(path)
    assert code == 0
    assert path.parent.parent.name == "sentence-transformers__all-MiniLM-L6-v2"
    assert (path.parent / "model_meta.json").exists()
    assert result.task_name == "sts"
    assert result.get_score() == pytest.approx(main_record(records)["value"], abs=1e-6)
    assert not list(path.parent.glob(".*"))  # no temporaries left behind


def test_second_run_is_served_by_the_cache(sts_file, monkeypatch):
    code1, first, _ = run([sts_file])
    from embtools.encode.encoder import Encoder

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded although every text is cached")

    monkeypatch.setattr(Encoder, "__init__", no_model)
    code2, second, err = run([sts_file])
    assert (code1, code2) == (0, 0)
    assert second == first
    assert any("0 texts encoded" in line for line in err)


def test_no_cache_bypasses_the_cache(sts_file, home):
    code, _, err = run([sts_file, "--no-cache"])
    assert code == 0
    assert not (home / "cache" / "embeddings.sqlite").exists()


def test_corrupt_cache_is_refused_in_one_line(sts_file, home):
    (home / "cache").mkdir(parents=True)
    (home / "cache" / "embeddings.sqlite").write_bytes(b"this is not a database" * 100)
    code, records, err = run([sts_file])
    assert code == 1
    assert records == []
    assert len(err) == 1 and "corrupt" in err[0] and "--no-cache" in err[0]


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir(), "unknown data folder"),
    (lambda p: p.write_text('{"text": "no pair here"}\n'), "unknown data file"),
    (lambda p: None, "no such file or folder"),
])
def test_data_of_unknown_shape_is_one_line_error(tmp_path, make, message):
    path = tmp_path / "data"
    make(path)
    code, records, err = run([path])
    assert code == 1 and records == []
    assert len(err) == 1 and err[0].startswith("emb-eval: error: ") and message in err[0]


def test_missing_qrels_and_malformed_sts_line(beir_folder, tmp_path, sts_dev):
    (beir_folder / "qrels" / "test.tsv").rename(beir_folder / "qrels" / "dev.tsv")
    code, _, err = run([beir_folder])
    assert code == 1 and len(err) == 1 and "no qrels for split 'test'" in err[0] and "dev" in err[0]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(p) + "\n" for p in sts_dev[:2]) + '{"sentence1": "a", "sentence2": "b", '
                   '"score": "high"}\n')
    code, _, err = run([bad])
    assert code == 1 and len(err) == 1 and "line 3" in err[0] and '"score"' in err[0]


def test_mteb_task_without_local_data_says_how_to_get_it(tmp_path):
    """In a fresh process: --offline must reach the Hugging Face libraries before their first import."""
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run([str(REPO / "bin" / "emb-eval"), *MINILM, "--offline", "mteb:SciFact"],
                            capture_output=True, text=True, env=env, timeout=300)
    err = result.stderr.splitlines()
    assert result.returncode == 1 and result.stdout == ""
    assert len(err) == 1 and "not in the local Hugging Face cache" in err[0], err


def test_unknown_mteb_task_and_conflicting_instruction_flags(sts_file):
    code, _, err = run(["mteb:NoSuchTask123"])
    assert code == 1 and len(err) == 1 and "no such task" in err[0]
    code, _, err = run([sts_file, "--instruction", "x", "--no-instruction"])
    assert code == 2


def test_bin_wrapper_runs():
    result = subprocess.run([str(REPO / "bin" / "emb-eval"), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--max-corpus" in result.stdout


@pytest.mark.slow
def test_sts_benchmark_dev_equals_sentence_transformers_to_4_decimals(sts_dev):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    from embtools.models.loading import resolve_model_path

    code, records, _ = run([DATA / "stsbenchmark" / "dev.jsonl"])
    evaluator = EmbeddingSimilarityEvaluator([p["sentence1"] for p in sts_dev], [p["sentence2"] for p in sts_dev],
                                             [p["score"] / 5 for p in sts_dev])
    expected = evaluator(SentenceTransformer(str(resolve_model_path("minilm-l6")), device="cpu"))
    main = main_record(records)
    assert code == 0 and main["task"] == "STSBenchmark"
    assert round(main["value"], 4) == round(expected["spearman_cosine"], 4)


@pytest.mark.slow
def test_scifact_reproduces_the_published_ndcg_at_10():
    code, records, _ = run([DATA / "scifact"])
    main = main_record(records)
    assert code == 0 and (main["task"], main["metric"]) == ("SciFact", "ndcg_at_10")
    assert main["value"] == pytest.approx(0.6451, abs=0.005)
