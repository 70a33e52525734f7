"""What smaller vectors cost in recall: SciFact with minilm-l6, each --precision / --truncate-dim against float32 exact.

    .venv/bin/python bench/precision.py [--data ../shared/data/scifact] [--work /tmp/emb-precision]

The corpus (5,183 documents) and the test queries (300) are encoded once, as `emb-encode -m minilm-l6` does (chunks
of 1,024, the model's own 256-token limit), and kept in --work. Each variant then goes the way the commands take:
the corpus rows are shaped chunk by chunk as `emb-encode --precision P --truncate-dim D --format npy` shapes them
(int8 calibrated on the first chunk), written to an npy file, indexed by `emb-index build` (Flat: float rows,
int8 dequantized with the file's ranges; BFlat for ubinary) and searched with float32 queries truncated to D
(renormalized) as `emb-encode --truncate-dim D` writes them. recall@10: the share of the float32 384-d exact top 10
found in the variant's top 10, averaged over the queries; bytes/vector: what the npy file stores per row.
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from embtools.encode.encoder import Encoder, EncodeSettings
from embtools.encode.stream import embedded_chunks, text_record_validator
from embtools.index.vector_index import VectorIndex, build_index
from embtools.records.datasets import load_qrels
from embtools.records.embedding_files import EmbeddingFileInfo, embedding_records, open_writer
from embtools.records.jsonl import read_records
from embtools.records.vector_precision import VectorShaper, stored_width, truncate

VARIANTS = [("float32", None), ("float16", None), ("int8", None), ("ubinary", None), ("float32", 256),
            ("float32", 128), ("float32", 64), ("int8", 128), ("ubinary", 256)]


def encoded(path: Path, cache: Path, encoder: Encoder, wanted: set | None = None) -> tuple[list, np.ndarray]:
    """(ids, float32 rows) of a BEIR file, encoded once and cached."""
    if cache.with_suffix(".npy").exists():
        return np.load(cache.with_suffix(".ids.npy"), allow_pickle=True).tolist(), np.load(cache.with_suffix(".npy"))
    records = (r for r in read_records(path, text_record_validator("_id")) if wanted is None or r["id"] in wanted)
    parts = list(embedded_chunks(records, encoder, None, 1024))
    ids, rows = [r["id"] for chunk, _ in parts for r in chunk], np.concatenate([v for _, v in parts])
    np.save(cache.with_suffix(".ids.npy"), np.array(ids, dtype=object))
    np.save(cache.with_suffix(".npy"), rows)
    return ids, rows


def variant_index(ids: list, rows: np.ndarray, precision: str, dim: int | None, work: Path) -> VectorIndex:
    shaper = VectorShaper(precision, dim, normalize=True)
    path, folder = work / f"{precision}-{dim}.npy", work / f"{precision}-{dim}.index"
    info = EmbeddingFileInfo(precision, shaper.out_dim(rows.shape[1]))
    with ExitStack() as stack:
        writer = open_writer(stack, "npy", path, info)
        for start in range(0, len(rows), 1024):
            stored = shaper(rows[start:start + 1024])
            info.ranges = shaper.ranges
            writer.write([{"id": i} for i in ids[start:start + 1024]], stored)
        writer.finish()
    file_info, records = embedding_records(path)
    build_index(records, folder, "Flat", overwrite=True, precision=file_info.precision)
    return VectorIndex.load(folder)


def top10(index: VectorIndex, queries: np.ndarray) -> list[set]:
    return [{hit for hit, _ in hits} for hits in index.search(queries, 10)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/scifact")
    parser.add_argument("--work", type=Path, default=Path("/tmp/emb-precision"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    encoder = Encoder("minilm-l6", EncodeSettings(dtype="float32"))
    ids, corpus = encoded(args.data / "corpus.jsonl", args.work / "corpus", encoder)
    wanted = set(load_qrels(args.data / "qrels" / "test.tsv"))
    _, queries = encoded(args.data / "queries.jsonl", args.work / "queries", encoder, wanted)
    exact = top10(variant_index(ids, corpus, "float32", None, args.work), queries)
    print(f"{len(ids)} documents, {len(queries)} queries, minilm-l6 ({corpus.shape[1]}-d)")
    print("| precision | dim | bytes/vector | recall@10 vs float32 exact |\n|---|---|---|---|")
    for precision, dim in VARIANTS:
        found = top10(variant_index(ids, corpus, precision, dim, args.work), truncate(queries, dim, True))
        recall = np.mean([len(a & b) / len(a) for a, b in zip(exact, found)])
        size = stored_width(precision, dim or corpus.shape[1]) * (2 if precision == "float16" else
                                                                  4 if precision == "float32" else 1)
        print(f"| {precision} | {dim or corpus.shape[1]} | {size} | {recall:.3f} |")


if __name__ == "__main__":
    main()
