"""One training step: tokenize a batch, embed it in GradCache mini-batches, InfoNCE, backward. The optimizer step
is the caller's.

Under DeepSpeed every mini-batch goes through GradCache, each re-forward with its own `engine.backward`, and the
engine's gradient-accumulation boundary is set on the last backward of the optimizer step only; the caller then
steps the engine once. Why this shape (docs/train.md, "Distributed training"):
- ZeRO-2/3 reduce-scatter gradients inside every `engine.backward` (accumulating the reduced partitions until the
  step), ZeRO-3 all-gathers each layer's weights in every forward, and DDP broadcasts buffers in every forward, so
  every rank must run the same number of forwards and backwards: with several processes each rank embeds a
  negative for every row (a stand-in, masked out of the loss, where an example has none) whenever any rank has
  one. (A rank without negatives while another had some hung DDP and ZeRO-3 at the first such batch.)
- `accelerator.backward` would step the engine inside every backward; `no_sync` is refused under ZeRO-2/3.
- One backward per mini-batch keeps one mini-batch's activations alive; one backward of all the surrogates would
  keep them all, which is what GradCache exists to avoid.
"""

from __future__ import annotations

import contextlib

import torch

from embtools.distributed import collective_device, world_size
from embtools.records.text_keys import signed_key_digest
from embtools.train.data import TrainingExample
from embtools.train.grad_cache import grad_cache_backward, plain_backward
from embtools.train.infonce_loss import BatchKeys, InfoNCELoss
from embtools.train.text_batches import TextBatcher


def _chunks(batch, size: int):
    return [batch.rows(i, min(i + size, batch.input_ids.shape[0])) for i in range(0, batch.input_ids.shape[0], size)]


def batch_keys(batch: list[TrainingExample]) -> BatchKeys:
    def keys(texts):
        return torch.tensor([signed_key_digest(t) if t is not None else -1 for t in texts], dtype=torch.long)

    return BatchKeys(keys([e.query for e in batch]), keys([e.positive for e in batch]),
                     keys([e.negative for e in batch]),
                     torch.tensor([e.negative is not None for e in batch], dtype=torch.bool))


def gradient_route(model, accelerator, deepspeed: bool, final: bool):
    """(backward, sync): how a mini-batch's backward reaches the weights. `sync(last)` wraps each mini-batch's
    forward and backward; only the last backward of an optimizer step (`last and final`) reduces gradients (DDP)
    or is the DeepSpeed engine's accumulation boundary."""
    if deepspeed:
        def boundary(last: bool):
            model.set_gradient_accumulation_boundary(last and final)
            return contextlib.nullcontext()
        return model.backward, boundary
    return accelerator.backward, lambda last: (contextlib.nullcontext() if last and final
                                               else accelerator.no_sync(model))


def negative_rows(batch: list[TrainingExample], every_row: bool) -> list[int]:
    """The rows whose negative is embedded: those with one, or every row (same forwards on every rank)."""
    return list(range(len(batch))) if every_row else [i for i, e in enumerate(batch) if e.negative is not None]


def any_rank_has_negative(batch: list[TrainingExample], accelerator) -> bool:
    count = torch.tensor(sum(e.negative is not None for e in batch), device=collective_device())
    return bool(accelerator.reduce(count, reduction="sum").item() > 0)


def train_step(model, batcher: TextBatcher, loss_fn: InfoNCELoss, batch: list[TrainingExample], config,
               accelerator, scale: float = 1.0, final: bool = True) -> tuple[torch.Tensor, int]:
    """Forward and backward of one batch (this rank's share); returns (loss, tokens). The optimizer does not step.
    `scale` multiplies the loss (1/accumulated batches); `final`: the last batch before the optimizer step."""
    deepspeed = bool(config.deepspeed)
    queries = batcher.queries([e.query for e in batch])
    positives = batcher.documents([e.positive for e in batch])
    rows = negative_rows(batch, world_size() > 1 and any_rank_has_negative(batch, accelerator))
    negatives = batcher.documents([batch[i].negative or batch[i].positive for i in rows]) if rows else None
    keys, row_index = batch_keys(batch), torch.tensor(rows, dtype=torch.long)

    def loss_of(q, p, n):
        # Every rank gathers [B, d] negatives; rows without one are masked out. The zeros require a gradient as p
        # does, so every rank runs the gather's backward (a collective) even when it has no negative.
        full = torch.zeros_like(p, requires_grad=p.requires_grad)
        if n is not None:
            full = full.index_copy(0, row_index.to(p.device), n.to(p.dtype))
        return loss_fn(q, p, full, keys) * scale

    size = config.mini_batch_size
    groups = [_chunks(queries, size), _chunks(positives, size), _chunks(negatives, size) if negatives else []]
    embed = lambda tokens: batcher.embed(model, tokens)  # noqa: E731
    tokens = queries.tokens + positives.tokens + (negatives.tokens if negatives else 0)
    backward, sync = gradient_route(model, accelerator, deepspeed, final)
    if len(batch) <= size and not deepspeed:
        return plain_backward(embed, groups, loss_of, backward, sync) / scale, tokens
    return grad_cache_backward(embed, groups, loss_of, backward, sync) / scale, tokens
