"""The ablation of issue 18.1 (examples/ablation.mk): its plan, its held-out tasks on real data, and its cost table.

The plan is checked with `make -n` (milliseconds); the run itself and its numbers are in docs/results.md.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from tests.test_examples_makefile import make

ROOT = Path(__file__).resolve().parents[1]
STS_DEV = ROOT.parent / "shared" / "data" / "stsbenchmark" / "dev.jsonl"


def planned(out: Path, program: str) -> list[list[str]]:
    """The argument lists of every `program` call that `make -n ablation` would run (redirections cut off)."""
    plan = make(out, "-n", "ablation")
    assert plan.returncode == 0, plan.stderr
    commands = re.split(r" && |; |\n", plan.stdout.replace("\\\n", " "))
    calls = [shlex.split(re.split(r" (?:2>|>>|>) ", command)[0]) for command in commands if program in command]
    return [call[call.index(program):] for call in calls]


def options(call: list[str]) -> list[str]:
    """A call without its positional inputs (the words after `-o DIR` that are files)."""
    return call[:call.index("-o") + 2]


def test_the_three_trainings_differ_only_in_their_data(tmp_path):
    out = tmp_path / "out"
    trains = planned(out, "emb-train")
    assert len(trains) == 3
    model_dir = str(out / "ablation" / "model-")
    assert len({tuple(o for o in options(c) if not o.startswith(model_dir)) for c in trains}) == 1
    data = {Path(c[c.index("-o") + 1]).name: c[c.index("-o") + 2:] for c in trains}
    synthetic, labeled = [str(out / "ablation" / "synthetic.jsonl")], [str(out / "labeled-scifact.jsonl"),
                                                                      str(out / "labeled-sts.jsonl") + ":0.2"]
    assert data == {"model-synthetic": synthetic, "model-labeled": labeled, "model-both": synthetic + labeled}


def test_every_model_meets_the_same_tasks_with_the_same_settings(tmp_path):
    out = tmp_path / "out"
    evals = planned(out, "emb-eval")
    models = [c[c.index("--model") + 1] for c in evals]
    assert sorted(set(models)) == sorted(["smollm2-135m", *(str(out / "ablation" / f"model-{m}")
                                                           for m in ("synthetic", "labeled", "both"))])
    settings = {m: sorted(tuple(c[:c.index("--model")] + c[c.index("--model") + 2:]) for c in evals
                          if c[c.index("--model") + 1] == m) for m in set(models)}
    assert len({tuple(s) for s in settings.values()}) == 1 and len(settings[models[0]]) == 3


def test_the_synthetic_set_covers_the_six_task_groups(tmp_path):
    out = tmp_path / "out"
    groups = [c[c.index("--task-type") + 1] for c in planned(out, "emb-brainstorm")]
    groups += [c[c.index("--task-type") + 1] for c in planned(out, "emb-generate") if "--task-type" in c]
    assert sorted(groups) == sorted(["short-long", "long-short", "short-short", "long-long", "sts", "bitext"])
    assert len(planned(out, "emb-generate")) == 6


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    folder = tmp_path_factory.mktemp("heldout")
    subprocess.run([sys.executable, str(ROOT / "examples" / "heldout_tasks.py"), str(STS_DEV), str(folder)],
                   check=True)
    return folder


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_genre_classification_is_balanced_and_disjoint(heldout):
    train, test = (rows(heldout / "STSDevGenreClassification" / f"{s}.jsonl") for s in ("train", "test"))
    for split, size in ((train, 60), (test, 150)):
        assert {label: sum(r["label"] == label for r in split) for label in ("captions", "forums", "news")} == \
            dict.fromkeys(("captions", "forums", "news"), size)
    assert not {r["text"] for r in train} & {r["text"] for r in test}


def test_paraphrase_retrieval_judges_only_close_pairs_and_minilm_finds_them(heldout):
    folder = heldout / "STSDevParaphraseRetrieval"
    corpus = {r["_id"]: r["text"] for r in rows(folder / "corpus.jsonl")}
    queries = {r["_id"]: r["text"] for r in rows(folder / "queries.jsonl")}
    qrels = [line.split("\t") for line in (folder / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    dev = {f"q{line}": r for line, r in enumerate(rows(STS_DEV), start=1)}
    assert len(queries) == len(qrels) == sum(r["score"] >= 4 for r in dev.values()) == 264
    assert all(corpus[doc] == dev[query]["sentence2"] and dev[query]["score"] >= 4 for query, doc, _ in qrels)
    assert len(corpus) == len({r["sentence2"] for r in dev.values()})
    result = subprocess.run([str(Path(sys.executable).parent / "emb-eval"), "--model", "minilm-l6", str(folder)],
                            capture_output=True, text=True, env={**os.environ, "EMBTOOLS_PROGRESS": "0"})
    assert result.returncode == 0, result.stderr
    main = [r for r in map(json.loads, result.stdout.splitlines()) if r["main"]]
    assert main[0]["task"] == "STSDevParaphraseRetrieval" and main[0]["value"] > 0.8  # chance: about 0.003


def test_cost_table_sums_the_logs_and_counts_what_the_filter_kept(tmp_path):
    spec = importlib.util.spec_from_file_location("ablation_report", ROOT / "examples" / "ablation_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "tasks-sts.jsonl.log").write_text("")
    (tmp_path / "examples-sts.jsonl").write_text('{"task_type": "sts"}\n' * 4)
    (tmp_path / "examples-sts.jsonl.log").write_text(
        "emb-generate: 4 examples written; 5 calls (1 from the cache, 0 retries); tokens: 900 prompt + 300 "
        "completion; 61.0 s\nseconds: 62\n")
    (tmp_path / "synthetic.jsonl").write_text('{"task_type": "sts"}\n' * 3)
    table = module.cost(tmp_path)
    assert "| sts | 5 | 900 | 300 | 62 | - | 4 | 3 | 0.75 |" in table
    assert "| all | 5 | 900 | 300 | 62 | - | 4 | 3 | 0.75 |" in table
