"""`emb-index build --max-memory` vs autofaiss on the same vectors and memory budgets: recall@10, memory, build time.

    .venv/bin/python bench/index_budget.py [--n 100000] [--dim 128] [--queries 1000] [--budgets 6M,20M,60M]
                                           [--repeat 3]

The vectors are seeded, clustered and near a low-dimensional subspace, as embeddings are (random vectors have no
neighbourhoods, so every approximate index looks bad on them), L2-normalized; the queries are more of the same,
never indexed. Recall@10 is against exact inner-product search. Per budget the two sides alternate --repeat times;
each row is the median and [range] of those runs.
- ours: `build_index(..., budget=Budget(max_bytes, Goal(min_recall=0.95)))` on the in-memory vectors (the
  library; the CLI adds reading the input), the search setting it chose applied;
- autofaiss: `autofaiss.build_index(embeddings=array, max_index_memory_usage=BUDGET, metric_type="ip")` with its
  default query-time target (10 ms), run by the Python of a separate venv (its dependencies do not fit the
  project's): AUTOFAISS_PYTHON, else /tmp/af/bin/python (`python3 -m venv /tmp/af && /tmp/af/bin/pip install
  autofaiss "faiss-cpu==1.7.4" "pyarrow<16"`: autofaiss 2.18 fails with faiss 1.15 (OPQMatrix's `M` keyword) and
  pins numpy 1.x, which the newest pyarrow refuses); without one that side is skipped and said so.
Memory is the serialized index (faiss.serialize_index), which is what it holds once loaded. Build time is wall time
of the build call (for autofaiss inside its process: interpreter start-up is not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from embtools.index.budgeted_build import Budget
from embtools.index.embedding_checks import EmbeddingChecker
from embtools.index.index_choice import format_bytes, parse_memory
from embtools.index.index_tuning import Goal, exact_neighbors, recall_at_k
from embtools.index.vector_index import VectorIndex, build_index
from side_by_side import median_range

AUTOFAISS_RUN = """
import json, sys, time, faiss, numpy as np
from autofaiss import build_index
vectors, queries, budget = np.load(sys.argv[1]), np.load(sys.argv[2]), sys.argv[3]
started = time.perf_counter()
index, infos = build_index(embeddings=vectors, save_on_disk=False, max_index_memory_usage=budget,
                           current_memory_available="16G", metric_type="ip", verbose=40)
seconds = time.perf_counter() - started
_, found = index.search(queries, 10)
np.save(sys.argv[4], found)
print(json.dumps({"build_s": seconds, "bytes": len(faiss.serialize_index(index)),
                  "factory": infos.get("index_key"), "params": infos.get("index_param")}))
"""


def embedding_like(n: int, dim: int, seed: int) -> np.ndarray:
    """Seeded vectors near a dim/8-dimensional subspace around 200 topics, L2-normalized."""
    topics = np.random.default_rng(1234)
    rank = max(2, dim // 8)
    basis, centres = topics.standard_normal((rank, dim)), topics.standard_normal((200, rank))
    rng = np.random.default_rng(seed)
    points = centres[rng.integers(0, 200, n)] + 0.7 * rng.standard_normal((n, rank))
    vectors = (points @ basis + 0.35 * rng.standard_normal((n, dim))).astype(np.float32)
    faiss.normalize_L2(vectors)
    return vectors


def ours(vectors: np.ndarray, queries: np.ndarray, budget: str, work: Path) -> dict:
    shutil.rmtree(work / "ours", ignore_errors=True)
    rows = ({"id": i, "embedding": vector} for i, vector in enumerate(vectors))
    started = time.perf_counter()
    meta = build_index(rows, work / "ours", checker=EmbeddingChecker(),
                       budget=Budget(parse_memory(budget), Goal(0.95), 20_000, 200))
    seconds = time.perf_counter() - started
    found = VectorIndex.load(work / "ours").search(queries, 10)
    choice = meta["choice"]
    return {"build_s": seconds, "bytes": choice["actual_bytes"], "found": np.array([[i for i, _ in f] for f in found]),
            "factory": choice["factory"], "params": choice["search_params"]}


def autofaiss(python: str, budget: str, work: Path) -> dict:
    done = subprocess.run([python, "-c", AUTOFAISS_RUN, str(work / "vectors.npy"), str(work / "queries.npy"),
                           budget, str(work / "found.npy")], capture_output=True, text=True)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "found": np.load(work / "found.npy")}


def report(budget: str, side: str, runs: list[dict], truth: np.ndarray) -> str:
    if any("error" in run for run in runs):
        return f"| {budget} | {side} | failed: {runs[0].get('error', '')} | | | |"
    recalls = [recall_at_k(run["found"], truth) for run in runs]
    chosen = sorted({f"{run['factory']} {run['params']}" for run in runs})
    return (f"| {budget} | {side} | {median_range(recalls, lambda v: f'{v:.3f}')} | "
            f"{median_range([r['bytes'] for r in runs], format_bytes)} | "
            f"{median_range([r['build_s'] for r in runs], lambda v: f'{v:.1f}')} | {'; '.join(chosen)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--budgets", default="6M,20M,60M")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    python = next((p for p in (os.environ.get("AUTOFAISS_PYTHON", "/tmp/af/bin/python"),) if p and Path(p).exists()),
                  None)
    vectors, queries = embedding_like(args.n, args.dim, 0), embedding_like(args.queries, args.dim, 1)
    truth = exact_neighbors(vectors, queries)
    print(f"{args.n} x {args.dim}-d vectors (Flat: {format_bytes(vectors.nbytes)}), {args.queries} held-out "
          f"queries, {args.repeat} alternating runs a side; autofaiss: {python or 'skipped (no AUTOFAISS_PYTHON)'}")
    print("| budget | side | recall@10 | memory | build s | chosen |\n|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        np.save(work / "vectors.npy", vectors), np.save(work / "queries.npy", queries)
        for budget in args.budgets.split(","):
            runs: dict[str, list[dict]] = {"emb-index": [], "autofaiss": []}
            for number in range(args.repeat):
                for side in ("emb-index", "autofaiss") if python else ("emb-index",):
                    run = ours(vectors, queries, budget, work) if side == "emb-index" else \
                        autofaiss(python, budget, work)
                    runs[side].append(run)
                    print(f"run {number + 1} {side}: {report(budget, side, [run], truth)}", file=sys.stderr,
                          flush=True)
            for side, done in runs.items():
                if done:
                    print(report(budget, side, done, truth), flush=True)


if __name__ == "__main__":
    sys.exit(main())
