"""Nothing lost under kill -9: commands killed at seeded random moments leave their output as it was or whole, and a
re-run gives exactly the uninterrupted run's output with no temporaries left (see tests/fault_injection.py)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from embtools.index.vector_index import VectorIndex
from embtools.records import atomic
from embtools.records.atomic import atomic_dir, remove_stale_temporaries
from fault_injection import FaultCase, inject, jsonl_ids, snapshot, temporaries, timed_reference, write_window

BIN = Path(sys.executable).parent
SEEDS = [11, 23, 37]
SLOW_SEEDS = [11]  # one kill for the commands whose runs take 10-40 s here (model loading)


def _vectors_file(path: Path, count: int, dim: int, start: int = 0) -> Path:
    rng = np.random.default_rng(start)
    vectors = rng.standard_normal((count, dim)).astype(np.float32)
    path.write_bytes(b"".join(orjson.dumps({"id": f"v{start + i}", "embedding": v}, option=orjson.OPT_SERIALIZE_NUMPY)
                              + b"\n" for i, v in enumerate(vectors)))
    return path


def _run_case(case: FaultCase, seeds: list[int]):
    """The reference run, then per seed a kill while the command writes, and the re-run."""
    reference, first_write, total = timed_reference(case)
    assert reference is not None and not temporaries(case.output.parent)
    reports = inject(case, seeds, reference, write_window(first_write, total), after_first_write=True)
    print(f"{Path(case.command[0]).name} {case.command[1:2]}: reference {total:.1f} s, "
          f"first write {first_write:.1f} s;",
          "; ".join(f"seed {r.seed}: kill at {r.delay:.2f} s -> {r.state if r.killed else 'finished first'}"
                    f"{', left ' + str(len(r.leftovers)) + ' temporaries' if r.leftovers else ''}" for r in reports))
    assert any(r.killed for r in reports), f"no seed killed a running process: {reports}"
    return reference, reports


def _embeddings(path: Path):
    """(ids, vectors) of an embedding file, or None when there is none."""
    if not path.is_file():
        return None
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return [r["id"] for r in rows], np.array([r["embedding"] for r in rows], dtype=np.float32)


def _same_embeddings(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return a[0] == b[0] and np.allclose(a[1], b[1], atol=1e-6)


@pytest.mark.slow
def test_emb_encode_killed_while_writing_reruns_to_the_same_file(tmp_path, sts_dev):
    """The reference is computed in this process (same settings, same chunks), which saves a 15-50 s model-loading
    run."""
    from embtools.encode.encoder import Encoder, EncodeSettings
    from embtools.encode.stream import embed_records

    records = [{"id": f"s{i}", "text": p["sentence1"]} for i, p in enumerate(sts_dev[:48])]
    texts = tmp_path / "texts.jsonl"
    texts.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    encoder = Encoder("minilm-l6", EncodeSettings(dtype="float32", max_length=32))
    expected = list(embed_records([dict(r) for r in records], encoder, chunk_size=4))
    reference = ([r["id"] for r in expected], np.array([r["embedding"] for r in expected], dtype=np.float32))
    out = tmp_path / "out" / "emb.jsonl"
    out.parent.mkdir()
    case = FaultCase([str(BIN / "emb-encode"), "-m", "minilm-l6", "--dtype", "float32", "--chunk-size", "4",
                      "--max-length", "32", str(texts), "-o", str(out)], out,
                     env={"EMBTOOLS_HOME": str(tmp_path / "home")}, view=_embeddings, same=_same_embeddings)
    reports = inject(case, SLOW_SEEDS, reference, (0.0, 0.3), after_first_write=True)
    print("emb-encode:", reports)
    assert any(r.killed for r in reports)
    assert jsonl_ids(out) == [f"s{i}" for i in range(48)]  # none duplicated, truncated or missing


def test_emb_index_build_killed_anywhere_reruns_to_the_same_folder(tmp_path):
    vectors = _vectors_file(tmp_path / "vectors.jsonl", 6000, 96)
    out = tmp_path / "out" / "ix"
    out.parent.mkdir()
    command = [str(BIN / "emb-index"), "build", str(vectors), "-o", str(out), "--batch-size", "50"]
    case = FaultCase(command, out, rerun=[*command, "--overwrite"])
    _run_case(case, SEEDS)
    index = VectorIndex.load(out)
    assert index.ids == [f"v{i}" for i in range(6000)] and index.ntotal == 6000


def test_emb_index_add_killed_anywhere_leaves_old_or_new_index(tmp_path):
    base_vectors = _vectors_file(tmp_path / "base.jsonl", 2000, 96)
    more = _vectors_file(tmp_path / "more.jsonl", 6000, 96, start=2000)
    base, out = tmp_path / "base.ix", tmp_path / "out" / "ix"
    out.parent.mkdir()
    from embtools.index.vector_index import build_index
    from embtools.records.jsonl import read_records

    build_index(read_records(base_vectors), base)
    case = FaultCase([str(BIN / "emb-index"), "add", str(more), "--index", str(out), "--batch-size", "50"], out,
                     reset=lambda: (shutil.rmtree(out, ignore_errors=True), shutil.copytree(base, out)),
                     before=snapshot(base), rerun_when_whole=False)
    _run_case(case, SEEDS)
    assert VectorIndex.load(out).ids == [f"v{i}" for i in range(8000)]


# --- a crash at every step of replacing a folder ------------------------------------------------------------------

def _crash_at_step(target: Path, step: int, exchange: bool) -> None:
    """In a child process, replace `target` by a new folder and die (os._exit) at rename/exchange number `step`."""
    calls = {"n": 0}

    def dying(real):
        def wrapper(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == step:
                os._exit(9)
            return real(*args, **kwargs)
        return wrapper

    pid = os.fork()
    if pid == 0:
        os.rename = dying(os.rename)  # the child only: it dies at the rename
        atomic._exchange = dying(atomic._exchange) if exchange else (lambda a, b: False)
        atomic._remove = dying(atomic._remove)
        with atomic_dir(target, overwrite=True) as folder:
            (folder / "data").write_text("new")
        os._exit(0)
    os.waitpid(pid, 0)


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
@pytest.mark.parametrize("step", [1, 2, 3, 4, 5])
def test_a_crash_at_any_step_of_a_folder_swap_loses_nothing(tmp_path, step, exchange):
    target = tmp_path / "ix"
    target.mkdir()
    (target / "data").write_text("old")
    _crash_at_step(target, step, exchange)
    assert (target / "data").read_text() in ("old", "new") if target.exists() else temporaries(tmp_path)
    remove_stale_temporaries(target)  # what the next writer of `target` does first
    assert (target / "data").read_text() in ("old", "new")
    assert temporaries(tmp_path) == []


# --- the synthetic-data and training commands ----------------------------------------------------------------------

def _examples_file(path: Path, sentences: list[str], count: int) -> Path:
    records = [{"id": i, "task_type": "short-short", "instruction": "Retrieve semantically similar text",
                "query": sentences[(2 * i) % len(sentences)], "positive": sentences[(2 * i + 1) % len(sentences)],
                "negative": None, "language": "English", "meta": {"n": i}} for i in range(count)]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def test_emb_filter_killed_anywhere_reruns_to_the_same_file(tmp_path, sts_dev):
    sentences = [s for p in sts_dev for s in (p["sentence1"], p["sentence2"])]
    examples = _examples_file(tmp_path / "examples.jsonl", sentences, 1500)  # repeats: dedup state matters
    out = tmp_path / "out" / "kept.jsonl"
    out.parent.mkdir()
    case = FaultCase([str(BIN / "emb-filter"), str(examples), "-o", str(out), "--no-language-check",
                      "--no-guidelines"], out)
    _run_case(case, SEEDS[:1])
    kept = jsonl_ids(out)
    assert len(kept) == len(set(kept)) and 0 < len(kept) < 1500 and kept == sorted(kept)


def test_emb_generate_killed_anywhere_reruns_to_the_same_file(tmp_path):
    from chat_server import ChatServer

    tasks = tmp_path / "tasks.jsonl"
    tasks.write_bytes(b"".join(orjson.dumps({"id": i, "task_type": "short-long", "task": f"Find papers on topic {i}"})
                               + b"\n" for i in range(60)))
    out, cache = tmp_path / "out" / "examples.jsonl", tmp_path / "cache"
    out.parent.mkdir()
    with ChatServer(delay=0.02) as server:
        case = FaultCase([str(BIN / "emb-generate"), "--base-url", server.url, "-c", "4", "--cache", str(cache),
                          str(tasks), "-o", str(out)], out, env={"OPENAI_API_KEY": "sk-test"},
                         reset=lambda: (out.unlink(missing_ok=True), shutil.rmtree(cache, ignore_errors=True)))
        _run_case(case, SEEDS[:2])
    assert jsonl_ids(out) == list(range(60))  # one example per task, in task order: none lost or repeated


def _trained(folder: Path):
    """(the steps in train_log.jsonl, whether the adapter loads with finite weights), or None without a folder."""
    from safetensors.numpy import load_file

    if not folder.exists():
        return None
    steps = tuple(orjson.loads(line)["step"] for line in (folder / "train_log.jsonl").read_bytes().splitlines())
    weights = load_file(str(folder / "adapter_model.safetensors"))
    return steps, bool(weights) and all(np.isfinite(w).all() for w in weights.values())


@pytest.mark.slow
def test_emb_train_killed_while_checkpointing_resumes_to_a_whole_model(tmp_path, sts_dev):
    """Killed after its first checkpoint began, then re-run with --resume: the model folder is whole, every step
    logged once. (That a resumed run equals an uninterrupted one is tests/test_train.py's kill -9 test.)"""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaModel

    from embtools.models.loading import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("smollm2-135m"))
    torch.manual_seed(0)
    LlamaModel(LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                           eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
               ).save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    sentences = [s for p in sts_dev for s in (p["sentence1"], p["sentence2"])]
    examples = _examples_file(tmp_path / "examples.jsonl", sentences, 48)
    out = tmp_path / "out" / "model"
    out.parent.mkdir()
    command = [sys.executable, "-m", "embtools.commands.train", str(examples), "-m", str(tmp_path / "tiny"), "-o",
               str(out), "--max-steps", "6", "--save-every", "1", "--batch-size", "4", "--mini-batch-size", "2",
               "--max-length", "24", "--lr", "1e-3", "--warmup-steps", "1", "--seed", "7", "--lora-dropout", "0",
               "--resume"]
    checkpoints = out.with_name("model.checkpoints")
    case = FaultCase(command, out, env={"OMP_NUM_THREADS": "1"}, view=_trained,
                     reset=lambda: [shutil.rmtree(p, ignore_errors=True) for p in (out, checkpoints)],
                     watch=[checkpoints])
    reports = inject(case, SLOW_SEEDS, ((1, 2, 3, 4, 5, 6), True), (0.0, 2.0), after_first_write=True)
    print("emb-train:", reports)
    assert any(r.killed for r in reports)
