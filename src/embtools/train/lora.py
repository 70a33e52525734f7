"""The model to train: the bare transformer (no LM head) in float32, with LoRA adapters on every linear layer
(rank 16, alpha 32, dropout 0.1: e5-mistral's released adapter config) or fully trainable (`--no-lora`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from embtools.errors import EmbtoolsError
from embtools.models.loading import SHIPPED_LAYERS, ModelSpec, config_with_rope, peft_wrapping
from embtools.models.rope import RopeOverride
from embtools.train import recipe

log = logging.getLogger("embtools")


@dataclass
class LoraSettings:
    rank: int = recipe.LORA_RANK
    alpha: float = recipe.LORA_ALPHA
    dropout: float = recipe.LORA_DROPOUT
    target_modules: str = "all-linear"


def load_base_model(spec: ModelSpec, trust_remote_code: bool = False,
                    rope: dict | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) of the base weights in float32 (optimizer states and master weights stay fp32), with
    `rope` (RopeOverride.to_json(), as training_args.json keeps it) applied to its rotary positions."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if spec.base_path is not None:
        raise EmbtoolsError(f"{spec.path} is a LoRA adapter: train from its base or a merged model (--merge)")
    if not log.isEnabledFor(logging.DEBUG):
        hf_logging.disable_progress_bar()
    positions = config_with_rope(spec.path, RopeOverride.from_json(rope).over(spec.rope), spec.name,
                                 trust_remote_code)
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.path, trust_remote_code=trust_remote_code)
        model = AutoModel.from_pretrained(spec.path, dtype=torch.float32, trust_remote_code=trust_remote_code,
                                          **positions, **SHIPPED_LAYERS)
    except (OSError, ValueError) as exc:
        raise EmbtoolsError(f"cannot load model {spec.name}: {str(exc).splitlines()[0]}") from None
    if getattr(model.config, "use_cache", None):
        model.config.use_cache = False  # no generation here, and a KV cache breaks gradient checkpointing
    return model, tokenizer


def enable_gradient_checkpointing(model: Any, reentrant: bool) -> None:
    """Recompute activations in backward. Reentrant checkpointing is the one that works with LoRA under ZeRO-3
    (transformers#47254: non-reentrant checkpointing rejects the re-partitioned frozen weights on recompute); it
    needs an input that requires grad, which frozen embeddings do not give, hence enable_input_require_grads."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
    if reentrant:
        model.enable_input_require_grads()


def add_lora(model: Any, settings: LoraSettings) -> Any:
    """Wrap `model` with fresh LoRA adapters (the caller seeds torch first, so the init is reproducible)."""
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=settings.target_modules, task_type=TaskType.FEATURE_EXTRACTION)
    with peft_wrapping():
        return get_peft_model(model, config)


def trainable_parameters(model: Any) -> list[tuple[str, Any]]:
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def describe_parameters(model: Any) -> str:
    size = lambda p: getattr(p, "ds_numel", p.numel())  # noqa: E731  (ZeRO-3 partitions report 0 elements)
    trainable = sum(size(p) for _, p in trainable_parameters(model))
    total = sum(size(p) for p in model.parameters())
    return f"{trainable:,} trainable parameters of {total:,} ({100 * trainable / max(total, 1):.2f}%)"
