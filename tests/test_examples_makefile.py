"""examples/Makefile as a dependency graph: what a run would do, and that finished targets are never redone.

The recipes themselves run in the demo (`make demo`, docs/results.md); here make only plans (`-n`, `-q`), so the
checks cost milliseconds: every stage is reachable, a completed pipeline is up to date, a changed input redoes only
what depends on it, and the variables switch between the local generator and an API endpoint.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

MAKEFILE = Path(__file__).resolve().parents[1] / "examples" / "Makefile"
# Every file target in the order a run makes them (a target after its prerequisites).
TARGETS = [".dir", "tasks.jsonl", "examples.jsonl", "filtered.jsonl", "labeled-scifact.jsonl", "labeled-sts.jsonl",
           "train.json", "eval/reference.jsonl", "eval/before.jsonl", "eval/after.jsonl", "report.md",
           "corpus.emb.jsonl", "index/index.json", "search.hits.jsonl"]


def make(out: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "-f", str(MAKEFILE), f"OUT={out}", *args],
                          capture_output=True, text=True, env={**os.environ, "OPENAI_BASE_URL": "", **(env or {})})


def finish_pipeline(out: Path) -> None:
    """Create every target with increasing modification times, as a completed run leaves them."""
    for number, name in enumerate(TARGETS):
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("done\n")
        os.utime(path, (1_700_000_000 + number, 1_700_000_000 + number))


def commands(plan: str) -> list[str]:
    """The emb-* programs a dry run would start, in order."""
    return [word for line in plan.splitlines() for word in line.split() if word.startswith("emb-")]


def test_a_fresh_run_plans_every_stage_in_order(tmp_path):
    result = make(tmp_path / "out", "-n", "all")
    assert result.returncode == 0, result.stderr
    assert commands(result.stdout) == ["emb-brainstorm", "emb-generate", "emb-filter", "emb-filter", "emb-filter",
                                       "emb-train", "emb-eval", "emb-eval", "emb-eval", "emb-encode", "emb-index",
                                       "emb-encode", "emb-index"]
    assert "--model smollm2-135m" in result.stdout and "--base-url" not in result.stdout  # the local generator
    assert "--length-tolerance 1" in result.stdout
    assert "labeled-sts.jsonl:0.2" in result.stdout  # STS sampled down beside the retrieval data


def test_a_finished_pipeline_is_up_to_date(tmp_path):
    out = tmp_path / "out"
    finish_pipeline(out)
    assert make(out, "-q", "all").returncode == 0
    assert commands(make(out, "-n", "all").stdout) == []


def test_new_filtered_examples_redo_training_and_what_follows_only(tmp_path):
    out = tmp_path / "out"
    finish_pipeline(out)
    os.utime(out / "filtered.jsonl", (1_800_000_000, 1_800_000_000))
    assert make(out, "-q", "all").returncode == 1
    assert commands(make(out, "-n", "all").stdout) == ["emb-train", "emb-eval", "emb-encode", "emb-index",
                                                       "emb-encode", "emb-index"]


@pytest.mark.parametrize(("missing", "redone"), [
    ("eval/before.jsonl", ["emb-eval", "emb-eval"]),  # the baseline, then the comparison that includes it
    ("labeled-sts.jsonl",
     ["emb-filter", "emb-train", "emb-eval", "emb-encode", "emb-index", "emb-encode", "emb-index"]),
    ("search.hits.jsonl", ["emb-encode", "emb-index"]),
])
def test_a_lost_output_redoes_only_what_depends_on_it(tmp_path, missing, redone):
    out = tmp_path / "out"
    finish_pipeline(out)
    (out / missing).unlink()
    assert commands(make(out, "-n", "all").stdout) == redone


def test_an_api_endpoint_switches_generation_settings(tmp_path):
    result = make(tmp_path / "out", "-n", "all", env={"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"})
    assert result.returncode == 0, result.stderr
    assert "--base-url http://127.0.0.1:8000/v1" in result.stdout and "--model gpt-4o-mini" in result.stdout
    assert "--length-tolerance" not in result.stdout and "--languages" not in result.stdout
