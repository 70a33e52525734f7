"""emb-train --eval / --eval-every / --keep-best: emb-eval's evaluation of the model being trained, the best step kept
as the output (its score re-computed by emb-eval equals the recorded one), and kept across kill -9 and --resume.

Runs use the tiny random decoder (tests/conftest.py) on real STS Benchmark pairs and a 200-pair slice of STS dev.
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

from conftest import DATA, run_cli
from embtools.commands.eval import main as eval_main
from embtools.commands.train import main as train_main
from embtools.train.evaluation import EvalPlan
from test_train_tracking import one_thread, scalars, sts_examples  # noqa: F401 (fixtures)

STS_DEV = DATA / "stsbenchmark" / "dev.jsonl"
EVAL_ARGS = ["--eval", STS_DEV, "--eval-max-pairs", "200", "--eval-every", "2"]


def common(examples: Path, model: Path) -> list:
    return [examples, "--model", model, "--max-steps", "6", "--batch-size", "8", "--mini-batch-size", "8",
            "--max-length", "64", "--lr", "1e-2", "--warmup-steps", "1", "--seed", "1"]


def train(args) -> tuple[dict, list[str]]:
    code, records, errors = run_cli(train_main, args)
    assert code == 0, "\n".join(errors[-40:])
    assert len(records) == 1, records
    return records[0], errors


def log_rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]


def eval_scores(folder: Path, metric: str = "cosine_spearman") -> dict[int, float]:
    return {row["step"]: row["eval"]["STSBenchmark[200 pairs]"][metric] for row in log_rows(folder) if "eval" in row}


@pytest.fixture(scope="module")
def kept_run(sts_examples, tiny_decoder, tmp_path_factory) -> tuple[Path, dict]:  # noqa: F811
    """Six steps, evaluated at 2, 4 and 6, the best cosine Spearman kept."""
    output = tmp_path_factory.mktemp("kept") / "out"
    summary, _ = train([*common(sts_examples, tiny_decoder), *EVAL_ARGS, "--keep-best",
                        "STSBenchmark:cosine_spearman", "-o", output])
    return output, summary


def test_metrics_every_n_steps_and_at_the_end_go_to_the_training_log(kept_run):
    output, _ = kept_run
    rows = log_rows(output)
    assert [r["step"] for r in rows if "eval" in r] == [2, 4, 6]
    metrics = next(r for r in rows if "eval" in r)["eval"]["STSBenchmark[200 pairs]"]
    assert {"cosine_spearman", "cosine_pearson", "euclidean_spearman"} <= set(metrics)
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert all(r["grad_norm"] > 0 for r in rows if "loss" in r)
    assert (output / "loss.png").stat().st_size > 0  # the plot skips the evaluation rows


def test_the_kept_adapter_is_the_best_steps_and_emb_eval_scores_it_as_recorded(kept_run):
    output, summary = kept_run
    scores = eval_scores(output)
    best_step = max(scores, key=scores.get)
    assert best_step != max(scores), f"the best step is the last one here ({scores}): keep-best proves nothing"
    recorded = json.loads((output / "best.json").read_text())
    assert recorded == summary["best"] == {"task": "STSBenchmark[200 pairs]", "metric": "cosine_spearman",
                                           "step": best_step, "value": scores[best_step]}
    code, records, errors = run_cli(eval_main, ["--model", output, "--dtype", "float32", "--no-cache",
                                                "--max-pairs", "200", STS_DEV])
    assert code == 0, errors
    rescored = next(r["value"] for r in records if r["metric"] == "cosine_spearman")
    assert rescored == pytest.approx(scores[best_step], abs=1e-6)
    assert all(abs(rescored - value) > 1e-3 for step, value in scores.items() if step != best_step)


def test_evaluation_does_not_change_training(kept_run, sts_examples, tiny_decoder, tmp_path):  # noqa: F811
    output, _ = kept_run
    train([*common(sts_examples, tiny_decoder), "-o", tmp_path / "plain"])
    with_eval = [r["loss"] for r in log_rows(output) if "loss" in r]
    assert [r["loss"] for r in log_rows(tmp_path / "plain")] == with_eval


@pytest.mark.slow
def test_a_killed_run_resumes_with_its_best_so_far(kept_run, sts_examples, tiny_decoder, tmp_path):  # noqa: F811
    """Killed right after the checkpoint of step 4 (evaluated just before), resumed: the same best as a run that was
    never killed, the best of steps 1-4 was on disk in between, and TensorBoard holds each step once."""
    output = tmp_path / "resumed"
    args = [*common(sts_examples, tiny_decoder), *EVAL_ARGS, "--keep-best", "STSBenchmark:cosine_spearman",
            "--save-every", "2", "--report-to", "tensorboard", "-o", output]
    killed = subprocess.run([sys.executable, "-m", "embtools.commands.train", *map(str, args)], capture_output=True,
                            text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1",
                                                         "EMBTOOLS_TRAIN_KILL_AFTER_CHECKPOINT": "4"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    straight_scores = eval_scores(kept_run[0])
    early_best = max((2, 4), key=straight_scores.get)
    on_disk = json.loads((tmp_path / "resumed.checkpoints" / "best" / "best.json").read_text())
    assert (on_disk["step"], on_disk["value"]) == (early_best, straight_scores[early_best])
    summary, errors = train([*args, "--resume"])
    assert any(f"best so far: step {early_best}" in line for line in errors)
    assert f"wrote {output} (step {summary['best']['step']}: STSBenchmark[200 pairs] cosine_spearman" in errors[-1]
    assert summary["best"] == kept_run[1]["best"]
    assert eval_scores(output) == straight_scores
    logged = scalars(tmp_path / "resumed.checkpoints" / "runs" / "emb-train")
    assert [s for s, _ in logged["train/loss"]] == [1, 2, 3, 4, 5, 6]  # steps 5-6 once: the resume purged them
    from safetensors.numpy import load_file

    straight = load_file(str(kept_run[0] / "adapter_model.safetensors"))
    resumed = load_file(str(output / "adapter_model.safetensors"))
    for name in straight:
        np.testing.assert_allclose(resumed[name], straight[name], atol=1e-6, err_msg=name)


def test_an_unknown_metric_is_one_line_at_the_first_evaluation(sts_examples, tiny_decoder, tmp_path):  # noqa: F811
    code, _, errors = run_cli(train_main, [*common(sts_examples, tiny_decoder), "--max-steps", "2", *EVAL_ARGS,
                                           "--keep-best", "STSBenchmark:ndcg_at_10", "-o", tmp_path / "o"])
    assert code == 1 and errors[-1].startswith("emb-train: error: --keep-best STSBenchmark:ndcg_at_10: no such "
                                               "metric (it has: cosine_pearson, cosine_spearman")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("every", "steps"), [(2, [2, 4, 5]), (None, [5]), (5, [5]), (1, [1, 2, 3, 4, 5])])
def test_evaluations_fall_every_n_steps_and_after_the_last(every, steps):
    plan = EvalPlan([str(STS_DEV)], every)
    assert [step for step in range(1, 6) if plan.due(step, total_steps=5)] == steps


@pytest.mark.parametrize(("extra", "message"), [
    (["--keep-best", "STSBenchmark"], "--keep-best needs --eval"),
    (["--eval-every", "2"], "--eval-every needs --eval"),
    (["--eval", STS_DEV, "--keep-best", "SciFact:ndcg_at_10"], "'SciFact' is not an evaluated task"),
    (["--eval", STS_DEV, "--deepspeed", "zero3"], "ZeRO-3"),
    (["--eval", "mteb:SciFact", "--eval-max-corpus", "100"], "apply to local folders only"),
])
def test_usage_errors_exit_2_before_anything_loads(tmp_path, extra, message):
    code, _, errors = run_cli(train_main, [tmp_path / "none.jsonl", "-o", tmp_path / "o", *extra])
    assert code == 2 and message in errors[-1], errors
