"""Smaller vectors: Matryoshka truncation and the stored precisions (float32, float16, int8, ubinary).

The quantization is sentence-transformers' `quantize_embeddings` (sentence_transformers/util/quantization.py):
- int8: per-dimension ranges (the min and max of each dimension over calibration vectors), step = (max - min) / 255
  (1 where max == min), code = clip(floor((x - min) / step), 0, 255) - 128; read back as (code + 128) * step + min
  (its `_dequantize_embeddings`);
- ubinary: one bit per dimension, set where x > 0, packed 8 to a byte (numpy.packbits, first dimension in the high
  bit); dimensions that do not fill the last byte are zero bits.
The ranges are a (2, dim) float32 array, row 0 the minimums, row 1 the maximums, as sentence-transformers' `ranges`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embtools.errors import EmbtoolsError

if TYPE_CHECKING:
    import numpy as np

PRECISIONS = ("float32", "float16", "int8", "ubinary")
FLOAT_PRECISIONS = ("float32", "float16")
_STORED_DTYPES = {"float32": "<f4", "float16": "<f2", "int8": "i1", "ubinary": "u1"}


def stored_dtype(precision: str) -> str:
    """The numpy dtype a precision is stored as."""
    return _STORED_DTYPES[precision]


def stored_width(precision: str, dim: int) -> int:
    """Values stored per vector: `dim`, or the bytes of `dim` bits for ubinary."""
    return (dim + 7) // 8 if precision == "ubinary" else dim


def precision_of_dtype(dtype: np.dtype) -> str:
    """The precision whose stored dtype this is; EmbtoolsError for any other."""
    found = next((name for name, stored in _STORED_DTYPES.items() if dtype.str.lstrip("<|") == stored.lstrip("<|")),
                 None)
    if found is None:
        raise EmbtoolsError(f"vectors of dtype {dtype} are none of {', '.join(PRECISIONS)}")
    return found


def truncate(matrix: np.ndarray, dim: int | None, normalize: bool) -> np.ndarray:
    """The first `dim` dimensions of each row (Matryoshka), L2-renormalized when `normalize`."""
    import numpy as np

    if dim is None or dim >= matrix.shape[1]:
        return matrix
    kept = np.ascontiguousarray(matrix[:, :dim])
    if normalize:
        norms = np.linalg.norm(kept, axis=1, keepdims=True)
        kept /= np.where(norms == 0, 1, norms)
    return kept


def int8_ranges(calibration: np.ndarray) -> np.ndarray:
    """Per-dimension (min, max) of calibration vectors, as a (2, dim) float32 array."""
    import numpy as np

    return np.vstack((calibration.min(axis=0), calibration.max(axis=0))).astype(np.float32)


def _steps(ranges: np.ndarray) -> np.ndarray:
    import numpy as np

    steps = (ranges[1] - ranges[0]) / 255
    return np.where(steps == 0, 1, steps)


def quantize(matrix: np.ndarray, precision: str, ranges: np.ndarray | None = None) -> np.ndarray:
    """float32 rows as `precision` stores them; int8 needs `ranges`."""
    import numpy as np

    if precision in FLOAT_PRECISIONS:
        return matrix.astype(stored_dtype(precision))
    if precision == "ubinary":
        return np.packbits(matrix > 0, axis=-1)
    codes = np.clip(np.floor((matrix - ranges[0]) / _steps(ranges)), 0, 255)
    return (codes - 128).astype(np.int8)


def dequantize(stored: np.ndarray, precision: str, ranges: np.ndarray | None = None, copy: bool = True
               ) -> np.ndarray:
    """float32 rows from stored ones: floats widened, int8 codes mapped back to their bucket's start; ubinary
    (bits, not numbers) is returned as it is. Without `copy`, float32 rows are returned as they are too."""
    import numpy as np

    if precision == "ubinary":
        return stored
    if precision == "int8":
        return ((stored.astype(np.float64) + 128) * _steps(ranges) + ranges[0]).astype(np.float32)
    return stored.astype(np.float32, copy=copy)


class VectorShaper:
    """The model's float32 rows as emb-encode stores them: truncated to `dim` (renormalized when the model
    normalizes), then in `precision`. int8 ranges come from the first rows it is given (the first chunk), unless
    set before, and stay fixed after."""

    def __init__(self, precision: str = "float32", dim: int | None = None, normalize: bool = False,
                 ranges: np.ndarray | None = None):
        self.precision, self.dim, self.normalize, self.ranges = precision, dim, normalize, ranges

    def out_dim(self, model_dim: int) -> int:
        return min(self.dim, model_dim) if self.dim else model_dim

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        matrix = truncate(matrix, self.dim, self.normalize)
        if self.precision == "int8" and self.ranges is None and len(matrix):
            self.ranges = int8_ranges(matrix)
        return quantize(matrix, self.precision, self.ranges)
