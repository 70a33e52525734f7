"""Embedding records: vectors as JSON float lists or base64 of little-endian float32 (OpenAI's `base64` format).

Base64 goes through pybase64 (SIMD, faster than the standard library's decoding: docs/benchmarks.md, emb-index), with
the same strict validation as `base64.b64decode(validate=True)`.
"""

from __future__ import annotations

import binascii
import math
from typing import TYPE_CHECKING, Any

import pybase64

from embtools.errors import InputError
from embtools.records.jsonl import Record, require_id

if TYPE_CHECKING:  # numpy is imported where vectors are handled: commands read ENCODINGS for --help without it
    import numpy as np

ENCODINGS = ("float", "base64")
NOT_FINITE = 'field "embedding" contains NaN or infinity'


def encode_vector(vector: np.ndarray, encoding: str) -> Any:
    """The JSON value for one vector: a float list (numpy array, serialized by orjson) or a base64 string."""
    import numpy as np

    vector = np.asarray(vector, dtype=np.float32)
    if encoding == "base64":
        return pybase64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector


def decode_vector(value: Any) -> np.ndarray:
    """A float32 vector from a record's `embedding` (a uint8 array, packed ubinary bits, stays as it is);
    InputError for anything that is not a finite vector."""
    import numpy as np

    if isinstance(value, str):
        try:
            raw = pybase64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise InputError('field "embedding" is a string but not valid base64') from None
        if len(raw) % 4:
            raise InputError('field "embedding" base64 length is not a whole number of float32 values')
        vector = np.frombuffer(raw, dtype="<f4")  # read-only, which nothing downstream needs to change
    elif isinstance(value, list):
        vector = _numbers(value)
    elif isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim == 1:
        return value  # ubinary bits packed in bytes (records/vector_precision.py), finite by nature
    elif isinstance(value, np.ndarray):  # records built in-process (emb-eval, binary files) skip the JSON round trip
        vector = _numbers(value)
    else:
        raise InputError('field "embedding" is missing' if value is None else
                         f'field "embedding" must be a list of floats or a base64 string, got {type(value).__name__}')
    if vector.size == 0:
        raise InputError('field "embedding" is empty')
    if not all_finite(vector):
        raise InputError(NOT_FINITE)
    return vector


def all_finite(vector: np.ndarray) -> bool:
    """No NaN or infinity in the vector (or matrix: a block of rows checked at once). A finite sum of squares proves
    it in one BLAS call (a NaN or an infinity makes it NaN or inf; vdot, unlike dot, raises no overflow warning);
    only when it is not, which huge finite values can also cause, is every value checked."""
    import numpy as np

    return math.isfinite(np.vdot(vector, vector)) or bool(np.isfinite(vector).all())


def _numbers(values: list | np.ndarray) -> np.ndarray:
    """A float32 vector from a JSON list, checked in C: numpy infers an int or float dtype only for numbers."""
    import numpy as np

    try:
        array = np.asarray(values)
    except ValueError:  # ragged nesting
        array = np.asarray([None])
    if array.ndim != 1 or array.dtype.kind not in "if":
        raise InputError('field "embedding" must be a flat list of numbers')
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused by the caller
        return array.astype(np.float32)


def read_embedding(record: Record) -> tuple[str | int, np.ndarray]:
    """(id, vector) of an embedding record."""
    return require_id(record), decode_vector(record.get("embedding"))
