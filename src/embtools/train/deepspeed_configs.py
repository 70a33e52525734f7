"""Bundled DeepSpeed configs for `--deepspeed zero2|zero3` (Python dicts, so no package data), or a user's JSON file.

The micro batch is this process's share of the batch (emb-train passes no dataloader to accelerate, so DeepSpeed
cannot infer it); gradients are not accumulated inside DeepSpeed (one optimizer step per contrastive batch).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from embtools.errors import EmbtoolsError

_COMMON: dict[str, Any] = {
    "gradient_accumulation_steps": 1,
    "steps_per_print": 10**9,
    "wall_clock_breakdown": False,
}

BUNDLED: dict[str, dict[str, Any]] = {
    "zero2": {**_COMMON, "zero_optimization": {
        "stage": 2, "overlap_comm": False, "contiguous_gradients": True, "reduce_scatter": True,
        "allgather_bucket_size": 2e8, "reduce_bucket_size": 2e8}},
    "zero3": {**_COMMON, "zero_optimization": {
        "stage": 3, "overlap_comm": False, "contiguous_gradients": True, "reduce_bucket_size": 2e8,
        "stage3_prefetch_bucket_size": 2e8, "stage3_param_persistence_threshold": 1e5,
        "stage3_gather_16bit_weights_on_model_save": True}},
}


def deepspeed_config(name_or_path: str, micro_batch_size: int, mixed_precision: str) -> dict[str, Any]:
    """The config for `--deepspeed NAME|PATH`, with the micro batch and precision of this run filled in."""
    if name_or_path in BUNDLED:
        config = copy.deepcopy(BUNDLED[name_or_path])
    else:
        path = Path(name_or_path)
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise EmbtoolsError(
                f"--deepspeed {name_or_path}: not zero2, zero3 or a readable JSON file ({exc})") from None
    config["train_micro_batch_size_per_gpu"] = micro_batch_size
    config["gradient_accumulation_steps"] = 1  # emb-train accumulates itself (--gradient-accumulation-steps)
    # DeepSpeed clips the gradient norm at 1.0 unless told otherwise (GRADIENT_CLIPPING_DEFAULT), emb-train without
    # DeepSpeed does not clip: unclipped unless the config asks. Clipping at 1.0 was the whole ZeRO-2/3 difference
    # (tiny llama, 2 steps: update 4.1e-2 apart from one process's, 4.7e-7 once unclipped); under Adam clipping
    # changes the update through eps and through the weighting of the steps in the moments.
    config.setdefault("gradient_clipping", 0.0)
    config.pop("train_batch_size", None)
    config["bf16"] = {"enabled": mixed_precision == "bf16"}
    config["fp16"] = {"enabled": mixed_precision == "fp16"}
    return config
