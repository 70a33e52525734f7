"""Texts -> padded token tensors -> pooled vectors, the way the encoder embeds them (same EOS rule, same pooling),
but with gradients. Queries and documents may have different length limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from embtools.models.pooling import pool
from embtools.models.tokenization import frame_texts, pad_right, token_framing


@dataclass
class TokenBatch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    @property
    def tokens(self) -> int:
        return int(self.attention_mask.sum())

    def rows(self, start: int, stop: int) -> "TokenBatch":
        """Rows start:stop, trimmed to their own longest text (right padding)."""
        mask = self.attention_mask[start:stop]
        width = max(1, int(mask.sum(dim=1).max()))
        return TokenBatch(self.input_ids[start:stop, :width], mask[:, :width])


class TextBatcher:
    """Tokenizes queries and documents with the encoder's framing, and pools a model's output into vectors."""

    def __init__(self, tokenizer: Any, pooling: str, query_max_length: int, document_max_length: int):
        self.tokenizer = tokenizer
        self.pooling = pooling
        append_eos = pooling == "last"
        self.query_framing = token_framing(tokenizer, query_max_length, append_eos)
        self.document_framing = token_framing(tokenizer, document_max_length, append_eos)
        self.pad_id = next(x for x in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0) if x is not None)
        self.eos_id = tokenizer.eos_token_id if append_eos else None

    def queries(self, texts: list[str]) -> TokenBatch:
        return self._pad(frame_texts(self.tokenizer, texts, self.query_framing)[0])

    def documents(self, texts: list[str]) -> TokenBatch:
        return self._pad(frame_texts(self.tokenizer, texts, self.document_framing)[0])

    def _pad(self, ids: list[list[int]]) -> TokenBatch:
        return TokenBatch(*pad_right(ids, self.pad_id))

    def embed(self, model: Any, batch: TokenBatch) -> torch.Tensor:
        """Pooled vectors (not normalized: the loss takes cosines) of one batch, on the model's device."""
        device = next(model.parameters()).device
        input_ids, mask = batch.input_ids.to(device), batch.attention_mask.to(device)
        hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        return pool(self.pooling, hidden, mask, input_ids, self.eos_id)


def stack_batches(batches: list[TokenBatch], pad_id: int) -> TokenBatch:
    """Several batches as one (right-padded to the widest), for a single forward pass over all of them."""
    width = max(b.input_ids.shape[1] for b in batches)
    ids = [torch.nn.functional.pad(b.input_ids, (0, width - b.input_ids.shape[1]), value=pad_id) for b in batches]
    masks = [torch.nn.functional.pad(b.attention_mask, (0, width - b.attention_mask.shape[1])) for b in batches]
    return TokenBatch(torch.cat(ids), torch.cat(masks))
