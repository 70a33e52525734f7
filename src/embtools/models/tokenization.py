"""Token ids for embedding: the model's special tokens, truncation that keeps them, and the EOS that E5 pools.

Texts are tokenized once without special tokens; truncation cuts the content only, then the tokenizer's own
prefix/suffix (e.g. [CLS] ... [SEP], or a BOS) is put back and, for last-token pooling, an EOS appended when the
suffix does not already end with one. transformers 5 no longer adds an EOS for Llama/Mistral tokenizers, and
trusting a config flag for it is a known trap (docs/method.md), so the EOS is added here and checked at pooling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from embtools.errors import EmbtoolsError

_PROBE = "hello"


@dataclass
class TokenFraming:
    """What goes around a text's content tokens, and how many content tokens fit."""

    prefix: list[int]
    suffix: list[int]
    content_limit: int


def token_framing(tokenizer: Any, max_length: int, append_eos: bool) -> TokenFraming:
    """Find the tokenizer's special prefix and suffix by tokenizing a probe word with and without them."""
    bare = tokenizer(_PROBE, add_special_tokens=False)["input_ids"]
    full = tokenizer(_PROBE, add_special_tokens=True)["input_ids"]
    start = next((i for i in range(len(full) - len(bare) + 1) if full[i:i + len(bare)] == bare), None)
    if start is None:
        raise EmbtoolsError("cannot tell this tokenizer's special tokens from the text's")
    prefix, suffix = list(full[:start]), list(full[start + len(bare):])
    if append_eos:
        eos = tokenizer.eos_token_id
        if eos is None:
            raise EmbtoolsError("last-token pooling needs an EOS token, and this tokenizer has none")
        if not suffix or suffix[-1] != eos:
            suffix = suffix + [eos]
    limit = max_length - len(prefix) - len(suffix)
    if limit < 1:
        raise EmbtoolsError(f"--max-length {max_length} leaves no room for text")
    return TokenFraming(prefix, suffix, limit)


def frame_texts(tokenizer: Any, texts: list[str], framing: TokenFraming) -> tuple[list[list[int]], int]:
    """Token ids for each text, truncated to fit; returns (ids, how many texts were truncated)."""
    contents = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]  # we truncate below
    truncated = sum(1 for ids in contents if len(ids) > framing.content_limit)
    framed = [framing.prefix + list(ids[:framing.content_limit]) + framing.suffix for ids in contents]
    return framed, truncated


def model_max_length(tokenizer: Any, config: Any, saved_limit: int | None) -> int | None:
    """The longest input the model takes: a sentence-transformers limit, else the position table's size."""
    if saved_limit:
        return int(saved_limit)
    positions = getattr(config, "max_position_embeddings", None)
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    candidates = [x for x in (positions, tokenizer_limit) if isinstance(x, int) and 0 < x < 10**7]
    return min(candidates) if candidates else None


def pad_right(batch_ids: list[list[int]], pad_id: int):
    """(input_ids, attention_mask) long tensors, right-padded with `pad_id` to the longest row."""
    import torch

    width = max(len(x) for x in batch_ids)
    input_ids = torch.full((len(batch_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch_ids), width), dtype=torch.long)
    for row, ids in enumerate(batch_ids):
        input_ids[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask[row, :len(ids)] = 1
    return input_ids, mask
