"""emb-encode --shard and --resume through the real CLI: shards that together hold every record once, and a run
killed with SIGKILL that a rerun with --resume finishes into the output an uninterrupted run writes."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import orjson
import pytest

from conftest import REPO, read_jsonl, run_cli, write_jsonl
from embtools.commands.encode import main as encode
from embtools.encode.resume import LEDGER, progress_folder
from embtools.records.embedding_files import read_embedding_file

MINILM = ["--model", "minilm-l6", "--dtype", "float32"]


def stored(path):
    """(ids, stored rows) of an npy or Parquet embedding file."""
    _info, chunks = read_embedding_file(path)
    parts = list(chunks)
    return [r["id"] for records, _ in parts for r in records], np.concatenate([rows for _, rows in parts])


@pytest.mark.slow
def test_the_shards_together_hold_every_record_once_with_the_unsharded_vectors(tmp_path, text_file):
    # one record a chunk: every text is encoded alone, so its vector cannot depend on its batch
    options = [*MINILM, "--chunk-size", "1", "--max-length", "32", "--format", "npy", str(text_file)]
    assert run_cli(encode, [*options, "-o", tmp_path / "all.npy"])[0] == 0
    ids, vectors = stored(tmp_path / "all.npy")
    seen: dict = {}
    for i in range(3):
        code, _, err = run_cli(encode, [*options, "--shard", f"{i}/3", "-o", tmp_path / f"s{i}.npy"])
        assert code == 0, err
        shard_ids, shard_vectors = stored(tmp_path / f"s{i}.npy")
        assert shard_ids == ids[i::3]  # the documented rule: positions i, i+3, i+6, ...
        assert not set(shard_ids) & set(seen)
        seen.update(zip(shard_ids, shard_vectors))
    assert sorted(seen) == sorted(ids)
    assert all(np.array_equal(seen[i], v) for i, v in zip(ids, vectors))


def test_a_bad_shard_is_a_usage_error(text_file):
    code, _, err = run_cli(encode, [*MINILM, "--shard", "3/3", str(text_file)])
    assert code == 2 and "need 0 <= I < N" in err[-1]


def _wait_for_rows(ledger, process, rows: int, timeout: float = 600) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            done = orjson.loads(ledger.read_bytes())["rows"]
        except (FileNotFoundError, orjson.JSONDecodeError):
            done = 0
        if done >= rows:
            return done
        time.sleep(0.05)
    raise AssertionError(f"emb-encode ended (code {process.poll()}) or stalled before {rows} rows")


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_output(tmp_path, scifact_docs):
    texts = write_jsonl(tmp_path / "docs.jsonl", [{**d, "meta": {"n": n}} for n, d in enumerate(scifact_docs[:240])])
    options = [*MINILM, "--id-field", "_id", "--max-length", "128", "--chunk-size", "8", "--batch-tokens", "256",
               "--format", "npy", "--precision", "int8", str(texts)]
    out = tmp_path / "out" / "docs.npy"
    out.parent.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "EMBTOOLS_HOME": str(tmp_path / "home")}
    process = subprocess.Popen([str(REPO / "bin" / "emb-encode"), *options, "-o", str(out), "--resume"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        killed_at = _wait_for_rows(progress_folder(out) / LEDGER, process, 24)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert killed_at < 240 and not out.exists()

    code, _, err = run_cli(encode, [*options, "--max-length", "64", "-o", out, "--resume"])
    assert code == 1 and "differ from those of the run that left" in err[-1]  # options changed: refused
    changed = write_jsonl(tmp_path / "docs.jsonl", read_jsonl(texts)[:-1])
    assert run_cli(encode, [*options, "-o", out, "--resume"])[0] == 1  # input changed: refused
    write_jsonl(changed, [{**d, "meta": {"n": n}} for n, d in enumerate(scifact_docs[:240])])

    code, _, err = run_cli(encode, [*options, "-o", out, "--resume"])
    assert code == 0, err
    assert not progress_folder(out).exists()
    assert run_cli(encode, [*options, "-o", tmp_path / "whole.npy"])[0] == 0
    ids, vectors = stored(out)
    whole_ids, whole = stored(tmp_path / "whole.npy")
    assert ids == whole_ids == [d["_id"] for d in scifact_docs[:240]]  # none twice, none missing
    assert np.array_equal(vectors, whole)
    assert (tmp_path / "whole.meta.json").read_bytes() == (out.parent / "docs.meta.json").read_bytes()
    assert (tmp_path / "whole.ids.jsonl").read_bytes() == (out.parent / "docs.ids.jsonl").read_bytes()


def test_resume_needs_an_output_file_and_an_input_file(tmp_path, text_file):
    assert run_cli(encode, [*MINILM, "--resume", str(text_file)])[0] == 2
    code, _, err = run_cli(encode, [*MINILM, "--resume", "-o", tmp_path / "o.jsonl"], input=text_file.read_bytes())
    assert code == 2 and "--resume needs -o OUT and the input as a FILE" in err[-1]
