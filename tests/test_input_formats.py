"""Records in the formats data comes in: .jsonl.gz, .jsonl.zst and .parquet give every command exactly what the
same records give as JSONL, stream, and fail with the same one-line errors (rows counted for Parquet)."""

from __future__ import annotations

import datetime
import decimal
import gzip
import io
import subprocess
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import DATA, REPO, read_jsonl, run_cli, write_jsonl
from embtools.commands.encode import main as emb_encode
from embtools.commands.eval import main as emb_eval
from embtools.commands.filter import main as emb_filter
from embtools.commands.index import main as emb_index
from embtools.errors import InputError
from embtools.records.datasets import (
    detect,
    evaluation_files,
    load_classification,
    load_retrieval,
    load_sts,
    split_of_file,
)
from embtools.records.jsonl import RejectSink, read_records
from embtools.train.data import DataSource, load_examples

FORMATS = ("jsonl", "jsonl.gz", "jsonl.zst", "parquet")


def write_formats(folder: Path, name: str, records: list[dict], rows_per_group: int = 16) -> dict[str, Path]:
    """The records as name.jsonl, .jsonl.gz, .jsonl.zst and .parquet (several row groups); format -> path."""
    plain = write_jsonl(folder / f"{name}.jsonl", records)
    paths = {"jsonl": plain, "jsonl.gz": folder / f"{name}.jsonl.gz", "jsonl.zst": folder / f"{name}.jsonl.zst",
             "parquet": folder / f"{name}.parquet"}
    paths["jsonl.gz"].write_bytes(gzip.compress(plain.read_bytes()))
    with pa.CompressedOutputStream(str(paths["jsonl.zst"]), "zstd") as out:
        out.write(plain.read_bytes())
    pq.write_table(pa.Table.from_pylist(records), paths["parquet"], row_group_size=rows_per_group)
    return paths


@pytest.fixture(scope="module")
def scifact_texts() -> list[dict]:
    """The first 24 SciFact documents as text records."""
    docs = read_jsonl(DATA / "scifact" / "corpus.jsonl")[:24]
    return [{"id": d["_id"], "title": d["title"], "text": d["text"]} for d in docs]


@pytest.fixture(scope="module")
def embeddings(scifact_texts, tmp_path_factory) -> list[dict]:
    """minilm-l6 embeddings of the SciFact texts, as emb-encode writes them."""
    path = write_jsonl(tmp_path_factory.mktemp("texts") / "texts.jsonl", scifact_texts)
    code, records, err = run_cli(emb_encode, ["--model", "minilm-l6", path])
    assert code == 0, err
    return records


def sts_examples(count: int = 60) -> list[dict]:
    """Example records made of STS Benchmark dev pairs: sentence1 asks, sentence2 answers."""
    pairs = read_jsonl(DATA / "stsbenchmark" / "dev.jsonl")[:count]
    return [{"id": f"sts{i}", "task_type": "short-short", "instruction": "Retrieve semantically similar text",
             "query": p["sentence1"], "positive": p["sentence2"], "negative": None, "language": "English",
             "meta": {"source": p["source"], "score": p["score"]}} for i, p in enumerate(pairs)]


def test_emb_encode_writes_the_same_embeddings_from_every_format(tmp_path, scifact_texts, embeddings):
    paths = write_formats(tmp_path, "texts", scifact_texts[:6])
    for kind in FORMATS:
        code, records, err = run_cli(emb_encode, ["--model", "minilm-l6", paths[kind]])
        assert code == 0, (kind, err)
        assert records == embeddings[:6], kind


def test_emb_filter_keeps_and_rejects_the_same_examples_from_every_format(tmp_path):
    examples = sts_examples()
    examples += [dict(e, id=f"again-{e['id']}") for e in examples[::10]]  # duplicates, for the filter to reject
    paths = write_formats(tmp_path, "examples", examples)
    outputs = {}
    for kind in FORMATS:
        code, records, err = run_cli(emb_filter, ["--rejects", tmp_path / f"rejects-{kind}", paths[kind]])
        assert code == 0, (kind, err)
        rejects = [(r["reason"], r["record"]["id"]) for r in read_jsonl(tmp_path / f"rejects-{kind}")]
        outputs[kind] = records, rejects
    kept, rejected = outputs["jsonl"]
    assert kept and rejected and len(kept) + len(rejected) == len(examples)  # the comparison covers both verdicts
    assert all(outputs[kind] == outputs["jsonl"] for kind in FORMATS)


def test_emb_index_builds_the_same_index_from_every_format(tmp_path, embeddings):
    paths = write_formats(tmp_path, "embeddings", embeddings)
    for kind in FORMATS:
        code, _, err = run_cli(emb_index, ["-o", tmp_path / f"ix-{kind}", paths[kind]])
        assert code == 0, (kind, err)
        for file in ("index.faiss", "ids.jsonl"):
            assert (tmp_path / f"ix-{kind}" / file).read_bytes() == (tmp_path / "ix-jsonl" / file).read_bytes()


def test_compressed_stdin_is_recognised_by_its_first_bytes(tmp_path, embeddings):
    """Through a real pipe (which can only peek) and through click's test stdin (which can seek)."""
    paths = write_formats(tmp_path, "embeddings", embeddings)
    for kind in ("jsonl.gz", "jsonl.zst"):
        piped = subprocess.run(f"cat {paths[kind]} | {REPO / 'bin' / 'emb-index'} -o {tmp_path / ('piped-' + kind)}",
                               shell=True, capture_output=True, timeout=300)
        assert piped.returncode == 0, piped.stderr
    code, _, err = run_cli(emb_index, ["-o", tmp_path / "runner", "-"], input=paths["jsonl.zst"].read_bytes())
    assert code == 0, err
    for folder in ("piped-jsonl.gz", "piped-jsonl.zst", "runner"):
        assert (tmp_path / folder / "ids.jsonl").read_bytes() == b"".join(
            orjson.dumps(r["id"]) + b"\n" for r in embeddings)


def test_a_bad_record_fails_with_its_line_or_row_number_in_every_format(tmp_path, embeddings):
    records = [dict(r) for r in embeddings]
    records[4]["embedding"] = None
    paths = write_formats(tmp_path, "embeddings", records)
    messages = {}
    for kind in FORMATS:
        code, _, err = run_cli(emb_index, ["-o", tmp_path / f"ix-{kind}", paths[kind]])
        assert code == 1 and not (tmp_path / f"ix-{kind}").exists()
        messages[kind] = err[-1]
    unit = {kind: "row" if kind == "parquet" else "line" for kind in FORMATS}
    assert messages["jsonl"].startswith('emb-index: error: line 5: field "embedding"')
    assert all(messages[kind] == messages["jsonl"].replace("line 5", f"{unit[kind]} 5") for kind in FORMATS)


def test_skipped_records_go_to_rejects_with_their_line_or_row(tmp_path, embeddings):
    records = [dict(r) for r in embeddings]
    records[2]["embedding"] = None
    paths = write_formats(tmp_path, "embeddings", records)
    for kind in FORMATS:
        code, _, err = run_cli(emb_index, ["-o", tmp_path / f"ix-{kind}", "--rejects", tmp_path / f"rej-{kind}",
                                           paths[kind]])
        assert code == 0, err
        (reject,) = read_jsonl(tmp_path / f"rej-{kind}")
        assert reject["row" if kind == "parquet" else "line"] == 3 and reject["record"]["id"] == records[2]["id"]
        assert len((tmp_path / f"ix-{kind}" / "ids.jsonl").read_bytes().splitlines()) == len(records) - 1


@pytest.mark.parametrize("kind", ["jsonl.gz", "jsonl.zst"])
def test_truncated_compressed_input_is_a_one_line_error(tmp_path, embeddings, kind):
    path = write_formats(tmp_path, "embeddings", embeddings)[kind]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    code, _, err = run_cli(emb_index, ["-o", tmp_path / "ix", "--skip-invalid", path])
    name = kind.split(".")[-1].replace("gz", "gzip").replace("zst", "zstd")
    assert code == 1 and not (tmp_path / "ix").exists()
    assert err[-1].startswith("emb-index: error: line ") and f"{name} data is truncated or damaged" in err[-1]


def test_a_truncated_parquet_file_is_a_one_line_error(tmp_path, embeddings):
    path = write_formats(tmp_path, "embeddings", embeddings)["parquet"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    code, _, err = run_cli(emb_index, ["-o", tmp_path / "ix", path])
    assert code == 1 and err[-1].startswith("emb-index: error: not a readable Parquet file (")


def test_a_name_that_disagrees_with_the_content_is_an_error(tmp_path, scifact_texts):
    path = write_jsonl(tmp_path / "texts.jsonl.gz", scifact_texts)
    with pytest.raises(InputError, match="its name says gzip, but it holds jsonl data"):
        list(read_records(path))


def test_parquet_from_a_pipe_is_a_one_line_error(tmp_path, embeddings):
    path = write_formats(tmp_path, "embeddings", embeddings)["parquet"]
    done = subprocess.run(f"cat {path} | {REPO / 'bin' / 'emb-index'} -o {tmp_path / 'ix'}", shell=True,
                          capture_output=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr.decode().splitlines()[-1].startswith("emb-index: error: Parquet input must be a file")


class CountingFile(io.RawIOBase):
    """A file that counts the bytes read from it."""

    def __init__(self, path: Path):
        self._file, self.bytes_read = open(path, "rb"), 0

    def readinto(self, buffer) -> int:
        count = self._file.readinto(buffer)
        self.bytes_read += count or 0
        return count

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()
        super().close()


@pytest.mark.parametrize("kind", FORMATS)
def test_the_first_record_is_read_without_reading_the_whole_file(tmp_path, kind):
    """The whole SciFact corpus (5,183 documents, 8 MB of JSONL; 21 Parquet row groups): the first record must come
    after reading under a tenth of the file. A reader that loads the whole file first fails (as pyarrow's ParquetFile
    did with its default pre_buffer=True: 5.26 MB read of a 5.19 MB file)."""
    records = read_jsonl(DATA / "scifact" / "corpus.jsonl")
    path = write_formats(tmp_path, "corpus", records, rows_per_group=256)[kind]
    counting = CountingFile(path)
    reader = read_records(io.BufferedReader(counting))
    assert next(reader) == records[0]
    assert counting.bytes_read < path.stat().st_size / 10, (counting.bytes_read, path.stat().st_size)
    reader.close()


def test_parquet_values_become_json_values(tmp_path):
    table = pa.table({
        "id": pa.array([1, 2], pa.int64()),
        "when": pa.array([datetime.datetime(2024, 5, 1, 12, 30), None], pa.timestamp("us")),
        "day": pa.array([datetime.date(2024, 5, 1), datetime.date(2024, 5, 2)]),
        "price": pa.array([decimal.Decimal("1.25"), decimal.Decimal("-3")]),
        "half": pa.array([0.5, 1.5], pa.float16()),
        "blob": pa.array([b"text", b"\xffnot utf-8"]),
        "tags": pa.array([["a", "b"], []], pa.list_(pa.dictionary(pa.int8(), pa.string()))),
        "meta": pa.array([{"seen": datetime.date(2020, 1, 1)}, {"seen": None}]),
    })
    pq.write_table(table, tmp_path / "values.parquet")
    rejected = io.BytesIO()
    records = list(read_records(tmp_path / "values.parquet", rejects=RejectSink(rejected)))
    assert records == [{"id": 1, "when": "2024-05-01T12:30:00", "day": "2024-05-01", "price": 1.25, "half": 0.5,
                        "blob": "text", "tags": ["a", "b"], "meta": {"seen": "2020-01-01"}}]
    (reject,) = [orjson.loads(line) for line in rejected.getvalue().splitlines()]
    assert (reject["row"], reject["reason"]) == (2, 'field "blob" holds binary data that is not UTF-8 text')
    assert orjson.loads(orjson.dumps(records[0])) == records[0]


def test_a_parquet_column_with_no_json_form_is_named_in_the_error(tmp_path):
    pq.write_table(pa.table({"id": [1], "took": pa.array([datetime.timedelta(seconds=3)], pa.duration("s"))}),
                   tmp_path / "durations.parquet")
    with pytest.raises(InputError, match=r'column "took": Parquet type duration\[s\] has no JSON form'):
        list(read_records(tmp_path / "durations.parquet"))


def test_a_beir_folder_may_hold_compressed_and_parquet_files(tmp_path):
    """BEIR on the hub ships corpus.jsonl.gz: the SciFact folder with its corpus gzipped and its queries in
    Parquet reads exactly as the JSONL folder does."""
    folder = tmp_path / "scifact"
    (folder / "qrels").mkdir(parents=True)
    (folder / "qrels" / "test.tsv").write_bytes((DATA / "scifact" / "qrels" / "test.tsv").read_bytes())
    (folder / "corpus.jsonl.gz").write_bytes(gzip.compress((DATA / "scifact" / "corpus.jsonl").read_bytes()))
    pq.write_table(pa.Table.from_pylist(read_jsonl(DATA / "scifact" / "queries.jsonl")), folder / "queries.parquet")
    source = detect(str(folder))
    assert (source.kind, source.name) == ("retrieval", "SciFact")
    assert load_retrieval(folder, "test") == load_retrieval(DATA / "scifact", "test")


def test_sts_and_classification_data_may_come_compressed_or_in_parquet(tmp_path):
    pairs = read_jsonl(DATA / "stsbenchmark" / "dev.jsonl")
    (tmp_path / "stsbenchmark").mkdir()
    sts_file = write_formats(tmp_path / "stsbenchmark", "dev", pairs)["jsonl.zst"]
    source = detect(str(sts_file))
    assert (source.kind, source.name, split_of_file(sts_file)) == ("sts", "STSBenchmark", "validation")
    assert load_sts(sts_file) == load_sts(DATA / "stsbenchmark" / "dev.jsonl")

    labelled = [{"text": p["sentence1"], "label": "similar" if p["score"] >= 2.5 else "different"} for p in pairs]
    folder = tmp_path / "similarity"
    folder.mkdir()
    train = write_formats(folder, "train", labelled[:1000])
    test = write_formats(folder, "test", labelled[1000:])
    for path in (train["jsonl"], train["jsonl.gz"], train["jsonl.zst"], test["jsonl"], test["jsonl.zst"],
                 test["parquet"]):
        path.unlink()  # left: train.parquet, test.jsonl.gz
    assert detect(str(folder)).kind == "classification"
    assert evaluation_files(folder) == [folder / "test.jsonl.gz"]
    data = load_classification(folder, "test")
    assert data.train_texts == [r["text"] for r in labelled[:1000]]
    assert (data.test_texts, data.test_labels) == ([r["text"] for r in labelled[1000:]],
                                                   [r["label"] for r in labelled[1000:]])


def scifact_slice(folder: Path, corpus_suffix: str, queries_suffix: str) -> Path:
    """SciFact's first 20 test queries, the documents they judge and 100 others, written in the given formats."""
    lines = (DATA / "scifact" / "qrels" / "test.tsv").read_text().splitlines()
    wanted = {line.split("\t")[0] for line in lines[1:]}
    qrels = [line for line in lines[1:] if line.split("\t")[0] in sorted(wanted)[:20]]
    judged = {line.split("\t")[1] for line in qrels}
    corpus = [d for i, d in enumerate(read_jsonl(DATA / "scifact" / "corpus.jsonl")) if i < 100 or d["_id"] in judged]
    queries = [q for q in read_jsonl(DATA / "scifact" / "queries.jsonl") if q["_id"] in sorted(wanted)[:20]]
    (folder / "qrels").mkdir(parents=True)
    (folder / "qrels" / "test.tsv").write_text("\n".join([lines[0], *qrels]) + "\n")
    for name, records, suffix in (("corpus", corpus, corpus_suffix), ("queries", queries, queries_suffix)):
        written = write_formats(folder, name, records)
        for kind, path in written.items():
            if kind != suffix:
                path.unlink()
    return folder


@pytest.mark.slow
def test_emb_eval_scores_a_compressed_and_parquet_folder_as_the_jsonl_one(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBTOOLS_HOME", str(tmp_path / "home"))  # no embedding cache shared between the runs
    scores = {}
    for corpus_kind, queries_kind in (("jsonl", "jsonl"), ("jsonl.gz", "parquet")):
        folder = scifact_slice(tmp_path / corpus_kind / "scifact", corpus_kind, queries_kind)
        code, records, err = run_cli(emb_eval, ["--model", "minilm-l6", folder])
        assert code == 0, err
        scores[corpus_kind] = [(r["task"], r["metric"], r["value"]) for r in records]
    assert any(value > 0.3 for _, _, value in scores["jsonl"])  # a real score, not an empty evaluation
    assert scores["jsonl.gz"] == scores["jsonl"]


def test_emb_train_reads_the_same_examples_from_every_format(tmp_path):
    paths = write_formats(tmp_path, "examples", sts_examples())
    pools = {kind: load_examples([DataSource(str(paths[kind]))]) for kind in FORMATS}
    assert len(pools["jsonl"][0]) == 60
    assert all(pools[kind] == pools["jsonl"] for kind in FORMATS)
