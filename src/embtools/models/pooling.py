"""Pooling token vectors into one text vector: last token (E5), mean, or CLS."""

from __future__ import annotations

import torch

from embtools.errors import EmbtoolsError


def last_token_pool(hidden: torch.Tensor, attention_mask: torch.Tensor, input_ids: torch.Tensor,
                    eos_token_id: int | None) -> torch.Tensor:
    """The vector of each sequence's last real token, with left or right padding.

    E5 pools the EOS token appended to every text; the pooled position is checked to hold `eos_token_id`, so a
    tokenizer that silently dropped it is caught instead of producing subtly wrong embeddings.
    """
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    left_padded = bool(attention_mask[:, -1].all())
    last = torch.full_like(rows, hidden.shape[1] - 1) if left_padded else attention_mask.sum(dim=1) - 1
    if eos_token_id is not None and not bool((input_ids[rows, last] == eos_token_id).all()):
        raise EmbtoolsError("last-token pooling: a sequence does not end with the EOS token")
    return hidden[rows, last]


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The average of the real tokens' vectors (sentence-transformers' mean pooling)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def cls_pool(hidden: torch.Tensor) -> torch.Tensor:
    """The first token's vector (right padding assumed, as encoders use)."""
    return hidden[:, 0]


def pool(kind: str, hidden: torch.Tensor, attention_mask: torch.Tensor, input_ids: torch.Tensor,
         eos_token_id: int | None) -> torch.Tensor:
    if kind == "last":
        return last_token_pool(hidden, attention_mask, input_ids, eos_token_id)
    if kind == "mean":
        return mean_pool(hidden, attention_mask)
    return cls_pool(hidden)
