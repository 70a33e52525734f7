"""Data sets on the hub as inputs (`hf://datasets/...`): downloaded through huggingface_hub from a real loopback server
that speaks the hub's API (tests/hub_server.py, pointed at with HF_ENDPOINT) into a fresh HF_HOME, read through the
format readers, and failing in one line. The repos are built here from the SciFact and STS Benchmark data: records in
Parquet shards and gzip JSONL under a dataset card's `configs`, and SciFact in BEIR's layout (BeIR/scifact +
BeIR/scifact-qrels) and in mteb's (configs corpus, queries, default).

Each run is a fresh process (bin/emb-*): huggingface_hub reads HF_HOME and HF_ENDPOINT when it is first imported."""

from __future__ import annotations

import csv
import gzip
import os
import socket
import subprocess
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import DATA, REPO, read_jsonl, run_cli, write_jsonl
from embtools.commands.filter import main as emb_filter_command
from embtools.records.hub_datasets import HubDataset, inferred_configs, matching, parse_hub_dataset
from hub_server import HubServer

_HF_VARIABLES = ("HF_HOME", "HF_HUB_CACHE", "HF_ENDPOINT", "HF_TOKEN", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
                 "TRANSFORMERS_OFFLINE", "EMBTOOLS_OFFLINE")
EXAMPLES_CARD = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
  - split: test
    path: data/test.jsonl.gz
- config_name: broken
  data_files: broken/examples.jsonl.gz
- config_name: vectors
  data_files: vectors/embeddings.parquet
---
# Examples
"""
MTEB_CARD = """---
configs:
- config_name: corpus
  data_files:
  - split: test
    path: corpus/test-*
- config_name: default
  data_files:
  - split: test
    path: data/test-*
- config_name: queries
  data_files:
  - split: test
    path: queries/test-*
---
"""


def run(command: str, *args, home: Path, endpoint: str, **env: str) -> subprocess.CompletedProcess:
    """bin/`command` ARGS with HF_HOME=`home`, HF_ENDPOINT=`endpoint`, and nothing else of the machine's Hugging Face
    environment."""
    base = {k: v for k, v in os.environ.items() if k not in _HF_VARIABLES}
    return subprocess.run([str(REPO / "bin" / command), *map(str, args)], capture_output=True, timeout=300,
                          env={**base, "HF_HOME": str(home), "HF_ENDPOINT": endpoint, **env})


def error_line(result: subprocess.CompletedProcess, command: str) -> str:
    """The one error line of a failed run (after the line saying what was downloaded, when a file was read and
    failed), checked: exit code 1, nothing on stdout."""
    *before, line = result.stderr.decode().splitlines() or [""]
    assert result.returncode == 1 and result.stdout == b"" and line.startswith(f"{command}: error: "), line
    assert all(other.startswith(f"{command}: downloaded ") for other in before) and len(before) <= 1, before
    return line


def write_parquet(path: Path, records: list[dict], rows_per_group: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(records), path, row_group_size=rows_per_group)


def write_gzip_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in records)))


@pytest.fixture(scope="module")
def examples() -> list[dict]:
    """30 example records made of STS Benchmark dev pairs."""
    pairs = read_jsonl(DATA / "stsbenchmark" / "dev.jsonl")[:30]
    return [{"id": f"sts{i}", "task_type": "short-short", "instruction": "Retrieve semantically similar text",
             "query": p["sentence1"], "positive": p["sentence2"], "negative": None, "language": "English",
             "meta": {"source": p["source"]}} for i, p in enumerate(pairs)]


@pytest.fixture(scope="module")
def examples_repo(tmp_path_factory, examples) -> Path:
    """org/examples: train in two Parquet shards, test as gzip JSONL; a `broken` config whose line 3 is not JSON,
    and a `vectors` config of embedding records whose row 3 has no vector."""
    folder = tmp_path_factory.mktemp("examples")
    (folder / "README.md").write_text(EXAMPLES_CARD)
    (folder / ".gitattributes").write_text("*.parquet filter=lfs diff=lfs merge=lfs -text\n")  # as the hub has it
    write_parquet(folder / "data" / "train-00000-of-00002.parquet", examples[:12])
    write_parquet(folder / "data" / "train-00001-of-00002.parquet", examples[12:20])
    write_gzip_jsonl(folder / "data" / "test.jsonl.gz", examples[20:])
    lines = [orjson.dumps(e) for e in examples[:5]]
    lines[2] = lines[2][:40]
    (folder / "broken").mkdir()
    (folder / "broken" / "examples.jsonl.gz").write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    write_parquet(folder / "vectors" / "embeddings.parquet",
                  [{"id": i, "embedding": None if i == 2 else [1.0, float(i)]} for i in range(5)])
    return folder


@pytest.fixture(scope="module")
def scifact_slice(tmp_path_factory) -> Path:
    """A local BEIR folder `scifact/`: the first 15 test queries, their judged documents and 150 more."""
    folder = tmp_path_factory.mktemp("local") / "scifact"
    (folder / "qrels").mkdir(parents=True)
    rows = list(csv.reader((DATA / "scifact" / "qrels" / "test.tsv").open(), delimiter="\t"))
    queries = list(dict.fromkeys(row[0] for row in rows[1:]))[:15]
    judged = [row for row in rows[1:] if row[0] in queries]
    (folder / "qrels" / "test.tsv").write_text("\n".join("\t".join(row) for row in [rows[0], *judged]) + "\n")
    docs = {row[1] for row in judged}
    corpus = [d for i, d in enumerate(read_jsonl(DATA / "scifact" / "corpus.jsonl")) if i < 150 or d["_id"] in docs]
    write_jsonl(folder / "corpus.jsonl", corpus)
    write_jsonl(folder / "queries.jsonl", [q for q in read_jsonl(DATA / "scifact" / "queries.jsonl")
                                           if q["_id"] in queries])
    return folder


@pytest.fixture(scope="module")
def beir_repos(tmp_path_factory, scifact_slice) -> dict[str, Path]:
    """The slice as BeIR/scifact has it (gzip JSONL at the root) and BeIR/scifact-qrels (test.tsv)."""
    data, qrels = tmp_path_factory.mktemp("beir"), tmp_path_factory.mktemp("beir-qrels")
    for part in ("corpus", "queries"):
        write_gzip_jsonl(data / f"{part}.jsonl.gz", read_jsonl(scifact_slice / f"{part}.jsonl"))
    (qrels / "test.tsv").write_bytes((scifact_slice / "qrels" / "test.tsv").read_bytes())
    return {"BeIR/scifact": data, "BeIR/scifact-qrels": qrels}


@pytest.fixture(scope="module")
def mteb_repo(tmp_path_factory, scifact_slice) -> Path:
    """The slice as mteb/scifact has it: configs corpus, queries (`_id`) and default (the qrels), all Parquet."""
    folder = tmp_path_factory.mktemp("mteb")
    (folder / "README.md").write_text(MTEB_CARD)
    for part in ("corpus", "queries"):
        write_parquet(folder / part / "test-00000-of-00001.parquet", read_jsonl(scifact_slice / f"{part}.jsonl"),
                      rows_per_group=64)
    rows = list(csv.reader((scifact_slice / "qrels" / "test.tsv").open(), delimiter="\t"))[1:]
    write_parquet(folder / "data" / "test-00000-of-00001.parquet",
                  [{"query-id": q, "corpus-id": d, "score": int(s)} for q, d, s in rows])
    return folder


@pytest.fixture
def hub(examples_repo, beir_repos, mteb_repo):
    with HubServer({}, gated={"org/gated": "hf_right"},
                   datasets={"org/examples": examples_repo, "org/gated": examples_repo, "mteb/scifact": mteb_repo,
                             **beir_repos}) as server:
        yield server


def records_of(result: subprocess.CompletedProcess) -> list[dict]:
    return [orjson.loads(line) for line in result.stdout.splitlines()]


def emb_filter(*args, home: Path, endpoint: str, **env: str) -> subprocess.CompletedProcess:
    """emb-filter with its checks that need no model: what it reads, it writes (but for duplicates)."""
    return run("emb-filter", "--no-language-check", *args, home=home, endpoint=endpoint, **env)


def test_first_run_downloads_second_is_a_cache_hit_with_the_server_stopped(hub, examples, tmp_path):
    home = tmp_path / "hf"
    code, local, err = run_cli(emb_filter_command, ["--no-language-check", write_jsonl(tmp_path / "e.jsonl", examples)])
    assert code == 0 and len(local) == 30, err
    first = emb_filter("hf://datasets/org/examples:default/train", home=home, endpoint=hub.url)
    assert first.returncode == 0, first.stderr.decode()
    assert records_of(first) == local[:20]  # both shards, in order, as the same records from a local file
    assert sorted(hub.downloads()) == ["README.md", "data/train-00000-of-00002.parquet",
                                       "data/train-00001-of-00002.parquet"]
    assert f"downloaded 2 files of org/examples from {hub.url}" in first.stderr.decode()
    by_path = emb_filter("hf://datasets/org/examples/data/test.jsonl.gz", home=home, endpoint=hub.url)
    assert by_path.returncode == 0 and records_of(by_path) == local[20:], by_path.stderr.decode()
    hub.close()
    arguments = {"hf://datasets/org/examples:default/train": local[:20],
                 "hf://datasets/org/examples@main/data/test*": local[20:]}
    for (argument, expected), env in zip(arguments.items(), ({}, {"EMBTOOLS_OFFLINE": "1"})):
        again = emb_filter(argument, home=home, endpoint=hub.url, **env)
        assert again.returncode == 0, (argument, again.stderr.decode())
        assert records_of(again) == expected and b"downloaded" not in again.stderr


def test_offline_with_an_empty_cache_names_what_is_missing(hub, tmp_path):
    result = emb_filter("--offline", "hf://datasets/org/examples:default/train", home=tmp_path / "hf",
                        endpoint=hub.url)
    line = error_line(result, "emb-filter")
    assert f"dataset 'org/examples' is not a hub dataset in the Hugging Face cache ({tmp_path / 'hf' / 'hub'})" in line
    assert "--offline (EMBTOOLS_OFFLINE) forbids downloading it" in line and hub.log == []


@pytest.mark.parametrize("argument, expected", [
    ("hf://datasets/org/missing", "dataset 'org/missing' is not a repository on {url} (if it is private, set "
                                  "HF_TOKEN"),
    ("hf://datasets/org/gated:default/train", "dataset 'org/gated' is gated on {url}: accept its conditions on "
                                              "{url}/datasets/org/gated and set HF_TOKEN"),
    ("hf://datasets/org/examples", "hf://datasets/org/examples:default has several splits (test, train): name one, "
                                   "e.g. hf://datasets/org/examples:default/test"),
    ("hf://datasets/org/examples:nope/train", "hf://datasets/org/examples has no config 'nope' (it has: broken, "
                                              "default, vectors)"),
    ("hf://datasets/org/examples:default/dev", "hf://datasets/org/examples:default has no split 'dev' (it has: "
                                               "test, train)"),
    ("hf://datasets/org/examples/data/dev.parquet", "hf://datasets/org/examples/data/dev.parquet: no such file in "
                                                    "the repo (it has: .gitattributes, README.md, broken/"),
    ("hf://datasets/org/examples/README.md", "hf://datasets/org/examples/README.md: not a record file"),
    ("hf://datasets/org/examples:broken", "hf://datasets/org/examples/broken/examples.jsonl.gz: line 3: not valid "
                                          "JSON"),
    ("hf://datasets/org", "hf://datasets/org: expected hf://datasets/ORG/NAME[@REVISION][/PATH] or"),
])
def test_bad_hub_inputs_are_one_line(hub, tmp_path, argument, expected):
    line = error_line(emb_filter(argument, home=tmp_path / "hf", endpoint=hub.url), "emb-filter")
    assert expected.format(url=hub.url) in line, line


def test_a_bad_parquet_row_is_named_by_file_and_row(hub, tmp_path):
    result = run("emb-index", "-o", tmp_path / "index", "hf://datasets/org/examples:vectors", home=tmp_path / "hf",
                 endpoint=hub.url)
    line = error_line(result, "emb-index")
    assert line.startswith("emb-index: error: hf://datasets/org/examples/vectors/embeddings.parquet: row 3: "), line
    assert not (tmp_path / "index").exists()


def test_unreachable_hub_is_one_line(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    line = error_line(emb_filter("hf://datasets/org/examples:default/train", home=tmp_path / "hf", endpoint=url),
                      "emb-filter")
    assert "dataset 'org/examples' is not a hub dataset in the Hugging Face cache" in line
    assert f"the hub at {url} cannot be reached (ConnectError" in line


def test_rejects_from_a_hub_file_name_the_file_and_line(hub, examples, tmp_path):
    rejects = tmp_path / "rejects.jsonl"
    result = emb_filter("--rejects", rejects, "hf://datasets/org/examples:broken", home=tmp_path / "hf",
                        endpoint=hub.url)
    assert result.returncode == 0, result.stderr.decode()
    assert [orjson.loads(line)["id"] for line in result.stdout.splitlines()] == ["sts0", "sts1", "sts3", "sts4"]
    [entry] = read_jsonl(rejects)
    assert entry["file"] == "hf://datasets/org/examples/broken/examples.jsonl.gz" and entry["line"] == 3
    assert entry["reason"].startswith("not valid JSON") and entry["raw"].startswith('{"id":"sts2"')


def metric_values(stdout: bytes) -> list[list[tuple[str, float]]]:
    """The (metric, value) pairs of each evaluated task, in order."""
    tasks: dict[int, list] = {}
    records = [orjson.loads(line) for line in stdout.splitlines()]
    for record in records:
        tasks.setdefault(len(tasks) if record["metric"] == records[0]["metric"] else len(tasks) - 1, []).append(
            (record["metric"], record["value"]))
    return list(tasks.values())


@pytest.mark.slow  # loads minilm-l6 twice in fresh processes: about 30 s alone, minutes on a busy machine
def test_emb_eval_on_the_hub_copies_scores_as_the_local_folder(hub, scifact_slice, tmp_path):
    home = tmp_path / "hf"
    result = run("emb-eval", "--model", "minilm-l6", "--no-cache", scifact_slice, "hf://datasets/BeIR/scifact",
                 "hf://datasets/mteb/scifact", home=home, endpoint=hub.url)
    assert result.returncode == 0, result.stderr.decode()
    records = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert {r["task"] for r in records} == {"SciFact"} and {r["split"] for r in records} == {"test"}
    local, beir, mteb = metric_values(result.stdout)
    assert len(local) > 10 and local == beir == mteb
    assert dict(local)["ndcg_at_10"] > 0.5
    hub.close()
    again = run("emb-eval", "--model", "minilm-l6", "--no-cache", "--offline", "hf://datasets/mteb/scifact",
                home=home, endpoint=hub.url)
    assert again.returncode == 0 and metric_values(again.stdout) == [local], again.stderr.decode()


def test_emb_filter_from_beir_reads_the_hub_copy_as_the_folder(hub, scifact_slice, tmp_path):
    def examples(source) -> list[dict]:
        result = emb_filter("--from-beir", source, "--split", "test", home=tmp_path / "hf", endpoint=hub.url)
        assert result.returncode == 0, result.stderr.decode()
        return records_of(result)

    def without_path(records: list[dict]) -> list[dict]:
        return [dict(r, meta=dict(r["meta"], source=dict(r["meta"]["source"], path=None))) for r in records]

    local = examples(scifact_slice)
    assert len(local) > 15 and local[0]["id"].startswith("SciFact-test-")
    for repo in ("BeIR/scifact", "mteb/scifact"):
        from_hub = examples(f"hf://datasets/{repo}")
        assert without_path(from_hub) == without_path(local), repo
        assert {r["meta"]["source"]["path"] for r in from_hub} == {f"hf://datasets/{repo}"}


@pytest.mark.parametrize("command, args, expected", [
    ("emb-filter", ["--from-beir", "hf://datasets/mteb/scifact", "--split", "train"],
     "hf://datasets/mteb/scifact/qrels/train.tsv: no qrels for split 'train' (this folder has: test; choose one with "
     "--split)"),
    ("emb-eval", ["--model", "minilm-l6", "hf://datasets/org/examples"],
     "hf://datasets/org/examples is not a BEIR data set: it has no corpus config and no corpus.jsonl (or .jsonl.gz, "
     ".parquet) at its root"),
])
def test_bad_hub_beir_data_is_one_line(hub, tmp_path, command, args, expected):
    result = run(command, *args, home=tmp_path / "hf", endpoint=hub.url)
    assert error_line(result, command) == f"{command}: error: {expected}"


@pytest.mark.parametrize("argument, parsed", [
    ("hf://datasets/org/name", HubDataset("org/name")),
    ("hf://datasets/org/name/data/train-*.parquet", HubDataset("org/name", path="data/train-*.parquet")),
    ("hf://datasets/org/name@v1.0:corpus", HubDataset("org/name", "v1.0", config="corpus")),
    ("hf://datasets/org/name@refs%2Fconvert%2Fparquet:default/test",
     HubDataset("org/name", "refs/convert/parquet", config="default", split="test")),
])
def test_the_hub_forms_parse(argument, parsed):
    assert parse_hub_dataset(argument) == parsed
    assert argument.startswith(parsed.url) and argument[len(parsed.url):][:1] in ("", "/", ":")


def test_patterns_and_inferred_splits_follow_datasets():
    files = ["README.md", "data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet",
             "data/sub/train-9.parquet", "dev.jsonl.gz", "test/part.jsonl", "notes.txt", ".hidden/test.jsonl"]
    assert matching(files, "data/train-*") == files[1:3]
    assert matching(files, "data/**") == files[1:4] and matching(files, "test") == ["test/part.jsonl"]
    assert inferred_configs(files) == {"default": {"train": files[1:4], "validation": ["dev.jsonl.gz"],
                                                   "test": ["test/part.jsonl"]}}
    assert inferred_configs(["a.parquet", "b.jsonl", "c.csv"]) == {"default": {"train": ["a.parquet", "b.jsonl"]}}
