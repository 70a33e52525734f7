"""emb-index's bulk path: npy and Parquet files go in block by block (index/inputs.py, index/vector_blocks.py) and
build the index the record path builds, byte for byte, with the record path's errors and rejects.

Blocks are made small here (BULK_ROWS 64, --batch-size 50) so that three shards of 100, 70 and 130 rows cross block,
batch, shard and training-sample boundaries at different rows.
"""

from __future__ import annotations

import re
from itertools import chain

import numpy as np
import orjson
import pytest

from conftest import read_jsonl, run_cli
from embtools.commands.index import main as emb_index
from embtools.errors import InputError
from embtools.index import inputs
from embtools.index.vector_index import VectorIndex, build_index
from embtools.records.embedding_files import embedding_records
from embtools.records.jsonl import MAX_NESTING, parse_line, parse_lines
from test_index import _embedding_file, clustered_vectors

SIZES = (100, 70, 130)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(inputs, "BULK_ROWS", 64)


def shards(tmp_path, fmt, precision="float32", dim=24):
    """Three shard files of the same format with ids d0..d299; (paths, vectors)."""
    vectors = clustered_vectors(sum(SIZES), dim)
    ids = [f"d{i}" for i in range(len(vectors))]
    bounds = np.cumsum((0, *SIZES))
    paths = [_embedding_file(tmp_path / f"s{n}.{fmt}", vectors[a:b], precision, ids[a:b], chunk=48)
             for n, (a, b) in enumerate(zip(bounds, bounds[1:]))]
    return paths, vectors


def record_path(paths, out, precision, **options):
    """The index the record path builds: every row a record, checked and stacked one by one."""
    return build_index(chain.from_iterable(embedding_records(p)[1] for p in paths), out, precision=precision,
                       batch_size=50, **options)


@pytest.mark.parametrize(("fmt", "precision", "factory"), [
    ("npy", "float32", "Flat"), ("npy", "float16", "Flat"), ("parquet", "float32", "IVF4,Flat"),
    ("npy", "int8", "Flat"), ("parquet", "ubinary", "Flat"), ("npy", "ubinary", "IVF4")])
def test_the_bulk_path_builds_the_record_paths_index_byte_for_byte(tmp_path, fmt, precision, factory):
    paths, vectors = shards(tmp_path, fmt, precision, dim=64 if precision == "ubinary" else 24)
    code, _, err = run_cli(emb_index, ["build", *paths, "-o", tmp_path / "bulk", "--factory", factory,
                                       "--batch-size", 50, "--train-size", 150])
    assert code == 0, err
    record_path(paths, tmp_path / "rows", precision, factory=factory, train_size=150)
    for name in ("index.faiss", "ids.jsonl"):
        assert (tmp_path / "bulk" / name).read_bytes() == (tmp_path / "rows" / name).read_bytes(), name
    bulk, rows = VectorIndex.load(tmp_path / "bulk"), VectorIndex.load(tmp_path / "rows")
    assert bulk.ntotal == 300 and bulk.ids == [f"d{i}" for i in range(300)]
    assert bulk.search(vectors[:20], 5) == rows.search(vectors[:20], 5)


def test_add_takes_a_file_in_blocks_as_build_does(tmp_path):
    paths, _ = shards(tmp_path, "npy")
    assert run_cli(emb_index, ["build", paths[0], "-o", tmp_path / "grown"])[0] == 0
    assert run_cli(emb_index, ["add", "--index", tmp_path / "grown", "--batch-size", 50, paths[2]])[0] == 0
    record_path([paths[0], paths[2]], tmp_path / "rows", "float32")
    index, rows = VectorIndex.load(tmp_path / "grown"), VectorIndex.load(tmp_path / "rows")
    assert index.ids == rows.ids and np.array_equal(index.index.reconstruct_n(0, 230), rows.index.reconstruct_n(0, 230))


def test_the_bulk_reader_yields_blocks_of_the_file_not_records(tmp_path):
    from embtools.command_runner import RecordRun
    from embtools.index.embedding_checks import EmbeddingChecker
    from embtools.index.vector_blocks import VectorBlock

    paths, _ = shards(tmp_path, "parquet")
    _, items = inputs.read_inputs(RecordRun(), [str(p) for p in paths], EmbeddingChecker(), bulk=True)
    items = list(items)
    assert all(isinstance(item, VectorBlock) for item in items)
    assert [len(item) for item in items] == [64, 36, 64, 6, 64, 64, 2]


BAD = {"nan": (69, 's0.{}: row 70: field "embedding" contains NaN or infinity'),
       "duplicate": (109, 's1.{}: row 10: duplicate id "d3"'),
       "infinity": (174, 's2.{}: row 5: field "embedding" contains NaN or infinity')}


def bad_shards(tmp_path, fmt, kinds):
    """The three shards (float16 npy or float32 Parquet) with the bad rows of BAD: a NaN at row 70 of s0 (its
    second block), s0's id d3 again at row 10 of s1, an infinity at row 5 of s2."""
    vectors = clustered_vectors(sum(SIZES))
    ids = [f"d{i}" for i in range(len(vectors))]
    for kind in kinds:
        row = BAD[kind][0]
        if kind == "duplicate":
            ids[row] = "d3"
        else:
            vectors[row, 3] = np.nan if kind == "nan" else np.inf
    bounds = np.cumsum((0, *SIZES))
    precision = "float16" if fmt == "npy" else "float32"
    return [_embedding_file(tmp_path / f"s{n}.{fmt}", vectors[a:b], precision, ids[a:b])
            for n, (a, b) in enumerate(zip(bounds, bounds[1:]))]


@pytest.mark.parametrize("fmt", ["npy", "parquet"])
@pytest.mark.parametrize("kind", list(BAD))
def test_a_bad_row_fails_with_its_file_and_row_as_the_record_path_says(tmp_path, fmt, kind):
    paths = bad_shards(tmp_path, fmt, [kind])
    code, _, err = run_cli(emb_index, ["build", *paths, "-o", tmp_path / "ix"])
    assert code == 1 and not (tmp_path / "ix").exists()
    assert err[-1] == f"emb-index: error: {tmp_path}/{BAD[kind][1].format(fmt)}"


def test_skip_invalid_rejects_exactly_the_bad_rows_with_their_reasons(tmp_path):
    paths = bad_shards(tmp_path, "npy", list(BAD))
    code, _, err = run_cli(emb_index, ["build", *paths, "-o", tmp_path / "ix", "--rejects", tmp_path / "rej.jsonl"])
    assert code == 0, err
    rejects = read_jsonl(tmp_path / "rej.jsonl")
    assert [(r["row"], r["record"]["id"], r["reason"]) for r in rejects] == [
        (70, "d69", 'field "embedding" contains NaN or infinity'), (10, "d3", 'duplicate id "d3"'),
        (5, "d174", 'field "embedding" contains NaN or infinity')]
    assert VectorIndex.load(tmp_path / "ix").ids == [f"d{i}" for i in range(300) if i not in (69, 109, 174)]


def test_a_file_of_another_dimension_is_refused_at_its_first_row(tmp_path):
    paths, _ = shards(tmp_path, "npy")
    wide = _embedding_file(tmp_path / "wide.npy", clustered_vectors(10, dim=32), ids=[f"w{i}" for i in range(10)])
    assert run_cli(emb_index, ["build", paths[0], "-o", tmp_path / "ix"])[0] == 0
    code, _, err = run_cli(emb_index, ["add", "--index", tmp_path / "ix", wide])
    assert code == 1 and err[-1] == f'emb-index: error: {wide}: row 1: id "w0": dimension 24 expected, got 32'
    code, _, err = run_cli(emb_index, ["build", paths[0], wide, "-o", tmp_path / "mixed"])
    assert code == 1 and "wide.npy holds 32-d float32 vectors" in err[-1]


@pytest.mark.parametrize("depth", [MAX_NESTING, MAX_NESTING + 1])
def test_an_ids_block_is_parsed_as_line_by_line(depth):
    """parse_lines (the ids sidecar, a block at a time) gives what parse_line gives each line, errors included."""
    flat = [orjson.dumps({"id": f"d{i}", "n": i}) + b"\n" for i in range(300)]
    deep = b'{"id": 1, "meta": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}\n"
    assert parse_lines(flat) == [parse_line(line) for line in flat]
    for lines in (flat + [deep], flat[:1] + [b'{"id": 1}, {"id": 2}\n'], flat[:1] + [b"[1]\n"]):
        try:
            expected = [parse_line(line) for line in lines]
        except InputError as exc:
            with pytest.raises(InputError, match=re.escape(str(exc))):
                parse_lines(lines)
        else:
            assert parse_lines(lines) == expected


def test_a_max_memory_build_spools_the_blocks_with_their_ids(tmp_path):
    paths, vectors = shards(tmp_path, "npy")
    code, _, err = run_cli(emb_index, ["build", *paths, "-o", tmp_path / "ix", "--max-memory", "1M",
                                       "--batch-size", 50])
    assert code == 0, err
    index = VectorIndex.load(tmp_path / "ix")
    assert index.ids == [f"d{i}" for i in range(300)] and "choice" in index.meta
    rows = np.arange(0, 300, 15)  # rows of every shard and block: each finds itself
    assert [hits[0][0] for hits in index.search(vectors[rows], 1)] == [f"d{i}" for i in rows]
