"""Vectors spooled to disk: a stream of float32 rows appended to a file, then read back as one memory-mapped
(n, d) matrix, so choosing an index for the whole input (index/budgeted_build.py) does not hold it in RAM twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np


class SpooledVectors:
    """Rows appended to `path` (raw little-endian float32, `dim` values a row); `matrix()` maps them read-only."""

    def __init__(self, path: Path, dim: int):
        self.path, self.dim, self.count = Path(path), dim, 0
        self._out = open(self.path, "wb")

    def append(self, rows: np.ndarray) -> None:
        self._out.write(np.ascontiguousarray(rows, dtype="<f4").tobytes())
        self.count += len(rows)

    def matrix(self) -> np.ndarray:
        """The rows written so far, memory-mapped (writing ends here)."""
        if not self._out.closed:
            self._out.close()
        if self.count == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.memmap(self.path, dtype="<f4", mode="r", shape=(self.count, self.dim))

    def rows(self, indices: np.ndarray) -> np.ndarray:
        """An in-memory copy of the rows at `indices` (read in file order, returned in the order given)."""
        return np.ascontiguousarray(self.matrix()[np.asarray(indices)], dtype=np.float32)

    def batches(self, size: int) -> Iterator[np.ndarray]:
        """In-memory copies of consecutive rows, `size` at a time."""
        matrix = self.matrix()
        for start in range(0, self.count, size):
            yield np.ascontiguousarray(matrix[start:start + size], dtype=np.float32)

    def remove(self) -> None:
        if not self._out.closed:
            self._out.close()
        self.path.unlink(missing_ok=True)
