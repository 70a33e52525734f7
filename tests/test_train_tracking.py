"""emb-train --report-to: loss, lr, throughput, gradient norm and eval metrics reach TensorBoard (read back from its
event files with TensorBoard's own EventAccumulator), on rank 0 only; a missing library is one line naming its
package. wandb, mlflow and trackio go through the same accelerate call and are not installed here (untested)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA, read_jsonl, run_cli, write_jsonl
from embtools.commands.train import main as train_main
from embtools.train.tracking import parse_report_to

STS_DEV = DATA / "stsbenchmark" / "dev.jsonl"
TINY = ["--batch-size", "8", "--mini-batch-size", "8", "--max-length", "64", "--lr", "1e-2", "--warmup-steps", "1",
        "--seed", "1"]


@pytest.fixture(scope="module")
def sts_examples(tmp_path_factory) -> Path:
    """64 real example records: STS Benchmark train pairs scored 4 or more, as query and positive."""
    pairs = [p for p in read_jsonl(DATA / "stsbenchmark" / "train.jsonl") if p["score"] >= 4][:64]
    records = [{"instruction": "Retrieve semantically similar text.", "query": p["sentence1"],
                "positive": p["sentence2"], "negative": None} for p in pairs]
    return write_jsonl(tmp_path_factory.mktemp("tracking") / "examples.jsonl", records)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on a shared 2-core machine two OpenMP threads per process wait for each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series TensorBoard reads from the event files of one run folder: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def test_tensorboard_gets_every_step_and_evaluation(sts_examples, tiny_decoder, tmp_path):
    code, records, errors = run_cli(train_main, [
        sts_examples, "--model", tiny_decoder, "--max-steps", "4", *TINY, "--eval", STS_DEV, "--eval-max-pairs",
        "100", "--eval-every", "2", "--report-to", "tensorboard", "-o", tmp_path / "out"])
    assert code == 0, errors[-20:]
    rows = [json.loads(line) for line in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    logged = scalars(tmp_path / "out.checkpoints" / "runs" / "emb-train")
    for key in ("loss", "lr", "grad_norm", "tokens_per_s", "examples_per_s"):
        assert [s for s, _ in logged[f"train/{key}"]] == [1, 2, 3, 4]
        assert [v for _, v in logged[f"train/{key}"]] == pytest.approx([r[key] for r in steps], rel=1e-6)
    evaluated = logged["eval/STSBenchmark_100 pairs/cosine_spearman"]
    assert [s for s, _ in evaluated] == [r["step"] for r in rows if "eval" in r] == [2, 4]
    assert [v for _, v in evaluated] == pytest.approx(
        [r["eval"]["STSBenchmark[100 pairs]"]["cosine_spearman"] for r in rows if "eval" in r], rel=1e-6)


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is not None, reason="mlflow is installed here")
def test_a_missing_library_is_one_line_naming_its_package_before_anything_loads(sts_examples, tmp_path,
                                                                                monkeypatch):
    monkeypatch.setenv("EMBTOOLS_REPORT_TO", "tensorboard,mlflow")  # the env var, comma-separated
    code, _, errors = run_cli(train_main, [sts_examples, "--model", tmp_path / "absent", "-o", tmp_path / "o"])
    assert code == 1 and errors[-1] == "emb-train: error: --report-to mlflow needs the mlflow library: " \
                                       "pip install mlflow"


@pytest.mark.parametrize(("values", "tools"), [
    (("none",), ()), ((), ()), (("tensorboard", "wandb"), ("tensorboard", "wandb")),
    (("tensorboard, trackio mlflow",), ("tensorboard", "trackio", "mlflow")), (("TensorBoard",), ("tensorboard",)),
])
def test_report_to_takes_several_tools(values, tools):
    assert parse_report_to(values) == tools


@pytest.mark.parametrize(("value", "message"), [("tensorboard,none", "none excludes the other tools"),
                                                ("comet", "'comet' is not one of none, tensorboard, wandb")])
def test_bad_report_to_is_a_usage_error(sts_examples, tmp_path, value, message):
    code, _, errors = run_cli(train_main, [sts_examples, "--report-to", value, "-o", tmp_path / "o"])
    assert code == 2 and message in errors[-1]


@pytest.mark.slow
def test_two_processes_log_once_and_evaluate_on_rank_0(sts_examples, tiny_decoder, tmp_path):
    """Under --num-processes 2 only rank 0 writes events and evaluates; rank 1 waits at the barrier."""
    result = subprocess.run(
        [sys.executable, "-m", "embtools.commands.train", sts_examples, "--model", tiny_decoder, "--max-steps", "2",
         *TINY, "--num-processes", "2", "--eval", STS_DEV, "--eval-max-pairs", "100", "--report-to", "tensorboard",
         "-o", tmp_path / "out"], capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "out.checkpoints" / "runs" / "emb-train"
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    logged = scalars(run_dir)
    assert [s for s, _ in logged["train/loss"]] == [1, 2]
    assert [s for s, _ in logged["eval/STSBenchmark_100 pairs/cosine_spearman"]] == [2]
    assert json.loads(result.stdout)["steps"] == 2
