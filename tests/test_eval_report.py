"""emb-eval --max-pairs (a seeded STS slice) and --report/--compare (Markdown table + PNG chart)."""

from __future__ import annotations

import random

import pytest

from conftest import run_cli, write_jsonl
from embtools.commands.eval import main as emb_eval
from embtools.evaluate.report import main_scores, markdown_table


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBTOOLS_HOME", str(tmp_path / "home"))


@pytest.fixture
def sts_file(tmp_path, sts_dev):
    return write_jsonl(tmp_path / "sts.jsonl", sts_dev[:80])


def run(args):
    return run_cli(emb_eval, args)


def main_value(records):
    [record] = [r for r in records if r["main"]]
    return record


def test_max_pairs_scores_exactly_the_seeded_sample(sts_file, tmp_path, sts_dev):
    code, records, _ = run(["-m", "minilm-l6", sts_file, "--max-pairs", "30", "--seed", "7"])
    chosen = sorted(random.Random(7).sample(range(80), 30))
    subset = write_jsonl(tmp_path / "subset.jsonl", [sts_dev[i] for i in chosen])
    _, expected, _ = run(["-m", "minilm-l6", subset])
    assert code == 0
    assert main_value(records)["task"] == "sts[30 pairs]"
    assert main_value(records)["value"] == pytest.approx(main_value(expected)["value"], abs=1e-6)
    _, other_seed, _ = run(["-m", "minilm-l6", sts_file, "--max-pairs", "30", "--seed", "8"])
    assert main_value(other_seed)["value"] != pytest.approx(main_value(records)["value"], abs=1e-6)


def test_max_pairs_at_or_above_the_size_is_the_whole_file(sts_file):
    _, whole, _ = run(["-m", "minilm-l6", sts_file])
    _, capped, _ = run(["-m", "minilm-l6", sts_file, "--max-pairs", "500"])
    assert main_value(capped) == main_value(whole)


def test_report_puts_earlier_runs_beside_this_one(sts_file, tmp_path):
    earlier = write_jsonl(tmp_path / "before.jsonl", [
        {"task": "sts", "split": "test", "metric": "cosine_spearman", "value": 0.25, "main": True, "model": "base"},
        {"task": "sts", "split": "test", "metric": "cosine_pearson", "value": 0.2, "main": False, "model": "base"},
        {"task": "SciFact", "split": "test", "metric": "ndcg_at_10", "value": 0.5, "main": True, "model": "base"}])
    report = tmp_path / "out" / "report.md"
    report.parent.mkdir()
    code, records, stderr = run(["-m", "minilm-l6", sts_file, "--report", report, "--compare", earlier])
    text = report.read_text()
    ours = main_value(records)["value"]
    assert code == 0 and any("wrote" in line for line in stderr)
    assert "| sts | test | cosine_spearman | 0.2500 | " + f"{ours:.4f} |" in text
    assert "| SciFact | test | ndcg_at_10 | 0.5000 | - |" in text
    assert "`base` | `minilm-l6`" in text
    assert report.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in report.parent.iterdir()) == ["report.md", "report.png"]


def test_compare_without_report_and_a_bad_metrics_file_are_one_line_errors(sts_file, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task": "sts", "split": "test", "metric": "m", "value": "high", "main": true, "model": "x"}\n')
    code, _, stderr = run(["-m", "minilm-l6", sts_file, "--compare", bad])
    assert code == 2 and len(stderr) == 1 and "--compare needs --report" in stderr[0]
    code, _, stderr = run(["-m", "minilm-l6", sts_file, "--compare", bad, "--report", tmp_path / "r.md"])
    assert code == 1 and len(stderr) == 1 and stderr[0].endswith('line 1: field "value" must be a number')
    assert not (tmp_path / "r.md").exists()


def test_markdown_table_keeps_task_order_and_marks_missing_cells():
    records = [{"task": t, "split": "test", "metric": "m", "value": v, "main": True, "model": mod}
               for t, mod, v in (("b", "x", 0.1), ("a", "y", 0.2), ("b", "y", 0.3))]
    table, models = main_scores(records)
    assert models == ["x", "y"]
    assert markdown_table(table, models).splitlines()[2:] == ["| b | test | m | 0.1000 | 0.3000 |",
                                                             "| a | test | m | - | 0.2000 |"]
