"""Texts in, embeddings out, in input order: the library behind emb-encode, emb-eval and emb-filter.

`Encoder.encode(texts)` tokenizes once, sorts by length, runs batches sized by a token budget (so padding waste stays
small and short texts share big batches), pools, optionally L2-normalizes, and returns float32 rows in input order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from embtools import distributed
from embtools.encode.batching import default_batch_tokens, token_budget_batches
from embtools.errors import EmbtoolsError
from embtools.models.loading import POOLINGS, ModelSpec, inspect_model, load_model
from embtools.models.pooling import pool
from embtools.models.rope import RopeOverride
from embtools.models.tokenization import frame_texts, model_max_length, pad_right, token_framing
from embtools.progress import NO_BAR

log = logging.getLogger("embtools")


@dataclass
class EncodeSettings:
    """How to embed. `pooling=None` and `normalize=None` mean: what the model folder says."""

    pooling: str | None = None
    normalize: bool | None = None
    max_length: int = 512
    dtype: str = "auto"
    max_tokens: int | None = None  # None: batching.default_batch_tokens(device)
    device: str | None = None
    trust_remote_code: bool = False
    rope: RopeOverride = RopeOverride()  # --rope-theta / --rope-scaling, over what a trained model recorded


def default_device() -> str:
    """This rank's device (`distributed.device`): under `--num-processes N` each rank encodes on its own GPU."""
    return str(distributed.device())


def resolve_dtype(dtype: str, device: str, is_decoder: bool) -> str:
    """`auto`: half precision for decoders where the hardware computes it natively (as E5 runs them), float32 for
    encoders and on CPUs that would only emulate bf16."""
    if dtype != "auto":
        return dtype
    import torch

    if not is_decoder:
        return "float32"
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "bfloat16" if cpu_has_native_bf16() else "float32"


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 in hardware (AVX512-BF16 or AMX). Elsewhere oneDNN emulates it, and emulated
    bf16 is slower than float32 (docs/benchmarks.md, emb-encode)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line for line in cpuinfo if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class Encoder:
    """A loaded model with its pooling and tokenization rules; call `encode(texts)`."""

    def __init__(self, model: str | ModelSpec, settings: EncodeSettings | None = None, loaded=None):
        """`loaded`: a (model, tokenizer) already in memory (emb-train's model while it trains) instead of loading
        the spec's weights."""
        self.settings = settings or EncodeSettings()
        self.spec = model if isinstance(model, ModelSpec) else inspect_model(model)
        self.pooling = self.settings.pooling or self.spec.pooling
        if self.pooling not in POOLINGS:
            raise EmbtoolsError(f"unknown pooling {self.pooling!r}; choose one of {', '.join(POOLINGS)}")
        self.normalize = self.spec.normalize if self.settings.normalize is None else self.settings.normalize
        self.device = self.settings.device or default_device()
        self.dtype = resolve_dtype(self.settings.dtype, self.device, self.spec.is_decoder)
        self.max_tokens = self.settings.max_tokens or default_batch_tokens(self.device)
        self.model, self.tokenizer = loaded or load_model(self.spec, self.dtype, self.device,
                                                          self.settings.trust_remote_code, self.settings.rope)
        limit = model_max_length(self.tokenizer, self.model.config, self.spec.max_length)
        self.max_length = min(self.settings.max_length, limit) if limit else self.settings.max_length
        self.framing = token_framing(self.tokenizer, self.max_length, append_eos=self.pooling == "last")
        self.pad_id = next(x for x in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, 0) if x is not None)
        self.truncated = 0
        self.tokens = 0
        self.progress = NO_BAR  # told of every batch (texts, tokens) while a stage shows a bar

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embeddings (len(texts) x dim, float32) in the order of `texts`."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids, truncated = frame_texts(self.tokenizer, texts, self.framing)
        self.truncated += truncated
        self.tokens += sum(len(x) for x in ids)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for batch in token_budget_batches([len(x) for x in ids], self.max_tokens):
            out[batch] = self.embed_batch([ids[i] for i in batch]).cpu().numpy()
            self.progress.update(len(batch), tokens=sum(len(ids[i]) for i in batch))
        return out

    def embed_batch(self, batch_ids: list[list[int]]):
        """One batch of token id lists -> float32 vectors [len(batch_ids), dim], on the model's device."""
        import torch

        input_ids, mask = self._pad(batch_ids)
        with torch.inference_mode():
            hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            vectors = pool(self.pooling, hidden, mask, input_ids, self.tokenizer.eos_token_id).float()
            if self.normalize:
                vectors = torch.nn.functional.normalize(vectors, p=2, dim=-1)
        return vectors

    def _pad(self, batch_ids: list[list[int]]):
        """Right padding: the pooled position is each row's last real token."""
        input_ids, mask = pad_right(batch_ids, self.pad_id)
        return input_ids.to(self.device), mask.to(self.device)
