"""Near-duplicate detection over a stream: MinHash signatures of word shingles, banded LSH, first one kept.

datasketch supplies the MinHash permutations (its "affine32" scheme: h -> a*h + b mod 2^32 with odd a) and the band
layout (`MinHashLSH(threshold, num_perm)` picks the bands x rows that minimize false positives plus false negatives
for the threshold). Signatures are computed here for a whole batch of texts at once with numpy (tokens, shingles,
permutations and the per-text minimum in a handful of array operations per batch), rather than per document as
datasketch's `MinHash.update_batch` does; `bench/filter.py` compares the two (docs/benchmarks.md, emb-filter).

The index keeps, per kept text and band, one 60-bit band hash pointing at the kept record's id: about half a
kilobyte per kept record, never the texts or the signatures. A text whose band hash is already present is a
near-duplicate of the record that put it there (an LSH candidate at the chosen threshold; not re-verified).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from embtools.records.text_keys import token_hashes

_SHINGLE_KEYS = np.random.default_rng(7).integers(1, 2**63, size=16, dtype=np.uint64) | np.uint64(1)
_BAND_KEYS = np.random.default_rng(11).integers(1, 2**63, size=256, dtype=np.uint64) | np.uint64(1)
_MASK60 = (1 << 60) - 1


@lru_cache(maxsize=8)
def band_layout(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) that datasketch's MinHashLSH chooses for this threshold and signature size."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutation parameters (a, b) as uint32 rows."""
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    return np.asarray(a, dtype=np.uint32), np.asarray(b, dtype=np.uint32)


def shingle_hashes(token_hash: np.ndarray, counts: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every run of `size` consecutive tokens inside each text (a text shorter than that is one shingle).

    Returns (32-bit shingle hashes as uint32, how many belong to each text)."""
    ends = np.cumsum(counts)
    owner = np.repeat(np.arange(len(counts)), counts)
    last = np.arange(len(token_hash)) + (size - 1)
    valid = last < np.repeat(ends, counts)  # the shingle starting here ends inside the same text
    starts = np.flatnonzero(valid)
    mixed = np.zeros(len(starts), dtype=np.uint64)
    for offset in range(size):
        mixed += token_hash[starts + offset] * _SHINGLE_KEYS[offset]
    shingle_owner = owner[starts]
    short = np.flatnonzero((counts > 0) & (counts < size))
    if len(short):  # texts with fewer tokens than a shingle: all their tokens as one shingle
        extra = np.array([sum(int(h) * int(k) for h, k in zip(token_hash[e - c:e], _SHINGLE_KEYS)) & (2**64 - 1)
                          for e, c in zip(ends[short], counts[short])], dtype=np.uint64)
        order = np.argsort(np.concatenate((shingle_owner, short)), kind="stable")
        mixed, shingle_owner = np.concatenate((mixed, extra))[order], np.concatenate((shingle_owner, short))[order]
    per_text = np.bincount(shingle_owner, minlength=len(counts))
    return (mixed >> np.uint64(32)).astype(np.uint32), per_text


class NearDuplicateIndex:
    """Finds near-duplicates among the texts added so far; `signatures(texts)` then `find` / `add` per text."""

    def __init__(self, threshold: float = 0.8, num_perm: int = 64, shingle_size: int = 3, seed: int = 1):
        if not 0 < threshold < 1:
            raise ValueError("the near-duplicate threshold must be between 0 and 1")
        self.threshold, self.shingle_size = threshold, shingle_size
        self.bands, self.rows = band_layout(threshold, num_perm)
        self.a, self.b = permutations(num_perm, seed)
        self.table: dict[int, object] = {}

    def signatures(self, texts: list[str]) -> list[list[int] | None]:
        """Per text, its band hashes (what find/add take), or None for a text without a single word."""
        bands, has_words = self.band_matrix(texts)
        return [row if found else None for row, found in zip(bands.tolist(), has_words.tolist())]

    def band_matrix(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(band hashes as a uint64 matrix, a row per text; whether each text has a word). A text without a word
        has a row of zeros."""
        tokens, counts = token_hashes(texts)
        shingles, per_text = shingle_hashes(tokens, counts, self.shingle_size)
        has_words = per_text > 0
        bands = np.zeros((len(texts), self.bands), dtype=np.uint64)
        if len(shingles):
            permuted = np.multiply.outer(self.a, shingles)  # uint32 wraparound is the modulo
            permuted += self.b[:, None]
            firsts = (np.cumsum(per_text) - per_text)[has_words]
            minima = np.minimum.reduceat(permuted, firsts, axis=1).T  # reduce along rows: contiguous memory
            bands[has_words] = self._band_hashes(minima)
        return bands, has_words

    def _band_hashes(self, minima: np.ndarray) -> np.ndarray:
        used = minima[:, :self.bands * self.rows].astype(np.uint64).reshape(len(minima), self.bands, self.rows)
        mixed = (used * _BAND_KEYS[:self.rows]).sum(axis=2, dtype=np.uint64)
        mixed += _BAND_KEYS[-self.bands:]  # a different salt per band, so equal rows in two bands never collide
        return mixed & np.uint64(_MASK60)

    def find(self, band_hashes: list[int] | None):
        """The id of an earlier text this one is a near-duplicate of, or None."""
        if band_hashes is None:
            return None
        for key in band_hashes:
            found = self.table.get(key)
            if found is not None:
                return found
        return None

    def add(self, band_hashes: list[int] | None, record_id) -> None:
        """Remember a kept text; its bands point at record_id (the first text keeps a band it shares)."""
        for key in band_hashes or ():
            self.table.setdefault(key, record_id)
