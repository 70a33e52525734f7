"""emb-filter's content check (reason `placeholder`) on real records: stand-ins that SmolLM2-135M-Instruct wrote, and
real labeled data and corpora that must all pass.

tests/fixtures/placeholder_examples.jsonl holds 19 records, verbatim, of the 162 that emb-filter kept in the ablation
run of examples/ablation.mk (the local generator, `--length-tolerance 1`) before this check existed: 15 with a
stand-in, 4 without (two of them long-short examples whose labels are short codes, which a label may be).
"""

from __future__ import annotations

import pytest

from conftest import DATA, REPO, read_jsonl, run_cli
from embtools.commands.filter import main as emb_filter
from embtools.filter.content import label_problem, text_problem

GENERATED = REPO / "tests" / "fixtures" / "placeholder_examples.jsonl"
OTHER_CHECKS_OFF = ["--no-guidelines", "--no-dedup", "--no-near-dup", "--no-language-check"]
EXPECTED = {
    "short-long-0-0": "placeholder: query is a URL",
    "short-long-0-3": "placeholder: query has no letters",
    "short-long-0-4": "placeholder: query is an identifier",
    "short-long-4-0": "placeholder: positive is a field name or a slot code",
    "short-long-12-1": "placeholder: positive is a URL",
    "long-short-15-3": "placeholder: positive is a field name",
    "short-short-13-7": "placeholder: query is a field name or a slot code",
    "short-short-14-2": "placeholder: query is a template slot",
    "long-long-1-8": "placeholder: query is a file name",
    "long-long-8-4": "placeholder: query is a field name or a slot code",
    "long-long-13-2": "placeholder: positive is a file name",
    "sts-3": "placeholder: query is a field name or a slot code",
    "sts-57": "placeholder: positive is a field name or a slot code",
    "bitext-6": "placeholder: negative is a field name or a slot code",
    "bitext-34": "placeholder: query is a field name or a slot code",
}
KEPT = ["long-short-9-2", "long-short-6-1", "short-short-8-4", "sts-18"]


def rejects(path) -> dict:
    return {r["record"]["id"]: r["reason"] for r in read_jsonl(path)}


def test_generated_stand_ins_are_rejected_with_their_reason(tmp_path):
    code, out, err = run_cli(emb_filter, [GENERATED, "--rejects", tmp_path / "r.jsonl", *OTHER_CHECKS_OFF])
    assert code == 0, err
    assert [r["id"] for r in out] == KEPT
    assert rejects(tmp_path / "r.jsonl") == EXPECTED
    assert "19 examples read, 4 kept, 15 rejected (placeholder 15)" in err[-1]


@pytest.mark.parametrize("args, env, kept", [
    (["--no-content-check"], {}, 19),
    ([], {"EMBTOOLS_CONTENT_CHECK": "0"}, 19),
    (["--content-check"], {"EMBTOOLS_CONTENT_CHECK": "0"}, 4),  # the flag wins over the environment
    ([], {"EMBTOOLS_CONTENT_CHECK": "1"}, 4),
])
def test_switched_by_flag_then_environment(monkeypatch, args, env, kept):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, out, err = run_cli(emb_filter, [GENERATED, *args, *OTHER_CHECKS_OFF])
    assert code == 0 and len(out) == kept, err


def test_a_500_word_ask_answered_by_a_url_fails_the_length_guideline_unless_it_is_waived(tmp_path):
    """The URL document passed the ablation's filter because examples/Makefile waives lengths for the local
    generator (--length-tolerance 1 sets every lower bound to 0); at the default tolerance the guideline rejects it."""
    args = [GENERATED, "--no-content-check", "--no-dedup", "--no-near-dup", "--no-language-check"]
    code, out, err = run_cli(emb_filter, args + ["--rejects", tmp_path / "r.jsonl"])
    assert rejects(tmp_path / "r.jsonl")["short-long-0-0"] == "guideline-num-words: positive has 1 words, asked 500"
    code, out, err = run_cli(emb_filter, args + ["--length-tolerance", "1"])
    assert "short-long-0-0" in [r["id"] for r in out]


def test_no_labeled_example_is_rejected():
    """Every SciFact train and test pair and every STS Benchmark train and dev pair, whatever its score."""
    args = ["--from-beir", DATA / "scifact", "--from-sts", DATA / "stsbenchmark" / "train.jsonl",
            "--from-sts", DATA / "stsbenchmark" / "dev.jsonl", "--min-score", "0", *OTHER_CHECKS_OFF]
    code, out, err = run_cli(emb_filter, args)
    assert code == 0 and len(out) == 919 + 5749 + 1500, err
    code, out, err = run_cli(emb_filter, args[:2] + ["--split", "test"] + OTHER_CHECKS_OFF)
    assert code == 0 and len(out) == 339, err


def test_no_real_query_document_or_sentence_stands_in(scifact_docs, sts_dev_sentences):
    """SciFact's 5,183 documents (title, text, and both joined), its 1,109 claims and STS Benchmark's sentences, as
    texts and as labels: a document that merely contains a URL, a bracketed abbreviation or a formula is text."""
    claims = [q["text"] for q in read_jsonl(DATA / "scifact" / "queries.jsonl")]
    sts_train = [s for p in read_jsonl(DATA / "stsbenchmark" / "train.jsonl") for s in (p["sentence1"], p["sentence2"])]
    documents = [t for d in scifact_docs for t in (d["title"], d["text"], f"{d['title']} {d['text']}") if t]
    texts = documents + claims + sts_dev_sentences + sts_train
    assert len(texts) > 30_000
    assert [t for t in texts if text_problem(t) or label_problem(t)] == []
    assert any("http" in t for t in documents) and any("{beta}" in t for t in documents)


@pytest.mark.parametrize("value, problem", [
    ("<query>", "is a template slot"), ("{query}", "is a template slot"),
    ("[insert the query here]", "is a template slot"), ("Find [insert topic] quickly", "is a template slot"),
    ("your_domain", "is an identifier"), ("user_query", "is a field name or a slot code"),
    ("positive_document", "is a field name or a slot code"), ("Input text", "is a field name or a slot code"),
    ("N/A", "is the filler 'N/A'"), ("None", "is the filler 'None'"), ("S2", "is a field name or a slot code"),
    ("https://example.com/a", "is a URL"), ("www.example.org", "is a URL"), ("/data/input.txt", "is a file name"),
    ("2020-01-01", "has no letters"),
    ("Read more at https://www.nih.gov/health before you start.", None), ("Vitamin B12", None), ("amazon.com", None),
    ("U.S.", None), ("C++", None), ("node.js", None), ("and/or", None), ("The user", None), ("Data", None),
    ("estradiol [E2] and {beta}1-adrenergic receptors", None),
])
def test_text_rules(value, problem):
    assert text_problem(value) == problem


@pytest.mark.parametrize("value, problem", [
    ("correct_label", "is a field name"), ("<label>", "is a template slot"), ("https://example.com", "is a URL"),
    ("positive", None), ("None", None), ("A1", None), ("B", None), ("4 stars", None), ("not_spam", None),
])
def test_labels_are_held_only_to_what_no_label_looks_like(value, problem):
    assert label_problem(value) == problem
