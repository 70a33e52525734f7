"""Negative mining on a SciFact train slice with all-MiniLM-L6-v2: never a known positive; the window is reported."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from conftest import DATA, read_jsonl, run_cli, write_jsonl
from embtools.commands.filter import main as emb_filter
from embtools.filter.labeled_data import beir_examples
from embtools.filter.negative_mining import MiningSettings, NegativeMiner, pick_negatives
from embtools.records.datasets import load_qrels
from embtools.records.jsonl import RejectSink


@pytest.fixture(scope="module")
def scifact_slice(tmp_path_factory):
    return write_scifact_slice(tmp_path_factory.mktemp("slice") / "scifact")


def write_scifact_slice(folder):
    """A BEIR folder: 20 SciFact train queries, their positive documents and 300 other documents, each cut to its
    first 40 words (so encoding stays a few seconds on a busy 2-core CPU); returns (folder, qrels)."""
    folder.mkdir()
    qrels = load_qrels(DATA / "scifact" / "qrels" / "train.tsv")
    query_ids = list(qrels)[:20]
    positives = {d for q in query_ids for d in qrels[q]}
    corpus = read_jsonl(DATA / "scifact" / "corpus.jsonl")
    others = [d for d in corpus if d["_id"] not in positives][:300]
    kept = [d for d in corpus if d["_id"] in positives] + others
    write_jsonl(folder / "corpus.jsonl", [{**d, "text": " ".join(d["text"].split()[:40])} for d in kept])
    write_jsonl(folder / "queries.jsonl", [q for q in read_jsonl(DATA / "scifact" / "queries.jsonl")
                                           if q["_id"] in query_ids])
    (folder / "qrels").mkdir()
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t1\n" for q in query_ids for d in qrels[q]))
    return folder, {q: set(qrels[q]) for q in query_ids}


def texts_by_id(folder) -> dict:
    return {d["_id"]: f"{d['title']} {d['text']}".strip() for d in read_jsonl(folder / "corpus.jsonl")}


@pytest.fixture(scope="module")
def mined(scifact_slice, minilm):
    folder, qrels = scifact_slice
    settings = MiningSettings(model="minilm-l6", first_rank=2, last_rank=50, margin=0.95,
                              candidate_sources=(folder,))
    miner = NegativeMiner(settings, encoder=minilm)
    records = list(miner.mine(beir_examples(folder, "train"), RejectSink()))
    return records, miner


def test_a_mined_negative_is_never_a_positive_of_its_query(scifact_slice, mined):
    folder, qrels = scifact_slice
    records, miner = mined
    documents = texts_by_id(folder)
    with_negative = [r for r in records if r["negative"] is not None]
    assert len(with_negative) >= 0.9 * len(records)
    for record in with_negative:
        query_id = record["meta"]["source"]["query_id"]
        assert record["negative"] not in {documents[d] for d in qrels[query_id]}
        assert record["negative"] in documents.values()
        found = record["meta"]["filter"]["mined_negative"]
        assert 2 <= found["rank"] <= 50 and found["score"] < 0.95 * found["positive_score"] + 1e-4


def test_the_window_report_says_what_was_used_and_found(mined, capsys):
    records, miner = mined
    report = miner.report()
    print(report)
    assert "ranks 2-50, score < 0.95 x the positive's score" in report
    assert f"of {len(records)} examples got one" in report and "chosen rank median" in report
    assert "known positives" in capsys.readouterr().out


def test_pick_negatives_skips_known_positives_and_candidates_above_the_margin():
    rows, scores = np.array([7, 3, 9, 4, 5, -1]), np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.0])
    settings = MiningSettings(first_rank=2, last_rank=6, margin=0.9)
    skipped = Counter()
    assert pick_negatives(rows, scores, 0.75, {3}, settings, skipped) == [(4, 4, 0.6)]
    assert skipped == Counter({"known positive": 1, "above the margin": 1})
    assert pick_negatives(rows, scores, 0.5, set(), settings, Counter()) == []


def test_consistency_check_rejects_a_negative_that_outscores_the_positive(scifact_slice, minilm):
    folder, _ = scifact_slice
    examples = list(beir_examples(folder, "train"))[:4]
    swapped = {**examples[0], "id": "swapped", "positive": examples[3]["positive"], "negative": examples[0]["positive"]}
    sink = RejectSink()
    miner = NegativeMiner(MiningSettings(consistency=True, first_rank=1, last_rank=5), encoder=minilm)
    kept = list(miner.mine([swapped, examples[1]], sink))
    assert [r["id"] for r in kept] == [examples[1]["id"]] and sink.counts["inconsistent-negative"] == 1


def test_cli_mines_for_converted_beir_data_and_prints_the_window(tmp_path, scifact_slice):
    folder, qrels = scifact_slice
    code, records, err = run_cli(emb_filter, ["--from-beir", folder, "--mine-negatives", "--model", "minilm-l6",
                                              "--max-length", "64", "--negative-ranks", "3-30", "--no-language-check"])
    mined = [line for line in err if "mined negatives with minilm-l6 from" in line]
    assert code == 0, err
    assert len(mined) == 1 and "ranks 3-30" in mined[0]
    assert sum(r["negative"] is not None for r in records) >= 0.9 * len(records)
