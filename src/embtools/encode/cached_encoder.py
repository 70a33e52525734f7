"""An Encoder behind the embedding cache: texts in, float32 vectors out, the model loaded only when a text is new.

`CachedEncoder.embed(texts, normalize)` looks every text up in the cache, encodes the missing ones (each distinct
text once) in chunks so progress is kept if a long run stops, stores them, and L2-normalizes on the way out when
asked. `encoded` and `reused` count texts sent to the model and texts served from the cache.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from embtools.encode.embedding_cache import EmbeddingCache, model_fingerprint, text_key
from embtools.encode.encoder import Encoder, EncodeSettings, default_device, resolve_dtype
from embtools.models.loading import ModelSpec, inspect_model
from embtools.progress import NO_BAR, Bar

log = logging.getLogger("embtools")


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (as torch.nn.functional.normalize, eps 1e-12)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class CachedEncoder:
    """A lazily loaded Encoder (vectors before normalization) with an optional EmbeddingCache in front."""

    def __init__(self, model: str | ModelSpec, settings: EncodeSettings | None = None,
                 cache: EmbeddingCache | None = None, chunk_size: int = 4096, encoder: Encoder | None = None):
        self.spec = model if isinstance(model, ModelSpec) else inspect_model(model)
        self.settings = replace(settings or EncodeSettings(), normalize=False)
        self.cache = cache
        self.chunk_size = chunk_size
        self.normalize_default = self.spec.normalize if (settings is None or settings.normalize is None) \
            else settings.normalize
        self.device = self.settings.device or default_device()
        self.pooling = self.settings.pooling or self.spec.pooling
        self.dtype = resolve_dtype(self.settings.dtype, self.device, self.spec.is_decoder)
        self.fingerprint = model_fingerprint(self.spec, self.pooling, self.dtype, self.settings.max_length,
                                             self.device, self.settings.rope.over(self.spec.rope))
        self._encoder: Encoder | None = encoder  # given: a model already loaded (emb-train evaluating its model)
        self.encoded = 0
        self.reused = 0
        self._progress = NO_BAR

    @property
    def progress(self) -> Bar:
        """The bar told of every text: the model's batches as they run, cache hits as they are found."""
        return self._progress

    @progress.setter
    def progress(self, bar: Bar) -> None:
        self._progress = bar
        if self._encoder is not None:
            self._encoder.progress = bar

    @property
    def encoder(self) -> Encoder:
        """The model, loaded on first use."""
        if self._encoder is None:
            log.info(f"loading {self.spec.name} ({self.pooling} pooling, {self.dtype})")
            self._encoder = Encoder(self.spec, self.settings)
            self._encoder.progress = self._progress
        return self._encoder

    def embed(self, texts: list[str], normalize: bool | None = None) -> np.ndarray:
        """Vectors (len(texts) x dim, float32) in input order; `normalize=None`: the model's own default."""
        normalize = self.normalize_default if normalize is None else normalize
        parts = [self._embed_chunk(texts[i:i + self.chunk_size]) for i in range(0, len(texts), self.chunk_size)]
        if not parts:
            return np.zeros((0, 0), dtype=np.float32)
        vectors = np.vstack(parts)
        return l2_normalize(vectors) if normalize else vectors

    def _embed_chunk(self, texts: list[str]) -> np.ndarray:
        if self.cache is None:
            self.encoded += len(texts)
            return self.encoder.encode(texts)
        keys = [text_key(self.fingerprint, t) for t in texts]
        found = self.cache.get_many(list(dict.fromkeys(keys)))
        missing = {key: text for key, text in zip(keys, texts) if key not in found}
        if missing:
            fresh = self.encoder.encode(list(missing.values()))
            new = dict(zip(missing, fresh))
            self.cache.put_many(new.items())
            found.update(new)
        self.encoded += len(missing)
        self.reused += len(texts) - len(missing)
        self.progress.update(len(texts) - len(missing), cached=self.reused)
        return np.vstack([found[key] for key in keys]).astype(np.float32, copy=False)
