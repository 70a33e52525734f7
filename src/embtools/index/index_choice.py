"""Which FAISS indexes fit a memory budget: candidate factory strings for n d-dimensional float vectors (inner
product), each with the bytes it will take, most accurate first. Pure functions; nothing here imports faiss.

The estimate is of what faiss.serialize_index writes, which is what the index holds in memory once loaded:
- codes: n x (4d for Flat, d for SQ8, d/2 for SQ4, m for PQm), plus an 8-byte id per vector in an IVF list;
- HNSWM links: 4 bytes per neighbour, 2M on level 0 and M on each of the expected 1/(M-1) upper levels, plus a
  level (4 bytes) and an offset (8 bytes) per vector;
- trained parts: IVF centroids (nlist x 4d) and an 8-byte size per list, PQ codebooks (256 x 4d), SQ8 ranges (8d),
  the OPQ rotation (4d x d).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from embtools.errors import EmbtoolsError

HNSW_M = 32
PQ_CENTROIDS = 256
MIN_POINTS_PER_LIST = 39  # faiss's k-means warns below this many training points per centroid
HEADER_BYTES = 200  # index headers, fourccs and vector lengths: a few dozen bytes per part

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

# (factory template, code bytes per vector for dimension d and PQ size m), most accurate first
_TEMPLATES = (
    ("Flat", lambda d, m: 4 * d),
    (f"HNSW{HNSW_M},Flat", lambda d, m: 4 * d),
    ("IVF{nlist},Flat", lambda d, m: 4 * d),
    (f"HNSW{HNSW_M},SQ8", lambda d, m: d),
    ("IVF{nlist},SQ8", lambda d, m: d),
    ("IVF{nlist},SQ4", lambda d, m: math.ceil(d / 2)),
    ("IVF{nlist},PQ{m}", lambda d, m: m),
    ("OPQ{m},IVF{nlist},PQ{m}", lambda d, m: m),  # tried only where nothing but PQ fits: within_budget
)
PQ_SHARES = (2, 4, 8, 16, 32)  # PQ sizes tried: m = d/2 (one byte per 2 dimensions, as SQ4) ... d/32


@dataclass(frozen=True)
class Candidate:
    """One index for n d-dimensional vectors: its factory template, IVF lists, PQ size, and estimated bytes."""

    template: str
    n: int
    d: int
    nlist: int = 0
    m: int = 0

    @property
    def factory(self) -> str:
        return self.template.format(nlist=self.nlist, m=self.m)

    @property
    def search_parameter(self) -> str | None:
        """The parameter that trades speed for recall at search time: nprobe (IVF), efSearch (HNSW), none (Flat)."""
        return "nprobe" if "IVF" in self.template else "efSearch" if "HNSW" in self.template else None

    @property
    def estimated_bytes(self) -> int:
        return estimate_bytes(self)

    def for_sample(self, size: int) -> Candidate:
        """The same index for a sample of `size` vectors: IVF lists scaled down to as many points per list."""
        return replace(self, n=size, nlist=max(1, round(self.nlist * size / self.n)) if self.nlist else 0)


def estimate_bytes(candidate: Candidate) -> int:
    """The serialized (and loaded) size of the candidate's index once it holds its n vectors."""
    n, d, template = candidate.n, candidate.d, candidate.template
    code = dict(_TEMPLATES)[template](d, candidate.m)
    total = HEADER_BYTES + n * code
    if "IVF" in template:
        total += n * 8 + candidate.nlist * (4 * d + 8)
    if "HNSW" in template:
        total += n * (4 * (2 * HNSW_M + HNSW_M / (HNSW_M - 1)) + 12)
    if "PQ" in template:
        total += PQ_CENTROIDS * 4 * d
    if "SQ8" in template:
        total += 8 * d
    if "SQ4" in template:
        total += 8 * d
    if "OPQ" in template:
        total += 4 * d * d + 4 * d
    return int(total)


def ivf_lists(n: int) -> int:
    """IVF lists for n vectors: the power of two nearest 4 sqrt(n), halved until each list has enough points to
    train k-means."""
    lists = 2 ** round(math.log2(max(1.0, 4 * math.sqrt(n))))
    while lists > 1 and lists > n // MIN_POINTS_PER_LIST:
        lists //= 2
    return lists


def candidates(n: int, d: int) -> list[Candidate]:
    """Every index this toolkit considers for n d-dimensional vectors, most accurate first. PQ sizes m divide d
    (m = d/2 ... d/32, at least 4); PQ needs 256 training points per sub-quantizer, so it is left out below
    MIN_POINTS_PER_LIST x 256 vectors, as IVF is below 2 x MIN_POINTS_PER_LIST."""
    nlist = ivf_lists(n)
    found = []
    for template, _ in _TEMPLATES:
        if "IVF" in template and nlist < 2:
            continue
        if "PQ" in template:
            if n >= MIN_POINTS_PER_LIST * PQ_CENTROIDS:
                found += [Candidate(template, n, d, nlist, d // share) for share in PQ_SHARES
                          if d % share == 0 and d // share >= 4]
            continue
        found.append(Candidate(template, n, d, nlist if "IVF" in template else 0))
    return found


def within_budget(found: list[Candidate], budget: int) -> list[Candidate]:
    """The candidates whose estimate fits in `budget` bytes, in their order, OPQ as only_pq_gets_opq leaves it;
    EmbtoolsError naming the smallest budget that would fit one when none does."""
    fitting = [candidate for candidate in found if candidate.estimated_bytes <= budget]
    if not fitting:
        smallest = min(found, key=lambda candidate: candidate.estimated_bytes)
        raise EmbtoolsError(f"no index of {smallest.n} {smallest.d}-d vectors fits in --max-memory "
                            f"{format_bytes(budget)}: the smallest, {smallest.factory}, needs "
                            f"{format_bytes(smallest.estimated_bytes, up=True)}")
    return only_pq_gets_opq(fitting)


def only_pq_gets_opq(fitting: list[Candidate]) -> list[Candidate]:
    """The fitting candidates with OPQ kept only where nothing but PQ codes fit, and then only at the largest m:
    its rotation is a training of its own (bounded in faiss_setup.OPQ_TRAINING), so one is tried per build, where
    PQ's recall is what the budget allows and a rotation raises it for the same bytes."""
    only_pq = all("PQ" in candidate.template for candidate in fitting)
    opq = [candidate for candidate in fitting if "OPQ" in candidate.template][:1 if only_pq else 0]
    return [candidate for candidate in fitting if "OPQ" not in candidate.template or candidate in opq]


def parse_memory(text: str) -> int:
    """Bytes of a size such as 2G, 512M, 1.5GB, 800KiB or 1000000 (units of 1024); EmbtoolsError otherwise (a
    usage error through cli.ParsedBy)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([KMGT]?)(?:I?B)?\s*", str(text).upper())
    if not match or float(match[1]) <= 0:
        raise EmbtoolsError(f"--max-memory {text!r} is not a size: give bytes or a number with K, M, G or T "
                               "(2G, 512M)")
    return int(float(match[1]) * _UNITS[match[2]])


def format_bytes(size: float, up: bool = False) -> str:
    """A size as parse_memory reads it, to 3 significant digits (rounded up with `up`: a budget that fits)."""
    for unit in ("T", "G", "M", "K"):
        if size >= _UNITS[unit]:
            value = size / _UNITS[unit]
            scale = 10 ** (2 - int(math.log10(value)))
            value = (math.ceil(value * scale) if up else round(value * scale)) / scale
            return f"{value:g}{unit}"
    return f"{int(size)}"
