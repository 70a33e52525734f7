"""emb-train end to end: the output folder, errors, kill -9 and resume (several processes and DeepSpeed:
test_train_distributed.py).

Most runs use a tiny random llama (2 layers, 64-d) with SmolLM2's tokenizer, so they test the machinery in seconds;
the loading test uses the real smollm2-135m.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, read_jsonl, run_cli, write_jsonl
from embtools.commands.train import main as train_main

TINY_ARGS = ["--batch-size", "4", "--mini-batch-size", "2", "--max-length", "24", "--lr", "1e-3",
             "--warmup-steps", "1", "--seed", "7"]


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> Path:
    """24 real example records from SciFact's train qrels; every third with a hard negative."""
    folder = DATA / "scifact"
    docs = {str(d["_id"]): d["text"] for d in read_jsonl(folder / "corpus.jsonl")[:3000]}
    queries = {str(q["_id"]): q["text"] for q in read_jsonl(folder / "queries.jsonl")}
    pairs = [line.split("\t")[:2] for line in (folder / "qrels" / "train.tsv").read_text().splitlines()[1:]]
    pairs = [(q, d) for q, d in pairs if d in docs][:24]
    spare = list(docs.values())[-24:]
    records = [{"id": i, "task_type": "short-long", "instruction": "Given a claim, retrieve evidence",
                "query": queries[q], "positive": docs[d], "negative": spare[i] if i % 3 == 0 else None}
               for i, (q, d) in enumerate(pairs)]
    return write_jsonl(tmp_path_factory.mktemp("train") / "examples.jsonl", records)


@pytest.fixture(scope="module")
def tiny_llama(smollm, tmp_path_factory) -> Path:
    """A randomly initialised 2-layer llama with SmolLM2's tokenizer, saved as a model folder."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaModel

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(smollm.spec.path)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on a shared 2-core machine two OpenMP threads per process wait for each other (as the
    generator's do: docs/benchmarks.md, emb-generate)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def invoke(args) -> tuple[dict, list[str]]:
    """emb-train in this process (imports are paid once): (its one summary record, stderr lines); fails the test
    unless it exits 0 having written exactly one record."""
    code, records, errors = run_cli(train_main, args)
    assert code == 0, "\n".join(errors[-40:])
    assert len(records) == 1, records
    return records[0], errors


def run_train(args, env=None, check=True) -> subprocess.CompletedProcess:
    """emb-train in a fresh process: for kill -9 and for launching several processes."""
    result = subprocess.run([sys.executable, "-m", "embtools.commands.train", *map(str, args)], capture_output=True,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def adapter_weights(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def assert_same_weights(a: Path, b: Path, atol: float = 1e-6) -> None:
    left, right = adapter_weights(a), adapter_weights(b)
    assert left.keys() == right.keys()
    for name in left:
        np.testing.assert_allclose(left[name], right[name], atol=atol, err_msg=name)


def test_output_loads_the_same_in_emb_encode_and_sentence_transformers(smollm, examples, tmp_path, monkeypatch):
    from sentence_transformers import SentenceTransformer

    from embtools.encode.encoder import Encoder, EncodeSettings
    from embtools.instructions import with_instruction

    out = tmp_path / "model"
    summary, _ = invoke([examples, "-o", out, "--model", smollm.spec.path, "--max-steps", "1", *TINY_ARGS,
                         "--mini-batch-size", "4", "--max-length", "16", "--warmup-steps", "0"])
    assert summary["steps"] == 1 and summary["examples"] == 4
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1] and log[0]["tokens_per_s"] > 0 and log[0]["lr"] == 1e-3
    assert (out / "loss.png").stat().st_size > 1000 and (out / "adapter_config.json").exists()
    texts = ["Vitamin D deficiency is linked to bone loss.", "The sky is blue."]
    ours = Encoder(str(out), EncodeSettings(dtype="float32"))
    monkeypatch.chdir(out)  # transformers resolves the adapter's relative base against the working directory
    theirs = SentenceTransformer(str(out), device="cpu")
    np.testing.assert_allclose(theirs.encode(texts), ours.encode(texts), atol=1e-5)
    queries = theirs.encode(texts, prompt_name="query")
    np.testing.assert_allclose(queries, ours.encode([with_instruction(t, "Given a claim, retrieve evidence")
                                                     for t in texts]), atol=1e-5)
    assert not np.allclose(ours.encode(texts), smollm.encode(texts), atol=1e-3)  # training changed the model


def test_merged_weights_embed_like_the_adapter(tiny_llama, examples, tmp_path):
    from embtools.encode.encoder import Encoder, EncodeSettings

    common = [examples, "--model", tiny_llama, "--max-steps", "1", *TINY_ARGS]
    invoke([*common, "-o", tmp_path / "adapter"])
    invoke([*common, "-o", tmp_path / "merged", "--merge"])
    assert (tmp_path / "merged" / "model.safetensors").exists()
    texts = ["a claim about mice", "an abstract on proteins"]
    adapter = Encoder(str(tmp_path / "adapter"), EncodeSettings(dtype="float32")).encode(texts)
    merged = Encoder(str(tmp_path / "merged"), EncodeSettings(dtype="float32")).encode(texts)
    np.testing.assert_allclose(adapter, merged, atol=1e-5)


@pytest.mark.parametrize("lines, message", [
    (['{"instruction": "i", "query": "q", "positive": "p"}', '{"instruction": "i", "positive": "p"}'],
     'line 2: field "query" is missing'),
    (["not json"], "line 1: not valid JSON"),
    (['{"instruction": "i", "query": "q", "positive": "p"}'], "1 examples make no full batch of --batch-size 4"),
])
def test_bad_input_is_one_line(tiny_llama, tmp_path, lines, message):
    source = tmp_path / "bad.jsonl"
    source.write_text("\n".join(lines) + "\n")
    code, records, errors = run_cli(train_main, [source, "-o", tmp_path / "out", "--model", tiny_llama,
                                                 "--batch-size", "4"])
    assert (code, records, len(errors)) == (1, [], 1), errors  # one line, never a traceback
    assert errors[0].startswith(f"emb-train: error: {message}"), errors
    assert not (tmp_path / "out").exists()


def test_usage_errors_exit_2(tmp_path):
    code, _, errors = run_cli(train_main, ["-o", tmp_path / "o", "--no-lora", "--merge"])
    assert code == 2 and len(errors) == 1 and "--merge needs LoRA" in errors[0]


def test_gradient_accumulation_warns(tiny_llama, examples, tmp_path):
    summary, errors = invoke([examples, "-o", tmp_path / "o", "--model", tiny_llama, "--max-steps", "1",
                              "--gradient-accumulation-steps", "2", *TINY_ARGS])
    assert any("gradient accumulation does not add in-batch negatives" in line for line in errors)
    assert summary["examples"] == 8


def test_kill_9_after_a_checkpoint_then_resume_equals_an_uninterrupted_run(tiny_llama, examples, tmp_path):
    common = [examples, "--model", tiny_llama, "--max-steps", "4", "--save-every", "2", *TINY_ARGS]
    invoke([*common, "-o", tmp_path / "straight"])
    killed = run_train([*common, "-o", tmp_path / "resumed"], env={"EMBTOOLS_TRAIN_KILL_AFTER_CHECKPOINT": "2"},
                       check=False)
    assert killed.returncode == -signal.SIGKILL and not (tmp_path / "resumed").exists()
    assert (tmp_path / "resumed.checkpoints" / "step_000002" / "state.json").exists()
    summary, errors = invoke([*common, "-o", tmp_path / "resumed", "--resume"])
    assert any("resumed from" in line for line in errors) and summary["steps"] == 4
    assert_same_weights(tmp_path / "straight", tmp_path / "resumed")
    steps = [json.loads(x)["step"] for x in (tmp_path / "resumed" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_resume_refuses_other_settings(tiny_llama, examples, tmp_path):
    common = [examples, "--model", tiny_llama, "--save-every", "1", *TINY_ARGS]
    invoke([*common, "--max-steps", "2", "-o", tmp_path / "o"])  # leaves the checkpoint of step 1
    code, _, errors = run_cli(train_main, [*common, "--max-steps", "3", "-o", tmp_path / "o", "--resume"])
    assert code == 1 and "cannot resume: the checkpoint was made with max_steps=2" in errors[-1]
