"""One training step: tokenize a batch, embed it in GradCache mini-batches, InfoNCE, backward. The optimizer step
is the caller's.

Under DeepSpeed every mini-batch goes through GradCache, each re-forward with its own `engine.backward`, and the
engine's gradient-accumulation boundary is set on the last backward of the optimizer step only; the caller then
steps the engine once. Why this shape (docs/train.md, "Distributed training"):
- ZeRO-2/3 reduce-scatter gradients inside every `engine.backward` (accumulating the reduced partitions until the
  step), ZeRO-3 all-gathers each layer's weights in every forward, and DDP broadcasts buffers in every forward, so
  every rank must run the same number of forwards and backwards: with several processes each rank embeds a
  negative for every slot (a stand-in, masked out of the loss, where an example has fewer negatives) whenever any
  rank has one, with as many slots per example as the example with the most negatives on any rank. (A rank
  without negatives while another had some hung DDP and ZeRO-3 at the first such batch.)
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


def batch_keys(batch: list[TrainingExample], width: int | None = None) -> BatchKeys:
    """The batch's text keys; negatives in `width` slots per example (default: the most any example has, at least
    1), example-major, a slot past an example's own negatives marked absent."""
    width = width or max(1, most_negatives(batch))

    def keys(texts):
        return torch.tensor([signed_key_digest(t) if t is not None else -1 for t in texts], dtype=torch.long)

    slots = [(e.negatives[j] if j < len(e.negatives) else None) for e in batch for j in range(width)]
    return BatchKeys(keys([e.query for e in batch]), keys([e.positive for e in batch]), keys(slots),
                     torch.tensor([t is not None for t in slots], dtype=torch.bool))


def most_negatives(batch: list[TrainingExample]) -> int:
    return max([0, *(len(e.negatives) for e in batch)])


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


def negative_slots(batch: list[TrainingExample], width: int, every_slot: bool) -> list[int]:
    """The slots (example x width + j) whose negative is embedded: those holding one, or every slot (the same
    forwards on every rank)."""
    if every_slot:
        return list(range(len(batch) * width))
    return [i * width + j for i, e in enumerate(batch) for j in range(len(e.negatives))]


def slot_text(batch: list[TrainingExample], width: int, slot: int) -> str:
    """The negative in a slot; the example's positive stands in for an absent one (embedded, masked out)."""
    example, j = batch[slot // width], slot % width
    return example.negatives[j] if j < len(example.negatives) else example.positive


def global_negative_width(batch: list[TrainingExample]) -> tuple[int, bool]:
    """(slots per example, whether any rank has a negative): under several processes the widest batch of any rank,
    so that every rank gathers the same shape."""
    most = most_negatives(batch)
    if world_size() > 1:
        import torch.distributed as dist

        count = torch.tensor(most, device=collective_device())
        dist.all_reduce(count, op=dist.ReduceOp.MAX)
        most = int(count.item())
    return max(1, most), most > 0


def train_step(model, batcher: TextBatcher, loss_fn: InfoNCELoss, batch: list[TrainingExample], config,
               accelerator, scale: float = 1.0, final: bool = True) -> tuple[torch.Tensor, int]:
    """Forward and backward of one batch (this rank's share); returns (loss, tokens). The optimizer does not step.
    `scale` multiplies the loss (1/accumulated batches); `final`: the last batch before the optimizer step."""
    deepspeed = bool(config.deepspeed)
    queries = batcher.queries([e.query for e in batch])
    positives = batcher.documents([e.positive for e in batch])
    width, any_negative = global_negative_width(batch)
    slots = negative_slots(batch, width, world_size() > 1 and any_negative)
    negatives = batcher.documents([slot_text(batch, width, s) for s in slots]) if slots else None
    keys, slot_index = batch_keys(batch, width), torch.tensor(slots, dtype=torch.long)

    def loss_of(q, p, n):
        # Every rank gathers [B x width, d] negatives; absent slots are masked out. The zeros require a gradient as
        # p does, so every rank runs the gather's backward (a collective) even when it has no negative.
        full = torch.zeros(p.shape[0] * width, p.shape[1], dtype=p.dtype, device=p.device,
                           requires_grad=p.requires_grad)
        if n is not None:
            full = full.index_copy(0, slot_index.to(p.device), n.to(p.dtype))
        return loss_fn(q, p, full, keys) * scale

    size = config.mini_batch_size
    groups = [_chunks(queries, size), _chunks(positives, size), _chunks(negatives, size) if negatives else []]
    embed = lambda tokens: batcher.embed(model, tokens)  # noqa: E731
    tokens = queries.tokens + positives.tokens + (negatives.tokens if negatives else 0)
    backward, sync = gradient_route(model, accelerator, deepspeed, final)
    if len(batch) <= size and not deepspeed:
        return plain_backward(embed, groups, loss_of, backward, sync) / scale, tokens
    return grad_cache_backward(embed, groups, loss_of, backward, sync) / scale, tokens
