"""The dtype names a user can ask for with `--dtype`, and the torch dtype each one loads weights in.

Plain strings and no torch import, so that every command's `--help` can offer the choices without loading torch.
`auto` is decided per model and device when a model loads (encode.encoder.resolve_dtype).
"""

from __future__ import annotations

TORCH_DTYPE_NAMES = ("float32", "bfloat16", "float16")  # the attribute names of torch's dtypes
DTYPES = ("auto", *TORCH_DTYPE_NAMES)
DTYPE_HELP = "auto: bfloat16 for decoders on GPUs and on CPUs with native bf16 (AVX512-BF16, AMX), float32 otherwise."


def torch_dtype(name: str):
    """The torch dtype of a resolved name (`bfloat16` -> torch.bfloat16); ValueError for anything else."""
    import torch

    if name not in TORCH_DTYPE_NAMES:
        raise ValueError(f"unknown dtype {name!r}: expected one of {', '.join(TORCH_DTYPE_NAMES)}")
    return getattr(torch, name)
