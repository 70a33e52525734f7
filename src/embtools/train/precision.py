"""emb-train's `--mixed-precision auto`, resolved here once: what the forward passes autocast to on this machine.

- A GPU with native bf16 (Ampere and later; `torch.cuda.is_bf16_supported()`): `bf16`, the paper's precision. Its
  range is float32's, so no loss scaling is needed and GradCache's two backward passes stay plain.
- An older GPU: `no` (float32). fp16 would halve memory there, but decoders pretrained in bf16 can overflow fp16's
  range in their activations, and fp16's loss scaling has never been run through GradCache here; `--mixed-precision
  fp16` stays available for those who want to try.
- A CPU: `no`. Autocast on a CPU helps only where it computes bf16 natively, and weights stay float32 anyway.
"""

from __future__ import annotations

MIXED_PRECISIONS = ("auto", "no", "fp16", "bf16")


def resolve_mixed_precision(choice: str) -> str:
    """`no`, `fp16` or `bf16`: the choice itself, or for `auto` what this machine's device supports."""
    if choice != "auto":
        return choice
    import torch

    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "no"
