"""Long context (issue 18.2): --rope-theta / --rope-scaling on emb-encode, emb-eval and emb-train, recorded in a
trained model, and the personalized passkey retrieval task (`emb-eval passkey:...`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli, write_jsonl
from embtools.commands.encode import main as encode_main
from embtools.commands.eval import main as eval_main
from embtools.commands.train import main as train_main
from embtools.models.rope import RopeOverride, apply_rope, parse_rope_scaling

TEXTS = ["The cat sat on the mat near the warm window.", "Protein folding is driven by hydrophobic collapse."]


def encode(model, texts, *options) -> np.ndarray:
    code, records, errors = run_cli(encode_main, ["--model", model, "--dtype", "float32", *options],
                                    input=b"".join(json.dumps({"id": str(i), "text": t}).encode() + b"\n"
                                                   for i, t in enumerate(texts)))
    assert code == 0, errors
    return np.array([r["embedding"] for r in records])


def test_rope_theta_changes_a_rope_model_and_its_own_base_changes_nothing(tiny_decoder):
    from transformers import AutoConfig

    own = AutoConfig.from_pretrained(tiny_decoder).rope_parameters["rope_theta"]
    plain = encode(tiny_decoder, TEXTS)
    assert np.array_equal(encode(tiny_decoder, TEXTS, "--rope-theta", str(own)), plain)
    raised = encode(tiny_decoder, TEXTS, "--rope-theta", str(own * 100))
    assert np.abs(raised - plain).max() > 1e-3  # positions now rotate differently
    scaled = encode(tiny_decoder, TEXTS, "--rope-scaling", "linear:4")
    assert np.abs(scaled - plain).max() > 1e-3


def test_rope_scaling_stretches_the_context(tiny_decoder):
    from transformers import AutoConfig

    config = apply_rope(AutoConfig.from_pretrained(tiny_decoder), RopeOverride(1e6, ("yarn", 4.0)), "tiny")
    assert config.rope_parameters["rope_theta"] == 1e6 and config.rope_parameters["rope_type"] == "yarn"
    assert config.rope_parameters["original_max_position_embeddings"] == 512
    assert config.max_position_embeddings == 2048


@pytest.mark.parametrize("args, message", [
    (["--rope-theta", "big"], "--rope-theta big: expected a number"),
    (["--rope-theta", "-5"], "the RoPE base must be positive"),
    (["--rope-scaling", "ntk:2"], "expected TYPE:FACTOR, TYPE one of linear, dynamic, yarn"),
    (["--rope-scaling", "linear:0.5"], "the factor must be above 1"),
])
def test_bad_rope_options_are_usage_errors(args, message):
    code, _, errors = run_cli(encode_main, ["--model", "minilm-l6", *args], input=b"")
    assert code == 2 and message in errors[-1], errors


def test_a_model_without_rotary_positions_refuses_an_override():
    code, _, errors = run_cli(encode_main, ["--model", "minilm-l6", "--rope-theta", "1e6"],
                              input=b'{"id": "a", "text": "x"}\n')
    assert code == 1 and "minilm-l6 has no rotary position embeddings" in errors[-1], errors


def test_parse_rope_scaling():
    assert parse_rope_scaling("yarn:4") == ("yarn", 4.0)
    assert RopeOverride(None, ("linear", 2.0)).over(RopeOverride(1e6, ("yarn", 4.0))) == \
        RopeOverride(1e6, ("linear", 2.0))  # the flag wins where it speaks, the recorded value elsewhere


def test_the_cache_keeps_vectors_of_another_rope_base_apart(tiny_decoder):
    from embtools.encode.embedding_cache import model_fingerprint
    from embtools.models.loading import inspect_model

    spec = inspect_model(str(tiny_decoder))
    plain = model_fingerprint(spec, "last", "float32", 512, "cpu")
    assert model_fingerprint(spec, "last", "float32", 512, "cpu", RopeOverride()) == plain
    assert model_fingerprint(spec, "last", "float32", 512, "cpu", RopeOverride(1e6)) != plain


def test_emb_train_records_the_rope_base_and_the_output_embeds_with_it(tiny_decoder, tmp_path, sts_dev):
    examples = write_jsonl(tmp_path / "examples.jsonl", [
        {"instruction": "Retrieve semantically similar text", "query": p["sentence1"], "positive": p["sentence2"],
         "negative": None} for p in sts_dev[:8]])
    out = tmp_path / "out"
    code, _, errors = run_cli(train_main, [examples, "-o", out, "--model", tiny_decoder, "--max-steps", "1",
                                           "--batch-size", "4", "--max-length", "32", "--rope-theta", "1e6"])
    assert code == 0, errors[-5:]
    assert json.loads((out / "training_args.json").read_text())["rope"] == {"theta": 1e6, "scaling": None}
    recorded = encode(out, TEXTS)
    assert np.array_equal(encode(out, TEXTS, "--rope-theta", "1e6"), recorded)  # loaded with the recorded base
    assert np.abs(encode(out, TEXTS, "--rope-theta", "1e4") - recorded).max() > 1e-3


# --- passkey --------------------------------------------------------------------------------------------------------

def test_passkey_documents_fit_their_length_and_hold_one_needle(smollm):
    from embtools.evaluate.passkey import CANDIDATES, passkey_task

    task = passkey_task(256, smollm.tokenizer, seed=3)
    assert len(task.queries) == len(task.documents) == CANDIDATES == len(set(task.queries))
    lengths = [len(smollm.tokenizer(d)["input_ids"]) + 1 for d in task.documents]  # + the EOS the encoder appends
    assert max(lengths) <= 256 and min(lengths) >= 256 - 30, (min(lengths), max(lengths))
    for query, document in zip(task.queries, task.documents):
        name = query.removeprefix("what is the pass key for ").removesuffix("?")
        assert document.count(f"{name}'s pass key is") == 1
    starts = {d.index("pass key") for d in task.documents}
    assert len(starts) > 20  # the needle sits at many places, not always at the start
    assert passkey_task(256, smollm.tokenizer, seed=3) == task
    assert passkey_task(256, smollm.tokenizer, seed=4).queries != task.queries


def test_top1_accuracy_counts_a_query_right_only_when_its_own_document_wins():
    from embtools.evaluate.passkey import top1_accuracy

    queries = np.eye(3, dtype=np.float32)
    documents = np.array([[1, 0, 1], [0, 0.2, 0], [0, 0.5, 1]], dtype=np.float32)
    # query 0: right; query 1 prefers document 2; query 2 ties documents 0 and 2, a miss
    assert top1_accuracy(queries, documents) == pytest.approx(1 / 3)


def test_emb_eval_passkey_writes_one_metric_record_per_length(tmp_path):
    code, records, errors = run_cli(eval_main, ["--model", "minilm-l6", "--no-cache", "passkey:96,128"])
    assert code == 0, errors
    assert [(r["task"], r["metric"], r["main"]) for r in records] == [
        ("Passkey[96 tokens]", "accuracy", True), ("Passkey[128 tokens]", "accuracy", True)]
    assert all(0.3 < r["value"] <= 1.0 for r in records), records  # well above chance (0.01) for a real model


@pytest.mark.parametrize("argument, message", [
    ("passkey:abc", "passkey:abc: expected token lengths separated by commas"),
    ("passkey:16", "every length must be at least 64 tokens"),
    ("passkey:1024", "passkey:1024 needs --max-length 1024 or more"),
])
def test_bad_passkey_arguments_are_one_line(argument, message):
    code, _, errors = run_cli(eval_main, ["--model", "minilm-l6", "--no-cache", argument])
    assert code == 1 and message in errors[-1], errors
