"""emb-index: the library (build, add, load, search) and the CLI, on real-ish and real embeddings."""

from __future__ import annotations

import base64
import subprocess

import numpy as np
import orjson
import pytest

from conftest import DATA, REPO, read_jsonl, run_cli, write_jsonl
from embtools.commands.index import main as emb_index
from embtools.errors import EmbtoolsError, InputError
from embtools.index.vector_index import VectorIndex, add_to_index, build_index, search_records

DIM = 24


def clustered_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """Vectors around 20 topic centres, like embeddings of a corpus (random vectors have no neighbourhoods)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim))
    return (centres[rng.integers(0, 20, n)] + 0.5 * rng.standard_normal((n, dim))).astype(np.float32)


def records_of(vectors: np.ndarray, ids=None, encoding: str = "float") -> list[dict]:
    ids = ids if ids is not None else [f"d{i}" if i % 3 else i for i in range(len(vectors))]
    encode = (lambda v: base64.b64encode(v.astype("<f4").tobytes()).decode()) if encoding == "base64" \
        else (lambda v: v.tolist())
    return [{"id": i, "embedding": encode(v)} for i, v in zip(ids, vectors)]


def run(args, input=None):
    """(exit code, records on stdout, stderr lines) of emb-index."""
    return run_cli(emb_index, args, input)


@pytest.fixture
def corpus(tmp_path):
    vectors = clustered_vectors(500)
    return vectors, write_jsonl(tmp_path / "corpus.jsonl", records_of(vectors))


def test_flat_index_gives_exactly_brute_force_top_k(tmp_path, corpus):
    vectors, path = corpus
    build_index(read_jsonl(path), tmp_path / "ix")
    queries = clustered_vectors(50, seed=1)
    found = VectorIndex.load(tmp_path / "ix").search(queries, 10)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ unit.T
    ids = [r["id"] for r in records_of(vectors)]
    for row, hits in zip(scores, found):
        best = np.argsort(-row)[:10]
        assert [hit_id for hit_id, _ in hits] == [ids[i] for i in best]
        assert np.allclose([score for _, score in hits], row[best], atol=1e-5)


def test_cli_build_then_search_best_first_with_ids_kept_as_given(tmp_path, corpus):
    vectors, path = corpus
    code, out, err = run(["-o", str(tmp_path / "ix"), str(path)])
    assert code == 0 and out == []
    assert any("500 vectors (24-d, Flat)" in line for line in err)
    meta = orjson.loads((tmp_path / "ix" / "index.json").read_bytes())
    assert (meta["dim"], meta["count"], meta["factory"], meta["metric"], meta["normalized"]) == \
        (DIM, 500, "Flat", "inner_product", True)
    code, results, _ = run(["search", "--index", str(tmp_path / "ix"), "-k", "5"], input=path.read_bytes())
    assert code == 0 and len(results) == 500
    assert results[0]["hits"][0] == {"id": 0, "score": pytest.approx(1.0, abs=1e-5)}
    assert results[1]["id"] == "d1" and results[1]["hits"][0]["id"] == "d1"
    assert all(len(r["hits"]) == 5 for r in results)
    assert all(np.all(np.diff([h["score"] for h in r["hits"]]) <= 0) for r in results)


def test_pipes_through_the_command_with_no_subcommand(tmp_path, corpus):
    _, path = corpus
    command = str(REPO / "bin" / "emb-index")
    built = subprocess.run(f"cat {path} | {command} -o {tmp_path / 'ix'}", shell=True, capture_output=True)
    assert built.returncode == 0, built.stderr
    searched = subprocess.run(f"head -3 {path} | {command} search --index {tmp_path / 'ix'} -k 2 | head -1",
                              shell=True, capture_output=True)
    assert searched.returncode == 0 and searched.stderr.count(b"error") == 0
    assert orjson.loads(searched.stdout)["hits"][0]["id"] == 0


def test_build_subcommand_is_the_default(tmp_path, corpus):
    _, path = corpus
    run(["-o", str(tmp_path / "a"), str(path)])
    run(["build", "-o", str(tmp_path / "b"), str(path)])
    assert (tmp_path / "a" / "ids.jsonl").read_bytes() == (tmp_path / "b" / "ids.jsonl").read_bytes()
    assert (tmp_path / "a" / "index.faiss").read_bytes() == (tmp_path / "b" / "index.faiss").read_bytes()


def test_base64_and_float_inputs_give_the_same_index(tmp_path, corpus):
    vectors, _ = corpus
    build_index(records_of(vectors, encoding="float"), tmp_path / "f")
    build_index(records_of(vectors, encoding="base64"), tmp_path / "b")
    for name in ("index.faiss", "ids.jsonl"):
        assert (tmp_path / "f" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_k_larger_than_the_index_returns_what_there_is(tmp_path):
    build_index(records_of(clustered_vectors(3)), tmp_path / "ix")
    hits = VectorIndex.load(tmp_path / "ix").search(clustered_vectors(1, seed=2), 10)
    assert len(hits[0]) == 3


def test_model_comes_from_flag_or_first_record_meta(tmp_path):
    records = [{**r, "meta": {"model": "minilm-l6"}} for r in records_of(clustered_vectors(5))]
    assert build_index([dict(r) for r in records], tmp_path / "a")["model"] == "minilm-l6"
    assert build_index([dict(r) for r in records], tmp_path / "b", model="mine")["model"] == "mine"


def test_add_appends_and_refuses_id_collisions(tmp_path, corpus):
    vectors, path = corpus
    run(["-o", str(tmp_path / "ix"), str(path)])
    extra = write_jsonl(tmp_path / "extra.jsonl",
                        records_of(clustered_vectors(20, seed=3), ids=[f"x{i}" for i in range(20)]))
    assert run(["add", "--index", str(tmp_path / "ix"), str(extra)])[0] == 0
    index = VectorIndex.load(tmp_path / "ix")
    assert (index.ntotal, index.meta["count"], index.ids[-1]) == (520, 520, "x19")
    assert index.search(clustered_vectors(20, seed=3)[:1], 1)[0][0][0] == "x0"
    before = (tmp_path / "ix" / "ids.jsonl").read_bytes()
    code, _, err = run(["add", "--index", str(tmp_path / "ix"), str(extra)])
    assert code == 1 and err == ['emb-index: error: line 1: duplicate id "x0"']
    assert (tmp_path / "ix" / "ids.jsonl").read_bytes() == before
    with pytest.raises(InputError, match="dimension 24 expected, got 3"):
        add_to_index([{"id": "y", "embedding": [1.0, 2.0, 3.0]}], tmp_path / "ix")


def nan_base64() -> str:
    return base64.b64encode(np.array([0.1, np.nan, 0.3], dtype="<f4").tobytes()).decode()


BAD_INPUTS = {
    "dimension": (b'{"id": "a", "embedding": [1, 2, 3]}\n{"id": "b", "embedding": [1, 2]}\n',
                  'line 2: id "b": dimension 3 expected, got 2'),
    "nan-base64": (b'{"id": "a", "embedding": "' + nan_base64().encode() + b'"}\n',
                   'line 1: field "embedding" contains NaN or infinity'),
    "nan-literal": (b'{"id": "a", "embedding": [1, NaN, 3]}\n', "line 1: not valid JSON"),
    "duplicate": (b'{"id": 7, "embedding": [1, 2]}\n{"id": 7, "embedding": [2, 1]}\n', "line 2: duplicate id 7"),
    "empty": (b"\n", "no embeddings to index"),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_is_one_line_exit_1_and_no_index(tmp_path, name):
    data, message = BAD_INPUTS[name]
    code, out, err = run(["-o", str(tmp_path / "ix")], input=data)
    assert code == 1 and out == []
    assert len(err) == 1 and err[0].startswith(f"emb-index: error: {message}")
    assert list(tmp_path.iterdir()) == []


def test_skip_invalid_counts_and_keeps_the_rest(tmp_path):
    data = BAD_INPUTS["dimension"][0] + b'{"id": "c", "embedding": [3, 2, 1]}\n'
    code, _, err = run(["-o", str(tmp_path / "ix"), "--skip-invalid"], input=data)
    summary = "\n".join(err)
    assert code == 0 and "2 vectors" in summary and "1 skipped" in summary
    assert VectorIndex.load(tmp_path / "ix").ids == ["a", "c"]


def test_existing_folder_needs_overwrite_and_is_left_untouched(tmp_path, corpus):
    _, path = corpus
    (tmp_path / "ix").mkdir()
    (tmp_path / "ix" / "mine.txt").write_text("keep")
    code, _, err = run(["-o", str(tmp_path / "ix"), str(path)])
    assert code == 1 and len(err) == 1 and "exists; pass --overwrite" in err[0]
    assert [p.name for p in (tmp_path / "ix").iterdir()] == ["mine.txt"]
    assert run(["-o", str(tmp_path / "ix"), "--overwrite", str(path)])[0] == 0
    assert sorted(p.name for p in (tmp_path / "ix").iterdir()) == ["ids.jsonl", "index.faiss", "index.json"]


@pytest.mark.parametrize("content, message", [
    (b"{not json", "is corrupt (not valid JSON)"),
    (b'{"format": "embtools-index", "format_version": 99, "dim": 3, "count": 1}', "format version 99"),
    (None, "index.json is missing"),
])
def test_a_broken_index_folder_is_refused_in_one_line(tmp_path, corpus, content, message):
    _, path = corpus
    run(["-o", str(tmp_path / "ix"), str(path)])
    meta = tmp_path / "ix" / "index.json"
    meta.write_bytes(content) if content is not None else meta.unlink()
    code, out, err = run(["search", "--index", str(tmp_path / "ix"), str(path)])
    assert code == 1 and out == [] and len(err) == 1 and message in err[0]


def test_an_interrupted_build_leaves_no_folder_and_no_temporary(tmp_path):
    def failing_stream():
        yield from records_of(clustered_vectors(10_000))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_index(failing_stream(), tmp_path / "ix", batch_size=1000)
    assert list(tmp_path.iterdir()) == []


def test_too_few_points_for_ivf_is_said_in_one_line_or_fails_clearly(tmp_path, caplog):
    records = records_of(clustered_vectors(200))
    build_index([dict(r) for r in records], tmp_path / "ok", "IVF16,Flat")
    assert "training 16 IVF lists on 200 vectors (faiss wants 624)" in caplog.text
    with pytest.raises(EmbtoolsError, match="200 vectors cannot train 256 IVF lists"):
        build_index([dict(r) for r in records], tmp_path / "no", "IVF256,Flat")
    assert not (tmp_path / "no").exists()


def test_nprobe_and_ef_search_reach_faiss(tmp_path, corpus):
    vectors, _ = corpus
    build_index(records_of(vectors), tmp_path / "ivf", "IVF8,Flat")
    assert VectorIndex.load(tmp_path / "ivf").meta["search_defaults"] == {"nprobe": 8}  # all 8 lists: small index
    assert VectorIndex.load(tmp_path / "ivf", nprobe=2).index.nprobe == 2
    build_index(records_of(vectors), tmp_path / "hnsw", "HNSW16")
    assert VectorIndex.load(tmp_path / "hnsw", ef_search=99).index.hnsw.efSearch == 99
    with pytest.raises(EmbtoolsError, match="nprobe does not apply"):
        VectorIndex.load(tmp_path / "hnsw", nprobe=4)


def test_search_records_streams_hits_records(tmp_path, corpus):
    vectors, _ = corpus
    build_index(records_of(vectors), tmp_path / "ix")
    queries = [{**r, "meta": {"q": 1}} for r in records_of(vectors[:7], ids=list(range(7)))]
    index = VectorIndex.load(tmp_path / "ix")
    results = list(search_records(queries, index, 3, batch_size=2))
    expected = index.search(vectors[:7], 3)  # one search over all seven, no batches
    assert [r["id"] for r in results] == list(range(7))
    assert all(set(r) == {"id", "hits", "meta"} and r["meta"] == {"q": 1} for r in results)
    assert [[h["id"] for h in r["hits"]] for r in results] == [[i for i, _ in found] for found in expected]
    assert np.allclose([[h["score"] for h in r["hits"]] for r in results], [[s for _, s in f] for f in expected])
    assert [r["hits"][0]["id"] for r in results] == [0, "d1", "d2", 3, "d4", "d5", 6]  # each vector finds itself


def recall_at_k(approx: list[list[tuple]], exact: list[list[tuple]]) -> float:
    return float(np.mean([len({i for i, _ in a} & {i for i, _ in e}) / len(e) for a, e in zip(approx, exact)]))


@pytest.mark.slow
def test_approximate_indexes_reach_recall_095_at_their_defaults(tmp_path, minilm, scifact_docs):
    docs = scifact_docs[:2000]
    vectors = minilm.encode([f"{d['title']} {d['text'][:600]}" for d in docs])  # abstracts' openings: faster
    queries = minilm.encode([q["text"] for q in read_jsonl(DATA / "scifact" / "queries.jsonl")[:300]])
    records = records_of(vectors, ids=[d["_id"] for d in docs])
    exact = None
    for factory in ("Flat", "HNSW32", "IVF50,Flat"):  # 50 lists: the most 2,000 points train without a warning
        build_index([dict(r) for r in records], tmp_path / factory, factory)
        found = VectorIndex.load(tmp_path / factory).search(queries, 10)
        exact = exact or found
        recall = recall_at_k(found, exact)
        print(f"{factory}: recall@10 {recall:.3f}")
        assert recall >= 0.95, factory


def _embedding_file(path, vectors, precision="float32", ids=None, chunk=128):
    """Write vectors as emb-encode --format does (chunk by chunk); the file's format is its suffix."""
    from contextlib import ExitStack

    from embtools.records.embedding_files import EmbeddingFileInfo, open_writer
    from embtools.records.vector_precision import int8_ranges, quantize

    ids = ids if ids is not None else [f"d{i}" for i in range(len(vectors))]
    ranges = int8_ranges(vectors) if precision == "int8" else None
    with ExitStack() as stack:
        writer = open_writer(stack, path.suffix[1:], path, EmbeddingFileInfo(precision, vectors.shape[1], ranges))
        for start in range(0, len(vectors), chunk):
            records = [{"id": i} for i in ids[start:start + chunk]]
            writer.write(records, quantize(vectors[start:start + chunk], precision, ranges))
        writer.finish()
    return path


def _hits(args, input=None):
    code, records, err = run(args, input)
    assert code == 0, err
    return [[h["id"] for h in r["hits"]] for r in records]


@pytest.mark.parametrize("fmt", ["npy", "parquet"])
def test_npy_and_parquet_files_build_the_index_jsonl_builds(tmp_path, fmt):
    vectors = clustered_vectors(300)
    ids = [f"d{i}" for i in range(300)]
    jsonl = write_jsonl(tmp_path / "c.jsonl", records_of(vectors, ids))
    binary = _embedding_file(tmp_path / f"c.{fmt}", vectors)
    assert run(["build", jsonl, "-o", tmp_path / "a"])[0] == run(["build", binary, "-o", tmp_path / "b"])[0] == 0
    assert (tmp_path / "a" / "index.faiss").read_bytes() == (tmp_path / "b" / "index.faiss").read_bytes()
    assert (tmp_path / "a" / "ids.jsonl").read_bytes() == (tmp_path / "b" / "ids.jsonl").read_bytes()
    queries = _embedding_file(tmp_path / f"q.{fmt}", clustered_vectors(20, seed=1))
    assert _hits(["search", "--index", tmp_path / "a", queries]) == _hits(
        ["search", "--index", tmp_path / "a"], write_jsonl(tmp_path / "q.jsonl", records_of(
            clustered_vectors(20, seed=1), [f"d{i}" for i in range(20)])).read_bytes())


def test_build_takes_the_shards_one_after_another_and_add_takes_files(tmp_path):
    vectors = clustered_vectors(300)
    ids = [f"d{i}" for i in range(300)]
    shards = [_embedding_file(tmp_path / "s0.npy", vectors[:100], ids=ids[:100]),
              _embedding_file(tmp_path / "s1.parquet", vectors[100:200], ids=ids[100:200]),
              write_jsonl(tmp_path / "s2.jsonl", records_of(vectors[200:], ids[200:]))]
    code, _, err = run(["build", *shards, "-o", tmp_path / "ix"])
    assert code == 0 and "300 vectors" in err[-1]
    assert read_jsonl(tmp_path / "ix" / "ids.jsonl") == ids
    code, _, err = run(["build", shards[0], shards[0], "-o", tmp_path / "twice"])
    assert code == 1 and 's0.npy: row 1: duplicate id "d0"' in err[-1]
    run(["build", shards[0], "-o", tmp_path / "grown"])
    assert run(["add", "--index", tmp_path / "grown", shards[1]])[0] == 0
    assert read_jsonl(tmp_path / "grown" / "ids.jsonl") == ids[:200]


def test_ubinary_builds_a_binary_index_searched_by_hamming_distance(tmp_path):
    from embtools.records.vector_precision import quantize

    vectors = clustered_vectors(300, dim=64)
    path = _embedding_file(tmp_path / "c.npy", vectors, "ubinary")
    code, _, err = run(["build", path, "-o", tmp_path / "ix", "--factory", "HNSW16"])
    assert code == 0 and "(64-d, BHNSW16)" in err[-1]
    meta = orjson.loads((tmp_path / "ix" / "index.json").read_bytes())
    assert (meta["binary"], meta["precision"], meta["metric"], meta["dim"]) == (True, "ubinary", "hamming", 64)
    queries = clustered_vectors(10, dim=64, seed=1)
    found = VectorIndex.load(tmp_path / "ix", ef_search=300).search(queries, 5)
    bits = np.unpackbits(quantize(vectors, "ubinary"), axis=1).astype(int)
    for query, hits in zip(np.unpackbits(quantize(queries, "ubinary"), axis=1).astype(int), found):
        distances = np.sort(np.abs(bits - query).sum(axis=1))[:5]
        assert np.allclose([s for _, s in hits], 1 - 2 * distances / 64)
    float_queries = write_jsonl(tmp_path / "q.jsonl", records_of(queries, list(range(10))))
    packed = _embedding_file(tmp_path / "q.parquet", queries, "ubinary", ids=list(range(10)))
    assert _hits(["search", "--index", tmp_path / "ix", float_queries]) == _hits(
        ["search", "--index", tmp_path / "ix", packed])
    code, _, err = run(["add", "--index", tmp_path / "ix", float_queries])
    assert code == 1 and "this index holds ubinary vectors" in err[-1]


def test_int8_files_are_dequantized_with_their_ranges(tmp_path):
    from embtools.records.vector_precision import dequantize, int8_ranges, quantize

    vectors = clustered_vectors(300)
    code, _, err = run(["build", _embedding_file(tmp_path / "c.npy", vectors, "int8"), "-o", tmp_path / "ix"])
    assert code == 0, err
    ranges = int8_ranges(vectors)
    expected = dequantize(quantize(vectors, "int8", ranges), "int8", ranges)
    index = VectorIndex.load(tmp_path / "ix")
    stored = index.index.reconstruct_n(0, 300)
    assert np.allclose(stored, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)
    assert index.meta["precision"] == "int8" and not index.meta["binary"]


def test_binary_and_float_files_do_not_mix(tmp_path):
    vectors = clustered_vectors(20, dim=64)
    floats = _embedding_file(tmp_path / "f.npy", vectors)
    bits = _embedding_file(tmp_path / "b.npy", vectors, "ubinary", ids=[f"b{i}" for i in range(20)])
    code, _, err = run(["build", floats, bits, "-o", tmp_path / "ix"])
    assert code == 1 and "b.npy holds 64-d ubinary vectors" in err[-1]
