"""Embedding files (records/embedding_files.py) and vector precisions (records/vector_precision.py): written chunk by
chunk, read back bit for bit, quantized as sentence-transformers quantizes, damaged files refused in one line."""

from __future__ import annotations

from contextlib import ExitStack

import numpy as np
import pytest

from embtools.errors import InputError
from embtools.records.embedding_files import (
    EmbeddingFileInfo,
    embedding_records,
    file_format,
    open_writer,
    read_embedding_file,
    sidecar,
)
from embtools.records.vector_precision import VectorShaper, dequantize, int8_ranges, quantize, truncate


def matrix(n: int = 300, dim: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def write(fmt: str, path, vectors: np.ndarray, precision: str = "float32", chunk: int = 64, ids=None,
          ranges=None) -> EmbeddingFileInfo:
    """Write `vectors` (float32) as `precision` in chunks of `chunk` rows; records carry a pass-through field."""
    ids = ids if ids is not None else [f"d{i}" for i in range(len(vectors))]
    info = EmbeddingFileInfo(precision, vectors.shape[1], ranges=ranges, model="m")
    with ExitStack() as stack:
        writer = open_writer(stack, fmt, path, info)
        for start in range(0, len(vectors), chunk):
            part = vectors[start:start + chunk]
            records = [{"id": i, "meta": {"n": start + k}} for k, i in enumerate(ids[start:start + chunk])]
            writer.write(records, quantize(part, precision, ranges))
        writer.finish()
    return info


def read_all(path):
    info, chunks = read_embedding_file(path, rows=50)
    parts = list(chunks)
    return info, [r for records, _ in parts for r in records], np.concatenate([rows for _, rows in parts])


@pytest.mark.parametrize("fmt", ["npy", "parquet"])
@pytest.mark.parametrize("precision", ["float32", "float16", "int8", "ubinary"])
def test_written_in_chunks_read_back_bit_for_bit(tmp_path, fmt, precision):
    vectors = matrix()
    ranges = int8_ranges(vectors[:64]) if precision == "int8" else None
    path = tmp_path / f"e.{fmt}"
    write(fmt, path, vectors, precision, ranges=ranges)
    assert file_format(path) == fmt
    info, records, stored = read_all(path)
    assert np.array_equal(stored, quantize(vectors, precision, ranges))
    assert stored.dtype == quantize(vectors[:1], precision, ranges).dtype
    assert [r["id"] for r in records] == [f"d{i}" for i in range(300)]
    assert records[123]["meta"] == {"n": 123}
    assert (info.precision, info.dim, info.count, info.model) == (precision, 48, 300, "m")
    if precision == "int8":
        assert np.array_equal(info.ranges, ranges)


def test_npy_is_a_plain_numpy_matrix_with_its_final_count_in_the_header(tmp_path):
    vectors = matrix(130)
    write("npy", tmp_path / "e.npy", vectors, chunk=7)
    assert np.array_equal(np.load(tmp_path / "e.npy"), vectors)
    assert sidecar(tmp_path / "e.npy", "ids").name == "e.ids.jsonl"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.ids.jsonl", "e.meta.json", "e.npy"]  # no temporaries


def test_parquet_ids_keep_their_type_and_a_second_type_is_refused(tmp_path):
    vectors = matrix(10)
    write("parquet", tmp_path / "i.parquet", vectors, ids=list(range(10)))
    assert [r["id"] for r in read_all(tmp_path / "i.parquet")[1]] == list(range(10))
    with pytest.raises(InputError, match="ids of one type"):
        write("parquet", tmp_path / "m.parquet", vectors, ids=["a", *range(9)], chunk=5)
    assert not (tmp_path / "m.parquet").exists()


def test_an_npy_matrix_from_elsewhere_is_read_with_its_ids_file(tmp_path):
    vectors = matrix(5)
    np.save(tmp_path / "x.npy", vectors.astype(np.float16))
    (tmp_path / "x.ids.jsonl").write_bytes(b"".join(b'{"id": %d}\n' % i for i in range(5)))
    info, records = embedding_records(tmp_path / "x.npy")
    rows = list(records)
    assert info.precision == "float16" and [r["id"] for r in rows] == list(range(5))
    assert rows[0]["embedding"].dtype == np.float32
    np.save(tmp_path / "y.npy", vectors.astype(np.int8))
    with pytest.raises(InputError, match="y.meta.json"):
        embedding_records(tmp_path / "y.npy")


def test_an_ids_file_of_another_length_is_refused(tmp_path):
    write("npy", tmp_path / "e.npy", matrix(20))
    ids = tmp_path / "e.ids.jsonl"
    ids.write_bytes(b"".join(ids.read_bytes().splitlines(keepends=True)[:-1]))
    with pytest.raises(InputError, match="different number of lines"):
        read_all(tmp_path / "e.npy")


def test_int8_and_ubinary_are_sentence_transformers_quantize_embeddings():
    from sentence_transformers.util.quantization import quantize_embeddings

    vectors, calibration = matrix(200, seed=1), matrix(500, seed=2)
    ranges = int8_ranges(calibration)
    ours = quantize(vectors, "int8", ranges)
    assert np.array_equal(ours, quantize_embeddings(vectors, "int8", calibration_embeddings=calibration))
    assert np.array_equal(quantize(vectors, "ubinary"), quantize_embeddings(vectors, "ubinary"))
    back = dequantize(ours, "int8", ranges)
    steps = (ranges[1] - ranges[0]) / 255
    inside = (vectors >= ranges[0]) & (vectors <= ranges[1])
    assert np.all(np.abs(back - vectors)[inside] <= np.broadcast_to(steps, vectors.shape)[inside] * 1.0001)


def test_truncation_keeps_the_first_dimensions_renormalized():
    vectors = matrix(10, 64)
    short = truncate(vectors, 16, normalize=True)
    assert short.shape == (10, 16)
    assert np.allclose(np.linalg.norm(short, axis=1), 1, atol=1e-6)
    assert np.allclose(short * np.linalg.norm(vectors[:, :16], axis=1, keepdims=True), vectors[:, :16], atol=1e-6)
    assert np.array_equal(truncate(vectors, 16, normalize=False), vectors[:, :16])


def test_the_shaper_calibrates_int8_on_its_first_chunk_and_keeps_it():
    shaper = VectorShaper("int8", 32, normalize=True)
    first, second = matrix(100, 64, seed=3), matrix(100, 64, seed=4)
    shaper(first)
    ranges = shaper.ranges
    assert np.array_equal(ranges, int8_ranges(truncate(first, 32, True)))
    shaper(second)
    assert shaper.ranges is ranges
