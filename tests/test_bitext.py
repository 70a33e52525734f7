"""emb-eval on a local bitext file (mteb's BitextMining layout): detected by its fields, scored as mteb scores it."""

from __future__ import annotations

import random

import numpy as np
import pytest

from conftest import REPO, read_jsonl, run_cli, write_jsonl
from embtools.commands.eval import main as emb_eval
from embtools.instructions import BITEXT_INSTRUCTION
from embtools.records.datasets import detect

ALIGNED = REPO / "tests" / "fixtures" / "bitext-en-de.jsonl"  # 60 English-German pairs, written for these tests


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A fresh EMBTOOLS_HOME per test: an empty embedding cache."""
    monkeypatch.setenv("EMBTOOLS_HOME", str(tmp_path / "home"))


def scores(model, data, *options) -> tuple[dict[str, float], dict]:
    """(metric -> value, the main metric record) of one emb-eval run."""
    code, records, stderr = run_cli(emb_eval, ["--model", model, data, *options])
    assert code == 0, stderr
    [main] = [r for r in records if r["main"]]
    return {r["metric"]: r["value"] for r in records}, main


def mteb_reference(pairs: list[dict]) -> dict[str, float]:
    """mteb's own BitextMining task and evaluator over the pairs, with mteb's SentenceTransformer wrapper around
    all-MiniLM-L6-v2: what mteb reports when it runs the model itself."""
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.task_metadata import TaskMetadata
    from mteb.abstasks.text.bitext_mining import AbsTaskBitextMining
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper
    from sentence_transformers import SentenceTransformer

    from embtools.models.loading import resolve_model_path

    class Pairs(AbsTaskBitextMining):
        metadata = TaskMetadata(
            name="Pairs", type="BitextMining", main_score="f1", description="test pairs", reference=None,
            dataset={"path": "local/none", "revision": "local"}, category="t2t", eval_splits=["test"],
            eval_langs=["eng-Latn", "deu-Latn"], modalities=["text"], date=None, domains=None, task_subtypes=None,
            license=None, annotations_creators=None, dialect=None, sample_creation=None, bibtex_citation=None)

        def load_data(self, **kwargs) -> None:
            self.dataset = DatasetDict({"test": Dataset.from_list(pairs)})
            self.data_loaded = True

    model = SentenceTransformerEncoderWrapper(SentenceTransformer(str(resolve_model_path("minilm-l6")), device="cpu"))
    task = Pairs()
    task.load_data()
    result = task.evaluate(model, "test", encode_kwargs={"batch_size": 32})
    return result["default"]


def test_a_file_without_score_is_bitext_and_one_with_score_is_sts(tmp_path):
    assert detect(str(ALIGNED)).kind == "bitext" and detect(str(ALIGNED)).name == "bitext-en-de"
    sts = write_jsonl(tmp_path / "sts.jsonl", [{**p, "score": 3.0} for p in read_jsonl(ALIGNED)[:3]])
    assert detect(str(sts)).kind == "sts"


def test_minilm_scores_equal_mtebs_own_evaluator_and_nearest_neighbours(minilm):
    pairs = read_jsonl(ALIGNED)
    ours, main = scores("minilm-l6", ALIGNED)
    expected = mteb_reference(pairs)
    assert (main["task"], main["split"], main["metric"]) == ("bitext-en-de", "test", "f1")
    for metric in ("accuracy", "precision", "recall", "f1"):
        assert ours[metric] == pytest.approx(expected[metric], abs=1e-9), metric
    english = minilm.encode([p["sentence1"] for p in pairs])
    german = minilm.encode([p["sentence2"] for p in pairs])
    nearest = (english @ german.T).argmax(axis=1)  # minilm's vectors are unit length: dot product is cosine
    assert ours["accuracy"] == pytest.approx(np.mean(nearest == np.arange(len(pairs))), abs=1e-9)
    assert ours["accuracy"] > 0.2  # an English model still matches names, numbers and cognates across languages


def test_a_shuffled_pairing_scores_lower(tmp_path):
    pairs = read_jsonl(ALIGNED)
    german = [p["sentence2"] for p in pairs]
    random.Random(0).shuffle(german)
    shuffled = write_jsonl(tmp_path / "shuffled.jsonl", [{"sentence1": p["sentence1"], "sentence2": g}
                                                         for p, g in zip(pairs, german)])
    aligned, _ = scores("minilm-l6", ALIGNED)
    misaligned, _ = scores("minilm-l6", shuffled)
    assert misaligned["f1"] < aligned["f1"] / 3 and misaligned["accuracy"] < aligned["accuracy"] / 3


def test_a_decoder_reads_the_papers_bitext_instruction(tiny_decoder, tmp_path):
    small = write_jsonl(tmp_path / "pairs.jsonl", read_jsonl(ALIGNED)[:20])
    default, _ = scores(tiny_decoder, small)
    explicit, _ = scores(tiny_decoder, small, "--instruction", BITEXT_INSTRUCTION)
    plain, _ = scores(tiny_decoder, small, "--no-instruction")
    assert default == explicit != plain


def test_a_bad_pair_is_one_line_naming_the_line(tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [*read_jsonl(ALIGNED)[:2], {"sentence1": "Hallo", "sentence2": 7}])
    code, records, err = run_cli(emb_eval, ["--model", "minilm-l6", bad])
    assert code == 1 and records == []
    assert len(err) == 1 and "line 3" in err[0] and '"sentence2"' in err[0]


def test_emb_filter_keeps_a_bitext_files_sentences_out_of_training_data(tmp_path):
    from embtools.commands.filter import main as emb_filter

    pairs = read_jsonl(ALIGNED)
    leaked = {"id": "leak", "task_type": "bitext", "instruction": BITEXT_INSTRUCTION, "query": "Ein ganz anderer Satz.",
              "positive": pairs[5]["sentence2"], "negative": None, "language": "German", "meta": {}}
    clean = {**leaked, "id": "clean", "positive": "Ein Satz, der in keinem Testpaar steht, über Segelboote."}
    examples = write_jsonl(tmp_path / "examples.jsonl", [leaked, clean])
    code, kept, err = run_cli(emb_filter, [examples, "--decontaminate", ALIGNED, "--rejects", tmp_path / "rejects",
                                           "--no-language-check", "--no-near-dup"])
    assert code == 0, err
    assert [r["id"] for r in kept] == ["clean"]
    assert [(r["record"]["id"], r["reason"].split(":")[0]) for r in read_jsonl(tmp_path / "rejects")] == [
        ("leak", "contaminated-exact")]


@pytest.mark.parametrize("name", ["BUCC", "BUCC.v2", "Tatoeba"])
def test_mtebs_bitext_tasks_get_the_same_instruction_on_both_sides(name, tiny_decoder):
    """mteb:BUCC and mteb:Tatoeba run through run.py's mteb path: the same instruction, on every text."""
    import mteb

    from embtools.encode.cached_encoder import CachedEncoder
    from embtools.evaluate.mteb_encoder import instruction_rule
    from embtools.evaluate.run import EvalOptions, _task_prompt, instruction_for

    metadata = mteb.get_task(name).metadata
    instruction = instruction_for(name, CachedEncoder(str(tiny_decoder)), EvalOptions(),
                                  fallback=_task_prompt(metadata), task_type=metadata.type)
    assert (metadata.type, metadata.main_score, instruction) == ("BitextMining", "f1", BITEXT_INSTRUCTION)
    assert instruction_rule(instruction)(metadata, None) == BITEXT_INSTRUCTION
