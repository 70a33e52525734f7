"""Build and search throughput of emb-index vs calling faiss directly, on the same random vectors, side by side.

    .venv/bin/python bench/index.py [--n 100000] [--dim 384] [--queries 2000] [--factory Flat] [--repeat 3]

Four comparisons, each --repeat runs a side with the sides taking turns (the order rotated each run:
bench/side_by_side.py), printed as a Markdown table of each side's seconds as median [range], the ratio ours / faiss
as the median [range] of the run-by-run ratios, and our throughput at the median:
- library, in memory: `build_index` vs faiss on the same embedding records (decode base64, stack, normalize, add,
  write), and `VectorIndex.search` vs faiss `search` on the same float32 query matrix;
- CLI, from files: `emb-index -o DIR` and `emb-index search` as subprocesses on JSONL files (base64 vectors) vs a
  minimal hand-written script doing the same job with faiss (read JSONL, decode, normalize, add, write the index and
  the ids; read queries, search, write hits JSONL), also a subprocess, so both pay interpreter start-up and parsing.
Each build writes a new index: earlier outputs are removed before it, untimed, on both sides.
Random vectors are fine for throughput (not for recall). Data lives in a temporary folder that is removed.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import faiss
import numpy as np
import orjson

from embtools.index.vector_index import VectorIndex, build_index
from side_by_side import alternate, median_range, ratios, untimed_nothing

DIRECT_BUILD = """
import base64, sys, faiss, numpy as np, orjson
source, target, factory = sys.argv[1:4]
records = [orjson.loads(line) for line in open(source, "rb")]
vectors = np.stack([np.frombuffer(base64.b64decode(r["embedding"]), dtype="<f4") for r in records])
faiss.normalize_L2(vectors)
index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
index.train(vectors) if not index.is_trained else None
index.add(vectors)
faiss.write_index(index, target + ".faiss")
with open(target + ".ids", "wb") as out:
    out.write(b"".join(orjson.dumps(r["id"]) + b"\\n" for r in records))
"""

DIRECT_SEARCH = """
import base64, sys, faiss, numpy as np, orjson
index_path, ids_path, source, k = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
index = faiss.read_index(index_path)
ids = [orjson.loads(line) for line in open(ids_path, "rb")]
queries = [orjson.loads(line) for line in open(source, "rb")]
vectors = np.stack([np.frombuffer(base64.b64decode(q["embedding"]), dtype="<f4") for q in queries])
faiss.normalize_L2(vectors)
scores, rows = index.search(vectors, k)
out = sys.stdout.buffer
for q, srow, rrow in zip(queries, scores, rows):
    hits = [{"id": ids[r], "score": float(s)} for s, r in zip(srow, rrow) if r >= 0]
    out.write(orjson.dumps({"id": q["id"], "hits": hits}) + b"\\n")
"""


def write_jsonl(path: Path, vectors: np.ndarray, prefix: str) -> None:
    with open(path, "wb") as out:
        for i, v in enumerate(vectors):
            out.write(orjson.dumps({"id": f"{prefix}{i}", "embedding": base64.b64encode(v.tobytes()).decode()}) + b"\n")


def records(vectors: np.ndarray) -> list[dict]:
    return [{"id": f"d{i}", "embedding": base64.b64encode(v.tobytes()).decode()} for i, v in enumerate(vectors)]


def faiss_build(vectors: np.ndarray, factory: str) -> faiss.Index:
    matrix = vectors.copy()
    faiss.normalize_L2(matrix)
    return faiss_index(matrix, factory)


def faiss_build_from_records(rows: list[dict], factory: str) -> faiss.Index:
    """What a hand-written faiss build does with embedding records: decode, stack, normalize, add."""
    matrix = np.stack([np.frombuffer(base64.b64decode(r["embedding"]), dtype="<f4") for r in rows])
    faiss.normalize_L2(matrix)
    return faiss_index(matrix, factory)


def faiss_index(matrix: np.ndarray, factory: str) -> faiss.Index:
    index = faiss.index_factory(matrix.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(matrix)
    index.add(matrix)
    return index


def faiss_search(index: faiss.Index, queries: np.ndarray, k: int) -> None:
    matrix = queries.copy()
    faiss.normalize_L2(matrix)
    index.search(matrix, k)


def run(*command: str, stdout=subprocess.DEVNULL) -> None:
    subprocess.run(command, check=True, stdout=stdout, stderr=subprocess.DEVNULL)


def pair(repeat: int, ours: tuple, theirs: tuple) -> tuple[list[float], list[float]]:
    """Seconds of each run of our (job, setup) and faiss's, the two taking turns (setup untimed)."""
    times = alternate(repeat, {"emb-index": ours, "faiss": theirs})
    return times["emb-index"], times["faiss"]


def measure(args: argparse.Namespace, work: Path) -> list[tuple[str, list[float], list[float], int]]:
    """(what, our seconds per run, faiss seconds per run, items) for each comparison."""
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    queries = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    emb_index = [sys.executable, "-m", "embtools.commands.index"]

    def fresh(*outputs: Path):  # earlier outputs removed, new records (build_index decodes them in place)
        return lambda: (remove(outputs), records(vectors))[1]

    rows = [("build, library (records -> folder)", *pair(
        args.repeat, (lambda rows: build_index(rows, work / "lib", args.factory), fresh(work / "lib")),
        (lambda rows: faiss_write(faiss_build_from_records(rows, args.factory), work / "lib.faiss"),
         fresh(work / "lib.faiss"))), args.n)]
    loaded, direct = VectorIndex.load(work / "lib"), faiss_build(vectors, args.factory)
    rows.append(("search, library (k=10)", *pair(
        args.repeat, (lambda _: loaded.search(queries, 10), untimed_nothing),
        (lambda _: faiss_search(direct, queries, 10), untimed_nothing)), args.queries))
    write_jsonl(work / "corpus.jsonl", vectors, "d")
    write_jsonl(work / "queries.jsonl", queries, "q")
    corpus, cli, direct_out = str(work / "corpus.jsonl"), work / "cli", work / "direct"
    rows.append(("build, CLI (JSONL file -> folder)", *pair(
        args.repeat, (lambda _: run(*emb_index, "-o", str(cli), "--factory", args.factory, corpus),
                      lambda: remove([cli])),
        (lambda _: run(sys.executable, "-c", DIRECT_BUILD, corpus, str(direct_out), args.factory),
         lambda: remove([work / "direct.faiss", work / "direct.ids"]))), args.n))
    rows.append(("search, CLI (JSONL -> hits JSONL)", *pair(
        args.repeat, (lambda _: run(*emb_index, "search", "--index", str(cli), "-k", "10",
                                    str(work / "queries.jsonl")), untimed_nothing),
        (lambda _: run(sys.executable, "-c", DIRECT_SEARCH, str(work / "direct.faiss"), str(work / "direct.ids"),
                       str(work / "queries.jsonl"), "10"), untimed_nothing)), args.queries))
    return rows


def remove(paths: list[Path]) -> None:
    """Delete earlier builds before a timed one, so each side writes a new index rather than replacing one."""
    for path in paths:
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def faiss_write(index: faiss.Index, path: Path) -> None:
    faiss.write_index(index, str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--factory", default="Flat")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.n} x {args.dim}-d float32, {args.queries} queries, --factory {args.factory}, "
          f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, {args.repeat} runs a side taking "
          f"turns, median [range]; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    print("| path | emb-index s | faiss s | ratio emb-index/faiss | emb-index items/s |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-index-") as work:
        for what, ours, theirs, items in measure(args, Path(work)):
            print(f"| {what} | {median_range(ours)} | {median_range(theirs)} | "
                  f"{median_range(ratios(ours, theirs))}x | {items / statistics.median(ours):,.0f} |", flush=True)


if __name__ == "__main__":
    main()
