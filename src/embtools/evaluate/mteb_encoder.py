"""Our model as an mteb encoder: mteb's own tasks run through the embedding cache with E5's instruction rules.

`MtebEncoder` subclasses mteb's AbsEncoder. For each batch of inputs it prepends the task's instruction as E5 does
(`Instruct: ...\\nQuery: ...`): on queries only for retrieval, on every input for other tasks; and it L2-normalizes
by the model's own rule (`normalizes`): a model that follows E5's protocol (emb-train output, the E5 family) as E5's
evaluation code does, every task but classification; any other model as mteb's SentenceTransformer wrapper runs it,
normalized where its sentence-transformers modules include Normalize (all-MiniLM-L6-v2), raw otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from mteb.models.abs_encoder import AbsEncoder
from mteb.models.model_meta import ModelMeta, ScoringFunction

from embtools.encode.cached_encoder import CachedEncoder
from embtools.instructions import with_instruction
from embtools.models.builtin import BUILTIN_MODELS
from embtools.models.loading import ModelSpec

InstructionRule = Callable[[Any, Any], "str | None"]
_UNNORMALIZED_TYPES = {"Classification", "MultilabelClassification"}


def result_model_name(encoder: CachedEncoder) -> str:
    """The model's name in mteb results: the hub id of a built-in, else the folder (or hub id) as given."""
    name = encoder.spec.name
    if name in BUILTIN_MODELS:
        return BUILTIN_MODELS[name].hub_id
    return Path(name).expanduser().resolve().name if Path(name).expanduser().is_dir() else name


def model_meta(encoder: CachedEncoder, revision: str | None = None) -> ModelMeta:
    """mteb's ModelMeta for our model: name, revision, cosine similarity, instruction use."""
    return ModelMeta.create_empty({
        "name": result_model_name(encoder),
        "revision": revision,
        "similarity_fn_name": ScoringFunction.COSINE,
        "max_tokens": encoder.settings.max_length,
        "framework": ["PyTorch"],
    })


def instruction_rule(instruction: str | None) -> InstructionRule:
    """E5's placement of one instruction: every input, except retrieval documents."""
    def rule(task_metadata: Any, prompt_type: Any) -> str | None:
        if _is_document(prompt_type) and task_metadata.type == "Retrieval":
            return None
        return instruction
    return rule


def _is_document(prompt_type: Any) -> bool:
    return prompt_type is not None and str(getattr(prompt_type, "value", prompt_type)) == "document"


class MtebEncoder(AbsEncoder):
    """An mteb encoder over a CachedEncoder; `rule(task_metadata, prompt_type)` gives the instruction or None."""

    def __init__(self, encoder: CachedEncoder, rule: InstructionRule, revision: str | None = None):
        self.model = encoder
        self.rule = rule
        self.mteb_model_meta = model_meta(encoder, revision)

    def encode(self, inputs, *, task_metadata, hf_split: str, hf_subset: str, prompt_type=None,
               **kwargs: Any) -> np.ndarray:
        """Embeddings of every text in the DataLoader's batches, in order."""
        texts = [text for batch in inputs for text in batch["text"]]
        instruction = self.rule(task_metadata, prompt_type)
        normalize = normalizes(self.model.spec, task_metadata.type)
        self.model.progress.show(stage=f"{hf_split} {getattr(prompt_type, 'value', prompt_type) or 'texts'}")
        return self.model.embed([with_instruction(t, instruction) for t in texts], normalize=normalize)


def normalizes(spec: ModelSpec, task_type: str) -> bool:
    """Whether embeddings for an mteb task of this type are L2-normalized, by the model's own rule: E5's evaluation
    code normalizes every task but classification ("slightly better results"); mteb's SentenceTransformer wrapper
    returns what the model's modules return, normalized only where they include Normalize."""
    if spec.e5_protocol:
        return task_type not in _UNNORMALIZED_TYPES
    return spec.normalize_module
