"""emb-filter's checks on crafted records: one per reason code, through the real CLI, and the parts directly."""

from __future__ import annotations

import random
import unicodedata

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import DATA, read_jsonl, run_cli, write_jsonl
from embtools.commands.filter import main as emb_filter
from embtools.filter.decontamination import ContaminationIndex
from embtools.filter.near_duplicates import NearDuplicateIndex
from embtools.records.datasets import load_qrels
from embtools.records.text_keys import match_key
from embtools.records.word_count import whitespace_word_count

GERMAN = ("Die Impfung trainiert das Immunsystem, indem sie ihm einen harmlosen Teil eines Erregers zeigt. Wenn der "
          "echte Erreger später auftaucht, reagieren die Gedächtniszellen schnell und stark, und die Krankheit bleibt "
          "meistens aus oder verläuft deutlich milder als ohne diesen Schutz.")


def run(args, input=None):
    """(exit code, records on stdout, stderr lines) of emb-filter."""
    return run_cli(emb_filter, args, input)


def reasons(path) -> dict:
    """id -> reason code of every reject in a --rejects file."""
    return {r["record"]["id"]: r["reason"].split(":")[0] for r in read_jsonl(path)}


@pytest.fixture(scope="module")
def scifact_test_texts():
    qrels = load_qrels(DATA / "scifact" / "qrels" / "test.tsv")
    judged = {d for docs in qrels.values() for d in docs}
    queries = [q["text"] for q in read_jsonl(DATA / "scifact" / "queries.jsonl") if q["_id"] in qrels]
    return queries, judged


@pytest.fixture(scope="module")
def documents(scifact_docs, scifact_test_texts):
    """English documents of 120+ words that no evaluation set judges (so only crafted leaks are contaminated)."""
    judged = scifact_test_texts[1]
    docs = [d["text"] for d in scifact_docs if d["_id"] not in judged and len(d["text"].split()) >= 120]
    return docs[:40]


def example(id, query, positive, task_type="short-long", negative=None, language="English", **placeholders):
    return {"id": id, "task_type": task_type, "instruction": "Retrieve documents that answer the question",
            "query": query, "positive": positive, "negative": negative, "language": language,
            "meta": {"placeholders": placeholders, "model": "test"}}


@pytest.fixture(scope="module")
def crafted(documents, sts_dev, scifact_docs, scifact_test_texts):
    """(records, expected reason code per id, or None for kept)."""
    d = documents
    words = d[1].split()
    one_word_changed = " ".join(words[:40] + ["altered"] + words[41:])
    judged_doc = next(x["text"] for x in scifact_docs if x["_id"] in scifact_test_texts[1])
    leak = " ".join(judged_doc.split()[10:30])
    long_input = " ".join(d[9].split()[:120])
    cases = [
        (example("good", "Which treatments reduce the risk of stroke?", d[0], negative=d[20], num_words=100,
                 query_length="5 to 15 words"), None),
        (example("near-source", "What do cohort studies say about blood pressure?", d[1]), None),
        (example("missing-placeholders", "What is known about gut bacteria?", d[2]), None),
        (example("allowance", "I need a coffee", d[3]), None),
        (example("dup", "WHICH treatments  reduce the risk of   stroke?", d[0].upper()), "duplicate"),
        (example("near", "What do cohort studies say about blood pressure?", one_word_changed), "near-duplicate"),
        (example("schema", "", d[4]), "schema"),
        (example("num-words", "How is insulin made?", " ".join(d[5].split()[:30]), num_words=300),
         "guideline-num-words"),
        (example("query-length", " ".join(d[6].split()[:25]), d[6][::-1], query_length="less than 5 words"),
         "guideline-query-length"),
        (example("not-short", "A word", d[7], task_type="short-short"), "guideline-not-short"),
        (example("not-long", " ".join(d[8].split()[:50]), d[8], task_type="long-long"), "guideline-not-long"),
        (example("s2s3", "A man plays a guitar on a stage.", "Someone is playing a guitar on stage.",
                 task_type="sts", negative="someone is  PLAYING a guitar on stage."), "guideline-same-s2-s3"),
        (example("labels", long_input, "Cardiology", task_type="long-short", negative="cardiology "),
         "guideline-same-labels"),
        (example("label-in", long_input + " This is about cardiology.", "Cardiology", task_type="long-short",
                 negative="Oncology"), "guideline-label-in-input"),
        (example("copied", "does vitamin d prevent fractures", "Trials asked: Does vitamin D prevent fractures? "
                 + d[10]), "guideline-query-copied"),
        (example("language", "How do vaccines train the immune system?", GERMAN), "language"),
        (example("contam-exact", "  a MAN with a hard hat is   DANCING. ", d[11]), "contaminated-exact"),
        (example("contam-scifact", scifact_test_texts[0][0].upper().replace(" ", "  "), d[12]),
         "contaminated-exact"),
        (example("contam-ngram", "Which genes matter here?", d[13] + " " + leak.upper()), "contaminated-ngram"),
    ]
    return [record for record, _ in cases], {record["id"]: code for record, code in cases}


@pytest.fixture(scope="module")
def crafted_run(tmp_path_factory, crafted):
    tmp = tmp_path_factory.mktemp("crafted")
    records, _ = crafted
    allowance = write_jsonl(tmp / "chat.jsonl", [{"sentence1": "i need a coffee", "sentence2": "me too",
                                                  "score": 3.0}])
    source = write_jsonl(tmp / "examples.jsonl", records)
    code, out, err = run([source, "--rejects", tmp / "rejects.jsonl", "--report", tmp / "report.md",
                          "--decontaminate", DATA / "stsbenchmark" / "dev.jsonl", "--decontaminate", DATA / "scifact",
                          "--decontaminate", allowance])
    return code, out, err, tmp


def test_every_reason_code_rejects_its_crafted_record(crafted, crafted_run):
    code, out, err, tmp = crafted_run
    expected = crafted[1]
    assert code == 0, err
    kept = [r["id"] for r in out]
    assert kept == [i for i, reason in expected.items() if reason is None]
    assert reasons(tmp / "rejects.jsonl") == {i: reason for i, reason in expected.items() if reason}


def test_near_duplicate_differing_by_one_word_names_its_cluster(crafted_run):
    rejected = {r["record"]["id"]: r["record"] for r in read_jsonl(crafted_run[3] / "rejects.jsonl")}
    assert rejected["near"]["meta"]["filter"]["near_duplicate_of"] == "near-source"
    assert rejected["near"]["meta"]["model"] == "test"  # meta is added to, never dropped


def test_counts_per_reason_and_unchecked_placeholders_on_stderr(crafted_run):
    err = "\n".join(crafted_run[2])
    assert "19 examples read, 4 kept, 15 rejected" in err
    assert "contaminated-exact 2" in err and "near-duplicate 1" in err
    assert "guidelines: num_words missing" in err  # skipped, not rejected


def test_report_has_distributions_and_a_png(crafted_run):
    tmp = crafted_run[3]
    report = (tmp / "report.md").read_text()
    for part in ("## Reject reasons", "| guideline-num-words | 1 |", "## Kept examples by task type",
                 "| short-long | 4 |", "## Placeholder `num_words`", "## Text lengths", "report-lengths.png"):
        assert part in report
    assert (tmp / "report-lengths.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_check_can_be_switched_off(tmp_path, crafted):
    records, expected = crafted
    picked = [r for r in records if r["id"] in ("good", "dup", "near-source", "near", "num-words", "language")]
    source = write_jsonl(tmp_path / "some.jsonl", picked)
    code, out, err = run([source, "--no-dedup", "--no-near-dup", "--no-guidelines", "--no-language-check"])
    assert code == 0 and len(out) == len(picked)
    code, out, err = run([source, "--no-near-dup"])
    assert [r["id"] for r in out] == ["good", "near-source", "near"]


def test_bad_input_stops_with_the_line_or_is_counted(tmp_path, crafted):
    good = orjson.dumps(crafted[0][0]).decode()
    source = tmp_path / "bad.jsonl"
    source.write_text(f"{good}\n{{not json\n")
    code, out, err = run([source])
    assert code == 1 and len(err) == 1 and err[0].startswith("emb-filter: error: line 2: not valid JSON")
    code, out, err = run([source, "--skip-invalid"])
    assert code == 0 and len(out) == 1 and any("not valid JSON 1" in line for line in err)


def test_sts_dev_sentences_changed_in_case_and_spacing_are_contaminated(sts_dev_sentences):
    index = ContaminationIndex()
    index.add_source(DATA / "stsbenchmark" / "dev.jsonl")
    rng = random.Random(3)
    picked = [s for s in rng.sample(sts_dev_sentences, 60) if len(s.split()) >= 5][:30]
    for sentence in picked:
        changed = "  ".join(w.upper() if i % 2 else w.lower() for i, w in enumerate(sentence.split())) + " \n"
        assert index({"query": changed, "positive": "unrelated"}).startswith("contaminated-exact"), sentence
    assert index({"query": "i need a coffee", "positive": "A man is on the phone"}) is None


def test_scifact_test_documents_leak_through_a_long_shared_run(scifact_docs, scifact_test_texts):
    index = ContaminationIndex()
    index.add_source(DATA / "scifact")
    judged = [d for d in scifact_docs if d["_id"] in scifact_test_texts[1]][:5]
    for doc in judged:
        run_of_words = " ".join(doc["text"].split()[5:20])
        leaked = "An unrelated opening sentence. " + run_of_words.lower().replace(" ", "   ")
        assert index({"query": "q", "positive": leaked}).startswith("contaminated-ngram")
    train_only = next(d for d in scifact_docs if d["_id"] not in scifact_test_texts[1])
    assert index({"query": "q", "positive": train_only["text"]}) is None  # a shared corpus is not contamination


def test_near_duplicate_index_threshold():
    rng = random.Random(5)
    vocabulary = [f"word{i}" for i in range(3000)]
    base = rng.choices(vocabulary, k=200)
    index = NearDuplicateIndex(threshold=0.8)
    variants = [base, base[:100] + ["changed"] + base[101:], base[:100] + rng.choices(vocabulary, k=100),
                rng.choices(vocabulary, k=200)]
    found = []
    for number, tokens in enumerate(variants):
        bands = index.signatures([" ".join(tokens)])[0]
        found.append(index.find(bands))
        index.add(bands, number)
    assert found == [None, 0, None, None]


def test_band_hashes_of_a_text_do_not_depend_on_its_batch():
    rng = random.Random(9)
    texts = [" ".join(rng.choices([f"w{i}" for i in range(500)], k=rng.randint(0, 60))) for _ in range(40)]
    texts[3], texts[7] = "!!! ...", "two words"  # no word at all; fewer words than a shingle
    index = NearDuplicateIndex()
    alone = [index.signatures([t])[0] for t in texts]
    assert index.signatures(texts) == alone and alone[3] is None and alone[7] is not None
    bands, has_words = index.band_matrix(texts)
    assert has_words.tolist() == [a is not None for a in alone] and not bands[3].any()


_SPACES = st.sampled_from(list(" \t\n\r\x0b\x0c\x1c\x85\u00a0\u2003\u3000"))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=6), _SPACES), max_size=12).map("".join))
def test_word_count_and_match_key_fast_paths_agree_with_split(value):
    assert whitespace_word_count(value) == len(value.split())
    assert match_key(value) == " ".join(unicodedata.normalize("NFKC", value).casefold().split())


def test_labeled_data_converts_beir_train_qrels_and_sts_pairs():
    code, records, err = run(["--from-beir", DATA / "scifact", "--from-sts", DATA / "stsbenchmark" / "train.jsonl",
                              "--min-score", "4.5", "--no-near-dup", "--no-language-check", "--no-dedup",
                              "--no-guidelines"])
    beir = [r for r in records if r["task_type"] == "short-long"]
    sts = [r for r in records if r["task_type"] == "sts"]
    assert code == 0, err
    assert len(beir) == 919 and beir[0]["id"] == "SciFact-train-0-31715818" and beir[0]["negative"] is None
    assert beir[0]["instruction"].startswith("Given a scientific claim")
    gold = [p for p in read_jsonl(DATA / "stsbenchmark" / "train.jsonl") if p["score"] >= 4.5]
    assert len(sts) == len(gold) and all(r["meta"]["source"]["score"] >= 4.5 for r in sts)
