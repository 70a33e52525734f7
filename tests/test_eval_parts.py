"""emb-eval's parts without a model: metrics with known answers, slicing, instructions, the cache, data shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import DATA
from embtools.encode.embedding_cache import EmbeddingCache, model_fingerprint, text_key
from embtools.evaluate.slices import judged_documents, limit_corpus, limit_queries, sliced_name
from embtools.instructions import TASK_INSTRUCTIONS
from embtools.models.loading import ModelSpec
from embtools.records.datasets import detect, load_retrieval, split_of_file, task_name_for

# Two queries over five documents, scores chosen so every metric can be worked out by hand.
RUN = {"q1": {"d1": 0.9, "d2": 0.8, "d3": 0.7, "d4": 0.1},
       "q2": {"d3": 0.9, "d5": 0.5, "d1": 0.4}}
QRELS = {"q1": {"d2": 1, "d4": 1}, "q2": {"d3": 2, "d9": 1}}


def test_retrieval_scores_match_pytrec_eval_and_hand_computed_mrr():
    import pytrec_eval

    from embtools.evaluate.retrieval import retrieval_scores

    scores = retrieval_scores(RUN, QRELS)
    reference = pytrec_eval.RelevanceEvaluator(QRELS, {"ndcg_cut.10", "map_cut.10", "recall.3", "P.1"}).evaluate(RUN)
    mean = {m: np.mean([q[m] for q in reference.values()]) for m in ("ndcg_cut_10", "map_cut_10", "recall_3", "P_1")}
    assert scores["main_score"] == scores["ndcg_at_10"] == pytest.approx(mean["ndcg_cut_10"], abs=1e-5)
    assert scores["map_at_10"] == pytest.approx(mean["map_cut_10"], abs=1e-5)
    assert scores["recall_at_3"] == pytest.approx(mean["recall_3"], abs=1e-5)
    assert scores["precision_at_1"] == pytest.approx(mean["P_1"], abs=1e-5) == 0.5
    assert scores["mrr_at_10"] == pytest.approx((1 / 2 + 1 / 1) / 2)  # q1: first relevant at rank 2; q2: rank 1
    assert scores["mrr_at_1"] == pytest.approx(0.5)


@pytest.fixture(scope="module")
def scifact():
    return load_retrieval(DATA / "scifact", "test")


def test_scifact_loads_as_mteb_sees_it(scifact):
    assert (len(scifact.corpus), len(scifact.queries)) == (5183, 300)
    assert detect(str(DATA / "scifact")).name == "SciFact"


def test_max_corpus_keeps_every_judged_document_and_has_exactly_n(scifact):
    queries = limit_queries(scifact, 50, seed=1)
    sliced = limit_corpus(queries, 1000, seed=1)
    assert len(sliced.queries) == 50
    assert len(sliced.corpus) == 1000
    assert judged_documents(queries) <= set(sliced.corpus)
    assert sliced.corpus == limit_corpus(queries, 1000, seed=1).corpus  # seeded
    assert sliced.corpus != limit_corpus(queries, 1000, seed=2).corpus
    assert sliced_name("SciFact", sliced) == "SciFact[1000 docs, 50 queries]"
    assert sliced_name("SciFact", limit_corpus(scifact, 10_000, seed=1)) == "SciFact"


def test_max_corpus_below_the_judged_documents_is_an_error(scifact):
    from embtools.errors import EmbtoolsError

    with pytest.raises(EmbtoolsError, match="smaller than the"):
        limit_corpus(scifact, 10, seed=1)


@pytest.mark.parametrize("path, name, split", [
    ("stsbenchmark/dev.jsonl", "STSBenchmark", "validation"),
    ("x/scifact", "SciFact", "test"),
    ("my-sts.jsonl", "my-sts", "test"),
])
def test_task_names_and_splits_from_paths(path, name, split):
    assert task_name_for(Path(path)) == name
    if path.endswith(".jsonl"):
        assert split_of_file(Path(path)) == split


def _encoder(is_decoder: bool, prompts: dict | None = None):
    from embtools.encode.cached_encoder import CachedEncoder

    spec = ModelSpec(name="m", path=Path("/nonexistent"), is_decoder=is_decoder, prompts=prompts or {})
    encoder = CachedEncoder.__new__(CachedEncoder)
    encoder.spec = spec
    return encoder


@pytest.mark.parametrize("is_decoder, prompts, options, expected", [
    (False, None, {}, None),  # minilm-l6: an encoder without prompts reads plain text
    (True, None, {}, TASK_INSTRUCTIONS["SciFact"]),  # a decoder gets E5's instruction
    (False, {"query": "Instruct: x\nQuery: "}, {}, TASK_INSTRUCTIONS["SciFact"]),  # an ST model with prompts too
    (False, None, {"instruction": "Find it"}, "Find it"),  # an explicit instruction wins
    (True, None, {"use_instruction": False}, None),  # --no-instruction
])
def test_instruction_policy(is_decoder, prompts, options, expected):
    from embtools.evaluate.run import EvalOptions, instruction_for

    assert instruction_for("SciFact", _encoder(is_decoder, prompts), EvalOptions(**options)) == expected


def test_cache_round_trip_between_two_connections(tmp_path):
    first, second = EmbeddingCache(tmp_path / "c.sqlite"), EmbeddingCache(tmp_path / "c.sqlite")
    vector = np.arange(4, dtype=np.float32)
    first.put_many([(b"k1", vector)])
    found = second.get_many([b"k1", b"k2"])
    assert list(found) == [b"k1"] and np.array_equal(found[b"k1"], vector)


def test_cache_keys_change_with_every_setting_and_the_text(tmp_path):
    spec = ModelSpec(name="m", path=tmp_path)
    base = model_fingerprint(spec, "mean", "float32", 512, "cpu")
    assert len({base, model_fingerprint(spec, "last", "float32", 512, "cpu"),
                model_fingerprint(spec, "mean", "bfloat16", 512, "cpu"),
                model_fingerprint(spec, "mean", "float32", 256, "cpu")}) == 4
    (tmp_path / "model.safetensors").write_bytes(b"x")
    assert model_fingerprint(spec, "mean", "float32", 512, "cpu") != base  # new weights, new keys
    assert text_key(base, "a") != text_key(base, "a ")
