"""emb-train's output as a model others can use: its adapter names the base portably (a local folder relative to the
output), a moved output still loads, and README.md is a model card of the real run (base, data and counts, every
hyperparameter, the loss curve, emb-eval's scores with `--card-eval`, each evaluated task's E5 prompt in
config_sentence_transformers.json). Uploads: test_push_to_hub.py.

Runs: 2 steps of the tiny random decoder (tests/conftest.py) on 24 real SciFact examples (test_train.py).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import DATA, run_cli, write_jsonl
from embtools.commands.eval import main as eval_main
from embtools.commands.train import main as train_main
from embtools.instructions import STS_INSTRUCTION, with_instruction
from test_train import examples  # noqa: F401 (fixture)
from test_train_tracking import one_thread  # noqa: F401 (fixture)

TEXTS = ["Vitamin D deficiency is linked to bone loss.", "The sky is blue."]
TRAIN_ARGS = ["--max-steps", "2", "--batch-size", "4", "--mini-batch-size", "4", "--max-length", "64", "--lr", "1e-3",
              "--warmup-steps", "1", "--seed", "3"]


def card_of(folder: Path) -> tuple[dict, str]:
    """(the YAML metadata, the markdown body) of folder/README.md."""
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    header, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(header), body


def encode(folder: Path, texts: list[str]) -> np.ndarray:
    from embtools.encode.encoder import Encoder, EncodeSettings

    return Encoder(str(folder), EncodeSettings(dtype="float32")).encode(texts)


@pytest.fixture(scope="module")
def trained(examples, tiny_decoder, tmp_path_factory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("card") / "runs" / "model"
    code, records, errors = run_cli(train_main, [examples, "--model", tiny_decoder, "-o", out, *TRAIN_ARGS])
    assert code == 0 and len(records) == 1, "\n".join(errors[-20:])
    return out


def test_the_adapter_names_a_local_base_relative_to_the_output(trained, tiny_decoder):
    base = json.loads((trained / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert not os.path.isabs(base) and base == os.path.relpath(tiny_decoder, trained)
    assert (trained / base).resolve() == tiny_decoder.resolve()


def test_a_moved_output_with_its_base_loads_in_emb_encode_and_sentence_transformers(trained, tiny_decoder, tmp_path,
                                                                                    monkeypatch):
    from sentence_transformers import SentenceTransformer

    from embtools.models.loading import inspect_model

    before = encode(trained, TEXTS)
    moved = tmp_path / "elsewhere" / "runs" / "model"
    base = json.loads((trained / "adapter_config.json").read_text())["base_model_name_or_path"]
    shutil.copytree(trained, moved)
    shutil.copytree(tiny_decoder, (moved / base).resolve())
    assert inspect_model(str(moved)).base_path.resolve() == (moved / base).resolve()  # the copy, not the original
    np.testing.assert_allclose(encode(moved, TEXTS), before, atol=1e-6)
    monkeypatch.chdir(moved)  # transformers resolves a relative base against the working directory
    theirs = SentenceTransformer(str(moved), device="cpu")
    np.testing.assert_allclose(theirs.encode(TEXTS), before, atol=1e-5)


def test_a_moved_output_without_its_base_fails_in_one_line(trained, tmp_path, text_file):
    from embtools.commands.encode import main as encode_main

    moved = tmp_path / "model"
    shutil.copytree(trained, moved)
    code, records, errors = run_cli(encode_main, ["--model", moved, text_file])
    assert code == 1 and records == [] and len(errors) == 1, errors
    assert errors[0] == (f"emb-encode: error: {moved}: its base model ../../../tiny-decoder0 is missing (a path "
                         "relative to the adapter folder: move or copy the two together)")


def test_the_card_states_base_data_every_hyperparameter_and_the_loss(trained, examples):  # noqa: F811
    meta, body = card_of(trained)
    assert meta["library_name"] == "sentence-transformers" and "peft" in meta["tags"]
    assert "base_model" not in meta and "model-index" not in meta  # a local base has no hub id; no scores given
    assert f"| `{examples}` | 1.0 | 24 | short-long 24 |" in body and "24 examples in all" in body
    assert body.startswith("\n# model\n") and "local folder `../../../tiny-decoder0`" in body
    arguments = json.loads((trained / "training_args.json").read_text())
    assert arguments["data"][0]["examples"] == 24
    for name, value in arguments.items():
        if name not in {"data", "sources"}:
            assert f"| `{name}` | `{json.dumps(value)}` |" in body
    losses = [json.loads(line) for line in (trained / "train_log.jsonl").read_text().splitlines()]
    for row in losses:
        assert f"| {row['step']} | {row['loss']:.4f} |" in body
    assert "![training loss per step](loss.png)" in body and (trained / "loss.png").exists()
    assert 'emb-encode --model path/to/model --instruction "Given a claim, retrieve evidence"' in body


def test_card_only_adds_emb_eval_scores_and_the_task_prompts(trained, tmp_path):
    from sentence_transformers import SentenceTransformer

    folder = tmp_path / "runs" / "model"  # as deep as the original: the relative base still points at it
    shutil.copytree(trained, folder)
    code, metrics, errors = run_cli(eval_main, [DATA / "stsbenchmark" / "dev.jsonl", "--model", folder,
                                                "--max-pairs", "40"])
    assert code == 0, errors
    eval_file = write_jsonl(tmp_path / "metrics.jsonl", metrics)
    code, records, errors = run_cli(train_main, ["--card-only", folder, "--card-eval", eval_file])
    assert code == 0 and records == [{"output": str(folder), "card": str(folder / "README.md")}], errors
    meta, body = card_of(folder)
    [main] = [m for m in metrics if m["main"]]
    [result] = meta["model-index"][0]["results"]
    assert result["task"]["type"] == "STS" and result["metrics"] == [{"type": "cosine_spearman",
                                                                       "value": main["value"]}]
    assert f"| {main['task']} | {main['split']} | cosine_spearman | {main['value']:.4f} |" in body
    prompts = json.loads((folder / "config_sentence_transformers.json").read_text())["prompts"]
    sts_prompt = with_instruction("", STS_INSTRUCTION)
    assert prompts["STSBenchmark"] == prompts["STSBenchmark-query"] == prompts["STSBenchmark-document"] == sts_prompt
    assert prompts["query"] == with_instruction("", "Given a claim, retrieve evidence")  # the training prompt stays
    os.chdir(folder)
    try:
        theirs = SentenceTransformer(str(folder), device="cpu").encode(TEXTS, prompt_name="STSBenchmark")
    finally:
        os.chdir(Path(__file__).parent)
    np.testing.assert_allclose(theirs, encode(folder, [with_instruction(t, STS_INSTRUCTION) for t in TEXTS]),
                               atol=1e-5)  # what emb-eval embedded for STS


def test_task_prompts_follow_emb_evals_instruction_rule():
    from embtools.train.export import task_prompts

    prompts = task_prompts({"SciFact": "Retrieval", "Banking77Classification": "Classification", "MyTask": None})
    scifact = "Instruct: Given a scientific claim, retrieve documents that support or refute the claim\nQuery: "
    assert prompts["SciFact-query"] == prompts["SciFact"] == scifact and prompts["SciFact-document"] == ""
    assert prompts["Banking77Classification-document"].startswith("Instruct: Given a online banking query")
    assert prompts["MyTask"] == prompts["MyTask-query"] == ""  # no instruction known: plain texts, as emb-eval


def test_hub_ids_and_built_in_names_are_kept_as_given(tmp_path, tiny_decoder):
    from embtools.models.loading import portable_base_name, resolve_base

    assert portable_base_name("smollm2-135m", tmp_path / "out") == "smollm2-135m"
    assert portable_base_name("org/some-model", tmp_path / "out") == "org/some-model"
    assert portable_base_name(str(tiny_decoder), tiny_decoder.parent / "a" / "out") == "../../" + tiny_decoder.name
    assert resolve_base("minilm-l6", tmp_path) == resolve_base("minilm-l6", tiny_decoder)  # not a path: a name
    assert (resolve_base("minilm-l6", tmp_path) / "modules.json").exists()


def test_a_bad_card_eval_file_fails_before_training(tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"task": "STSBenchmark", "value": 0.5}])
    code, records, errors = run_cli(train_main, [tmp_path / "missing.jsonl", "-o", tmp_path / "out",
                                                 "--card-eval", bad])
    assert code == 1 and records == [] and errors == [
        f'emb-train: error: --card-eval {bad}: line 1: field "metric" is missing (expected emb-eval metric records)']


@pytest.mark.parametrize("args, code, message", [
    (["--private"], 2, "--private needs --push-to-hub"),
    (["--push-to-hub", "no-namespace"], 2, "--push-to-hub: expected a hub id ORG/NAME"),
    (["--card-only", "{trained}", "-o", "x"], 2, "--card-only DIR trains nothing"),
    (["--card-only", "{tmp}"], 1, "is not an emb-train output folder (no training_args.json)"),
    (["--card-only", "{trained}", "--card-eval", "{bad}"], 1, 'line 1: field "value" is missing'),
])
def test_card_options_fail_in_one_line(trained, tmp_path, args, code, message):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"task": "STSBenchmark", "metric": "cosine_spearman"}])
    args = [a.format(trained=trained, tmp=tmp_path, bad=bad) for a in args]
    exit_code, records, errors = run_cli(train_main, args)
    assert exit_code == code and records == [] and message in errors[-1], errors
    if code == 1:
        assert len(errors) == 1 and errors[0].startswith("emb-train: error: ")
