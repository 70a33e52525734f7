"""Binary (Hamming) indexes for ubinary vectors: the factory strings, reading and writing, queries and scores.

A ubinary vector is one bit per dimension, packed 8 to a byte (records/vector_precision.py). FAISS's binary indexes
(IndexBinaryFlat, IndexBinaryHNSW, IndexBinaryIVF) rank by Hamming distance; a hit's score is
1 - 2 * distance / dim, the share of agreeing signs mapped to [-1, 1] (1: the same bits), so higher is better as
with the cosine of float indexes. Float queries are binarized as the documents were (x > 0); ubinary queries are
used as they are.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from embtools.errors import EmbtoolsError, InputError

try:
    import faiss
except ImportError:  # faiss_setup.require_faiss says so
    faiss = None


def binary_factory(factory: str) -> str:
    """The binary factory string for a float one: Flat -> BFlat, HNSW32 -> BHNSW32, IVF256,Flat -> BIVF256;
    a string that already names a binary index (B...) is kept."""
    if factory.startswith("B"):
        return factory
    if factory == "Flat":
        return "BFlat"
    if match := re.fullmatch(r"HNSW(\d+)(,Flat)?", factory):
        return f"BHNSW{match[1]}"
    if match := re.fullmatch(r"IVF(\d+)(,Flat)?", factory):
        return f"BIVF{match[1]}"
    raise EmbtoolsError(f"--factory {factory!r} has no binary form for ubinary vectors: use Flat, HNSWn, IVFn "
                        "or a FAISS binary factory string (BFlat, BHNSW32, BIVF256)")


def new_binary_index(bits: int, factory: str, ef_search: int) -> faiss.IndexBinary:
    """An empty binary index for `bits`-d vectors, with this toolkit's search defaults set."""
    if bits % 8:
        raise InputError(f"binary indexes need a dimension divisible by 8, got {bits}")
    try:
        index = faiss.index_binary_factory(bits, binary_factory(factory))
    except RuntimeError as exc:
        raise EmbtoolsError(f"--factory {factory!r} is not a FAISS binary index: {str(exc).splitlines()[0]}") from None
    set_binary_parameter(index, "efSearch", ef_search, required=False)
    return index


def set_binary_parameter(index: faiss.IndexBinary, name: str, value: int | None, required: bool = True) -> None:
    """Set nprobe (BIVF) or efSearch (BHNSW) on a binary index."""
    if value is None:
        return
    index = faiss.downcast_IndexBinary(index)
    owner = index.hnsw if name == "efSearch" and hasattr(index, "hnsw") else index
    if not hasattr(owner, name):
        if required:
            raise EmbtoolsError(f"{name} does not apply to this index ({type(index).__name__})")
        return
    setattr(owner, name, value)


def binary_search_defaults(index: faiss.IndexBinary) -> dict:
    index = faiss.downcast_IndexBinary(index)
    return {**({"nprobe": index.nprobe} if hasattr(index, "nprobe") else {}),
            **({"efSearch": index.hnsw.efSearch} if hasattr(index, "hnsw") else {})}


def packed_queries(queries: np.ndarray, bits: int) -> np.ndarray:
    """Query rows as packed bits: float rows of `bits` values binarized (x > 0), byte rows of bits/8 kept."""
    if queries.dtype == np.uint8 and queries.shape[1] == bits // 8:
        return np.ascontiguousarray(queries)
    if queries.shape[1] != bits:
        raise InputError(f"dimension {bits} expected, got {queries.shape[1]}")
    return np.packbits(queries > 0, axis=-1)


def binary_scores(distances: np.ndarray, bits: int) -> np.ndarray:
    return 1.0 - 2.0 * distances.astype(np.float32) / bits


def write_binary(index: faiss.IndexBinary, path: Path) -> None:
    faiss.write_index_binary(index, str(path))


def read_binary(path: Path) -> faiss.IndexBinary:
    if not path.is_file():
        raise EmbtoolsError(f"{path.parent} is incomplete: {path.name} is missing")
    try:
        return faiss.read_index_binary(str(path))
    except RuntimeError as exc:
        raise EmbtoolsError(f"{path} is corrupt: {str(exc).strip().splitlines()[0]}") from None
