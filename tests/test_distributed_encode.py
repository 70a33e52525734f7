"""`--num-processes N`: N gloo processes under accelerate, each encoding a share, output still in input order."""

from __future__ import annotations

import subprocess

import numpy as np

from conftest import REPO, write_jsonl


def test_two_processes_match_one_in_order_from_stdin(tmp_path, sts_dev):
    records = [{"id": i if i % 2 else f"t{i}", "text": p["sentence2"], "meta": {"n": i}}
               for i, p in enumerate(sts_dev[:150])]
    source = write_jsonl(tmp_path / "in.jsonl", records)
    command = [str(REPO / "bin" / "emb-encode"), "--model", "minilm-l6", "--chunk-size", "16"]
    single = subprocess.run(command + [str(source)], capture_output=True, timeout=600)
    with open(source, "rb") as stdin:
        double = subprocess.run(command + ["--num-processes", "2"], stdin=stdin, capture_output=True, timeout=600)
    assert single.returncode == 0 and double.returncode == 0, double.stderr
    a = [__import__("orjson").loads(x) for x in single.stdout.splitlines()]
    b = [__import__("orjson").loads(x) for x in double.stdout.splitlines()]
    assert [r["id"] for r in b] == [r["id"] for r in records]
    assert [r["meta"] for r in b] == [r["meta"] for r in records]
    assert np.abs(np.array([r["embedding"] for r in a]) - np.array([r["embedding"] for r in b])).max() < 1e-5
    assert double.stderr.count(b"150 embeddings") == 1  # only rank 0 reports


def test_bad_input_under_two_processes_fails_with_one_line(tmp_path):
    source = tmp_path / "bad.jsonl"
    source.write_bytes(b'{"id": 1, "text": "fine"}\n{"id": 2}\n')
    done = subprocess.run([str(REPO / "bin" / "emb-encode"), "--model", "minilm-l6", "--num-processes", "2",
                           str(source)], capture_output=True, timeout=600)
    assert done.returncode != 0
    assert b'line 2: field "text" is missing' in done.stderr
    assert b"Traceback" not in done.stderr


def test_started_by_torchrun_it_runs_in_place_and_rank_0_writes(tmp_path, sts_dev):
    import sys

    records = [{"id": i, "text": p["sentence1"]} for i, p in enumerate(sts_dev[:40])]
    source = write_jsonl(tmp_path / "in.jsonl", records)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "-m", "embtools.commands.encode", "--model", "minilm-l6", "--chunk-size", "8", str(source)],
                          capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [__import__("orjson").loads(x)["id"] for x in done.stdout.splitlines()] == list(range(40))
