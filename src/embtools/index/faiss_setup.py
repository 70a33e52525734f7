"""Making FAISS index objects: the faiss packages' presence, an index from a factory string with this toolkit's
search defaults, training with its checks, search parameters, and copies to the GPU."""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np

from embtools.errors import EmbtoolsError, InputError
from embtools.index.defaults import DEFAULT_EF_SEARCH

try:
    import faiss
except ImportError:  # neither extra (`cpu`: faiss-cpu, `gpu`: faiss-gpu) is installed; require_faiss says so
    faiss = None

log = logging.getLogger("embtools")

POINTS_PER_CENTROID = 39  # below this many training points per centroid faiss warns that k-means is starved
# OPQ rotation training (faiss's OPQMatrix defaults: 50 iterations, the first PQ k-means 40 iterations, 65,536 points).
# --max-memory's tuning candidates: 5 iterations of 4 on 10,000 points, enough for PQ's 256 centroids and to rank them;
# measured in docs/index.md (--max-memory)
OPQ_TRAINING = {"niter": 5, "niter_pq": 4, "niter_pq_0": 4, "max_train_points": 10_000}
# --max-memory's final build of a chosen OPQ index, trained once: faiss's 50 iterations and 65,536 points, with the
# bounded PQ k-means (4; faiss's first 40 did no better). On bench/index_budget.py's 100,000 64-d vectors
# (OPQ16,IVF1024,PQ16 trained on all, recall@10 with every list probed, machine quiet) 20 iterations on 10,000 points
# reached 0.760 in a 13.5 s build, these 0.771 in 31.5 s; autofaiss's builds took 68-192 s: docs/index.md, OPQ.
OPQ_FINAL_TRAINING = {"niter": 50, "niter_pq": 4, "niter_pq_0": 4, "max_train_points": 65_536}


def default_nprobe(nlist: int) -> int:
    """IVF lists visited per query unless told otherwise: nlist/8, at least 32 (all of a small index); measured
    recall@10 on MiniLM SciFact embeddings is in docs/index.md."""
    return min(nlist, max(32, nlist // 8))


def faiss_reason(exc: Exception) -> str:
    """faiss's C++ message without its 'Error in <signature> at <file>:<line>: ' preamble."""
    return re.sub(r"^Error in .*? at \S+:\d+: ", "", str(exc).strip().splitlines()[0])


def require_faiss() -> None:
    """EmbtoolsError (one line from the command) unless a faiss package is installed."""
    if faiss is None:
        raise EmbtoolsError("faiss is not installed: pip install 'embtools[cpu]', or 'embtools[gpu]' for faiss-gpu "
                            "on a CUDA 12 machine (not both: docs/gpu.md)")


def require_gpu() -> None:
    """EmbtoolsError unless faiss-gpu is installed and sees a GPU."""
    require_faiss()
    if not hasattr(faiss, "StandardGpuResources"):
        raise EmbtoolsError("--gpu needs faiss-gpu (pip install 'embtools[gpu]'); the installed faiss is CPU-only")
    if faiss.get_num_gpus() == 0:
        raise EmbtoolsError("--gpu: faiss-gpu sees no GPU")


def to_gpu(index: faiss.Index) -> faiss.Index:
    """A copy of the index on the first GPU (faiss keeps its GPU resources alive with it)."""
    try:
        return faiss.index_cpu_to_all_gpus(index, ngpu=1)
    except RuntimeError as exc:
        raise EmbtoolsError(f"--gpu: this index type cannot run on a GPU: {faiss_reason(exc)}") from None


def new_index(dim: int, factory: str, opq_training: dict[str, int] | None = None) -> faiss.Index:
    """An empty inner-product index from a FAISS factory string, with this toolkit's search defaults set; with
    `opq_training` (OPQ_TRAINING or OPQ_FINAL_TRAINING: --max-memory's) its OPQ rotations train with those
    settings, else with faiss's own."""
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise EmbtoolsError(f"--factory {factory!r} is not a FAISS index for {dim}-d vectors: "
                            f"{faiss_reason(exc)}") from None
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.nprobe = default_nprobe(ivf.nlist)
        _skip_polysemous_training(faiss.downcast_index(ivf))
    set_parameter(index, "efSearch", DEFAULT_EF_SEARCH, required=False)
    if opq_training:
        _set_opq_training(index, opq_training)
    return index


def _set_opq_training(index: faiss.Index, settings: dict[str, int]) -> None:
    """Set the training settings on each OPQ rotation of the index (faiss's defaults took 53 s where IVF-PQ took
    6 s)."""
    chain = getattr(faiss.downcast_index(index), "chain", None)
    for number in range(chain.size() if chain is not None else 0):
        transform = faiss.downcast_VectorTransform(chain.at(number))
        if isinstance(transform, faiss.OPQMatrix):
            for name, value in settings.items():
                setattr(transform, name, value)


def _skip_polysemous_training(ivf: faiss.Index) -> None:
    """IVF-PQ from a factory string reorders its codebooks for polysemous filtering, which search never uses unless
    asked (polysemous_ht); measured: 80 of 86 s training IVF256,PQ8 on 11,000 32-d vectors, so it is left out."""
    if hasattr(ivf, "do_polysemous_training"):
        ivf.do_polysemous_training = False


def clusterings(index: faiss.Index) -> list[tuple[str, int, Any]]:
    """The k-means runs training needs: (what, number of centroids, its ClusteringParameters)."""
    found = []
    if isinstance(index, faiss.IndexBinary):
        codes = faiss.downcast_IndexBinary(index)
        return [("IVF lists", codes.nlist, codes.cp)] if hasattr(codes, "nlist") else []
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        found.append(("IVF lists", ivf.nlist, ivf.cp))
    pq = getattr(faiss.downcast_index(ivf if ivf is not None else index), "pq", None)
    if pq is not None:
        found.append(("PQ centroids", pq.ksub, pq.cp))
    return found


def check_training_points(index: faiss.Index, count: int) -> None:
    """Fail when there are fewer training vectors than centroids; say so in one line when there are few."""
    for what, centroids, params in clusterings(index):
        if count < centroids:
            raise InputError(f"{count} vectors cannot train {centroids} {what}: give at least {centroids} vectors "
                             "or a smaller size in --factory")
        wanted = POINTS_PER_CENTROID * centroids
        if count < wanted:
            log.warning(f"training {centroids} {what} on {count} vectors (faiss wants {wanted}); "
                        "recall may suffer, a smaller size in --factory fits better")
            params.min_points_per_centroid = 1  # we said it once; keep faiss from repeating it per sub-quantizer


def train(index: faiss.Index, sample: np.ndarray) -> None:
    check_training_points(index, len(sample))
    try:
        index.train(sample)
    except RuntimeError as exc:
        raise EmbtoolsError(f"training failed: {faiss_reason(exc)}") from None


def set_parameter(index: faiss.Index, name: str, value: int | None, required: bool = True) -> None:
    """Set a search parameter (nprobe, efSearch) through faiss.ParameterSpace, wrappers included."""
    if value is None:
        return
    try:
        faiss.ParameterSpace().set_index_parameter(index, name, value)
    except RuntimeError:
        if required:
            raise EmbtoolsError(f"{name} does not apply to this index ({type(index).__name__})") from None


