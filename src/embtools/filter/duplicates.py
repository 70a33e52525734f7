"""Exact and near-duplicate checks across the whole stream, as record checks for the filter pipeline.

Both compare the same fields (`query` and `positive` by default): two examples with the same query and document are
one example, whatever their negatives. The first of each group is kept; later ones are rejected.
- exact (the paper's rule): equal after normalizing case and whitespace; state: one 60-bit digest per kept record;
- near: MinHash LSH over word shingles (near_duplicates.NearDuplicateIndex), each field shingled on its own and the
  fields' band hashes combined band by band, so a pair is a candidate only when every field is similar (about: the
  product of the fields' Jaccard similarities is above the threshold). Shingling the fields together would let a
  long document dominate: SciFact has several claims per abstract, and those are not duplicates. The rejected
  record's `meta.filter.near_duplicate_of` names the kept record of its cluster.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from embtools.filter.near_duplicates import NearDuplicateIndex
from embtools.records.examples import DUPLICATE_FIELDS, filter_meta, text
from embtools.records.jsonl import Record
from embtools.records.text_keys import digest64, match_key

DUPLICATE, NEAR_DUPLICATE = "duplicate", "near-duplicate"
_MASK60 = (1 << 60) - 1


@lru_cache(maxsize=8)
def _field_keys(count: int) -> np.ndarray:
    """An odd 64-bit multiplier per field, the same in every run."""
    return np.random.default_rng(13).integers(1, 2**63, size=count, dtype=np.uint64) | np.uint64(1)


def combined_bands(per_field: list[tuple[np.ndarray, np.ndarray]]) -> list[list[int] | None]:
    """Per text, one hash per band over all fields, from each field's NearDuplicateIndex.band_matrix (a field
    without words counts as a band of zeros); None for a text none of whose fields has a word."""
    mixed = sum(bands * key for (bands, _), key in zip(per_field, _field_keys(len(per_field)))) & np.uint64(_MASK60)
    has_words = np.logical_or.reduce([found for _, found in per_field])
    return [row if found else None for row, found in zip(mixed.tolist(), has_words.tolist())]


class ExactDuplicateCheck:
    """Callable: `duplicate` when an earlier kept record had the same fields up to case and whitespace."""

    name = "exact-duplicates"

    def __init__(self, fields: tuple[str, ...] = DUPLICATE_FIELDS):
        self.fields = fields
        self.seen: set[int] = set()
        self._last: tuple[Record | None, int] = (None, 0)  # the record last checked and its key, for remember()

    def _key(self, record: Record) -> int:
        if self._last[0] is record:
            return self._last[1]
        key = digest64("\x1f".join(match_key(text(record, field)) for field in self.fields)) & _MASK60
        self._last = (record, key)
        return key

    def __call__(self, record: Record) -> str | None:
        return f"{DUPLICATE}: same {' and '.join(self.fields)} as an earlier example" \
            if self._key(record) in self.seen else None

    def remember(self, record: Record) -> None:
        self.seen.add(self._key(record))


class NearDuplicateCheck:
    """Callable: `near-duplicate: of id X` when the record's fields are a near-duplicate of a kept record's."""

    name = "near-duplicates"

    def __init__(self, threshold: float = 0.8, num_perm: int = 64, shingle_size: int = 3,
                 fields: tuple[str, ...] = DUPLICATE_FIELDS):
        self.index = NearDuplicateIndex(threshold, num_perm, shingle_size)
        self.fields = fields
        self._bands: dict[int, list[int] | None] = {}

    def prepare(self, batch: list[Record]) -> None:
        """Compute the batch's signatures at once (vectorized, field by field); call before checking its records."""
        per_field = [self.index.band_matrix([text(record, field) for record in batch]) for field in self.fields]
        self._bands = {id(record): bands for record, bands in zip(batch, combined_bands(per_field))}

    def _bands_of(self, record: Record) -> list[int] | None:
        if id(record) not in self._bands:
            self.prepare([record])
        return self._bands[id(record)]

    def __call__(self, record: Record) -> str | None:
        kept = self.index.find(self._bands_of(record))
        if kept is None:
            return None
        filter_meta(record)["near_duplicate_of"] = kept
        return f"{NEAR_DUPLICATE}: of id {kept}"

    def remember(self, record: Record) -> None:
        self.index.add(self._bands_of(record), record.get("id"))
