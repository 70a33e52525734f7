"""`make gpu-check` (bench/gpu_check.py) on the CPU, the random Mistral-architecture decoder it falls back to, and the
install arrangement it relies on (one faiss package, a one-line error from emb-index without any)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, read_jsonl, write_jsonl

sys.path.insert(0, str(REPO / "bench"))
import gpu_check  # noqa: E402  (a script beside the benchmarks, not a module of the package)
from gpu_check_slice import build_slice  # noqa: E402


def test_random_decoder_is_a_mistral_folder_that_emb_encode_loads(tiny_decoder, tmp_path, sts_dev_sentences):
    config = json.loads((tiny_decoder / "config.json").read_text())
    assert config["model_type"] == "mistral" and config["num_key_value_heads"] < config["num_attention_heads"]
    texts = write_jsonl(tmp_path / "t.jsonl", [{"id": i, "text": t} for i, t in enumerate(sts_dev_sentences[:20])])
    done = subprocess.run([sys.executable, "-m", "embtools.commands.encode", "--model", str(tiny_decoder),
                           "--dtype", "float32", str(texts)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    vectors = np.array([r["embedding"] for r in map(json.loads, done.stdout.splitlines())])
    assert vectors.shape == (20, config["hidden_size"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    cross = vectors @ vectors.T
    assert cross[~np.eye(20, dtype=bool)].mean() < 0.9  # the texts get different vectors


def test_random_decoder_tokenizer_frames_texts_as_mistral_does(tiny_decoder):
    from embtools.encode.encoder import Encoder, EncodeSettings

    encoder = Encoder(str(tiny_decoder), EncodeSettings(dtype="float32", device="cpu"))
    tokenizer = encoder.tokenizer
    assert encoder.spec.is_decoder and encoder.pooling == "last"
    assert encoder.framing.prefix == [tokenizer.bos_token_id] and encoder.framing.suffix == [tokenizer.eos_token_id]
    assert tokenizer.decode(tokenizer("A man is playing a flute.", add_special_tokens=False)["input_ids"]) \
        == "A man is playing a flute."


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    from safetensors.numpy import load_file

    from embtools.models.random_decoder import build_random_decoder

    texts = ["one text", "another text"]
    first, again, other = (load_file(build_random_decoder(tmp_path / name, texts, seed=seed) / "model.safetensors")
                           for name, seed in (("a", 0), ("b", 0), ("c", 1)))
    name = "layers.0.self_attn.q_proj.weight"
    assert np.array_equal(first[name], again[name]) and not np.array_equal(first[name], other[name])


def test_encode_and_index_checks_pass_on_the_cpu_and_print_one_table(capsys):
    assert gpu_check.main(["--model", "random", "--only", "encode,index"]) == 0
    out = capsys.readouterr().out
    assert "no CUDA device, so every check ran on the CPU" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| check")]
    assert [r.split(" | ")[0] for r in rows] == ["| encode float32", "| encode bfloat16", "| index Flat --gpu"]
    assert [r.split(" | ")[2] for r in rows] == ["pass", "pass", "skipped"]  # faiss-cpu here: the GPU half skips
    assert "tokens/s" in rows[0]


def test_encode_check_fails_when_the_device_vectors_differ(tmp_path, tiny_decoder):
    data = build_slice(tmp_path, documents=16, queries=4, examples=4)
    reference, _ = gpu_check.encode_on(str(tiny_decoder), data.documents, "cpu", "float32")
    row = gpu_check.check_encode(str(tiny_decoder), data, "float32", reference[::-1].copy())
    assert row.result == "FAIL" and "min cosine" in row.measured
    assert gpu_check.distinct_texts(np.ones((4, 8), dtype=np.float32) / np.sqrt(8)).result == "FAIL"


def test_train_check_passes_only_a_falling_loss():
    assert gpu_check.loss_falls([12.9, 11.0, 9.5, 7.1]) and gpu_check.loss_falls([3.0, 2.0])
    assert not gpu_check.loss_falls([7.1, 9.5, 11.0, 12.9]) and not gpu_check.loss_falls([2.0, 2.0, 2.0])


def test_index_comparison_sees_a_different_ranking():
    hits = [[("d1", 0.9), ("d2", 0.8)]]
    assert gpu_check.same_hits(hits, [[("d1", 0.9), ("d2", 0.8)]])
    assert not gpu_check.same_hits(hits, [[("d2", 0.9), ("d1", 0.8)]])
    assert not gpu_check.same_hits(hits, [[("d1", 0.9), ("d2", 0.7)]])


def test_build_slice_is_a_beir_folder_and_example_records(tmp_path):
    from embtools.records.datasets import load_retrieval
    from embtools.records.examples import schema_problem

    data = build_slice(tmp_path, documents=40, queries=8, examples=12)
    retrieval = load_retrieval(data.folder, "test")
    assert len(retrieval.corpus) == 40 and len(retrieval.queries) == 8
    assert all(set(retrieval.queries[q].split()) <= set(retrieval.corpus[next(iter(d))].split())
               for q, d in retrieval.qrels.items())
    examples = read_jsonl(data.examples)
    assert len(examples) == 12 and not any(schema_problem(e) for e in examples)


@pytest.mark.slow
def test_whole_check_on_the_cpu():
    done = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--model", "random", "--steps", "4"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    results = {line.split(" | ")[0][2:]: line.split(" | ")[2] for line in done.stdout.splitlines()
               if line.startswith("| ") and not line.startswith("| check")}
    assert results == {"encode float32": "pass", "encode bfloat16": "pass", "train LoRA bf16, 4 steps": "pass",
                       "train DDP, 2 processes": "skipped", "train ZeRO-3, 2 processes": "skipped",
                       "eval retrieval slice (nDCG@10)": "pass", "index Flat --gpu": "skipped"}


def test_emb_index_says_in_one_line_that_no_faiss_is_installed(tmp_path):
    records = write_jsonl(tmp_path / "e.jsonl", [{"id": 1, "embedding": [0.1, 0.2]}])
    without_faiss = ("import sys; sys.modules['faiss'] = None; from embtools.commands.index import main; "
                     "sys.argv[0] = 'emb-index'; main()")
    done = subprocess.run([sys.executable, "-c", without_faiss, str(records), "-o", str(tmp_path / "index")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "emb-index: error: faiss is not installed: pip install 'embtools[cpu]', or 'embtools[gpu]' for faiss-gpu on a "
        "CUDA 12 machine (not both: docs/gpu.md)"]


def test_faiss_comes_from_exactly_one_extra_and_make_installs_the_cpu_one():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    def faiss_packages(requirements):
        return {r.split(">")[0].split("=")[0] for r in requirements if r.startswith("faiss")}
    assert faiss_packages(project["dependencies"]) == set()
    extras = project["optional-dependencies"]
    assert faiss_packages(extras["cpu"]) == {"faiss-cpu"} and faiss_packages(extras["gpu"]) == {"faiss-gpu"}
    assert not any(faiss_packages(extras[name]) for name in extras if name not in {"cpu", "gpu"})
    assert "-e '.[cpu,dev]'" in (REPO / "Makefile").read_text()
