"""One training step: tokenize a batch, embed it (GradCache mini-batches, or one pass under DeepSpeed), InfoNCE,
backward. The optimizer step is the caller's."""

from __future__ import annotations

import contextlib

import torch

from embtools.records.text_keys import signed_key_digest
from embtools.train.data import TrainingExample
from embtools.train.grad_cache import grad_cache_backward, plain_backward
from embtools.train.infonce_loss import BatchKeys, InfoNCELoss
from embtools.train.text_batches import TextBatcher, stack_batches


def _chunks(batch, size: int):
    return [batch.rows(i, min(i + size, batch.input_ids.shape[0])) for i in range(0, batch.input_ids.shape[0], size)]


def batch_keys(batch: list[TrainingExample]) -> BatchKeys:
    def keys(texts):
        return torch.tensor([signed_key_digest(t) if t is not None else -1 for t in texts], dtype=torch.long)

    return BatchKeys(keys([e.query for e in batch]), keys([e.positive for e in batch]),
                     keys([e.negative for e in batch]),
                     torch.tensor([e.negative is not None for e in batch], dtype=torch.bool))


def train_step(model, batcher: TextBatcher, loss_fn: InfoNCELoss, batch: list[TrainingExample], config,
               accelerator, scale: float = 1.0) -> tuple[torch.Tensor, int]:
    """Forward and backward of one batch (this rank's share); returns (loss, tokens). The optimizer does not step."""
    queries = batcher.queries([e.query for e in batch])
    positives = batcher.documents([e.positive for e in batch])
    with_negative = [i for i, e in enumerate(batch) if e.negative is not None]
    negatives = batcher.documents([batch[i].negative for i in with_negative]) if with_negative else None
    keys, negative_rows = batch_keys(batch), torch.tensor(with_negative, dtype=torch.long)

    def loss_of(q, p, n):
        full = torch.zeros_like(p)  # every rank gathers [B, d] negatives; rows without one are masked out
        if n is not None:
            full = full.index_copy(0, negative_rows.to(p.device), n.to(p.dtype))
        return loss_fn(q, p, full, keys) * scale

    size = config.mini_batch_size
    groups = [_chunks(queries, size), _chunks(positives, size), _chunks(negatives, size) if negatives else []]
    embed = lambda tokens: batcher.embed(model, tokens)  # noqa: E731
    tokens = queries.tokens + positives.tokens + (negatives.tokens if negatives else 0)
    if config.deepspeed:
        return one_pass_backward(batcher, model, [queries, positives, negatives], loss_of, accelerator) / scale, tokens
    if len(batch) <= size:
        return plain_backward(embed, groups, loss_of, accelerator.backward) / scale, tokens
    sync = lambda last: contextlib.nullcontext() if last else accelerator.no_sync(model)  # noqa: E731
    return grad_cache_backward(embed, groups, loss_of, accelerator.backward, sync) / scale, tokens


def one_pass_backward(batcher: TextBatcher, model, batches: list, loss_fn, accelerator) -> torch.Tensor:
    """DeepSpeed: queries, positives and negatives in one forward and one backward. ZeRO-3 reduces each gradient
    once per backward, and several forwards (or reentrant checkpointing over several) would hand it a parameter
    twice; DeepSpeed also steps inside accelerate's backward, so GradCache's several backwards cannot be used."""
    present = [b for b in batches if b is not None]
    vectors = torch.split(batcher.embed(model, stack_batches(present, batcher.pad_id)),
                          [b.input_ids.shape[0] for b in present])
    loss = loss_fn(*vectors, *([None] * (len(batches) - len(present))))
    accelerator.backward(loss)
    return loss.detach()
