"""InfoNCE over in-batch negatives plus hard negatives, the E5 loss, with false-negative masking.

For query i the candidates are every positive and every hard negative of the (global) batch; the target is its own
positive. Examples may have different numbers of hard negatives: they sit in W slots per example (W the most any
example has), and a slot an example does not fill is masked out of every query's candidates. Scores are cosine
similarities divided by the temperature (0.02 in the paper; sentence-transformers' MultipleNegativesRankingLoss with
scale 50 is the same thing). A candidate is masked out of query i's negatives when
its normalized text equals i's positive (a duplicate positive, or a hard negative that is really a positive), or when
it is the positive of another query with the same normalized text as i: both would be false negatives.

Under several processes every rank scores its own queries against the candidates of all ranks. The candidates are
gathered by an all-gather whose backward sums the gradients coming back from every rank's loss, so each embedding
receives the gradient of the global loss once gradients are averaged across ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from embtools import distributed
from embtools.distributed import rank, world_size
from embtools.train import recipe


@dataclass
class BatchKeys:
    """Normalized-text ids of a batch's queries, positives and negative slots, and which slots hold a negative."""

    queries: torch.Tensor  # int64 [B]
    positives: torch.Tensor  # int64 [B]
    negatives: torch.Tensor  # int64 [B x W], example-major (anything in an absent slot)
    has_negative: torch.Tensor  # bool [B x W]

    def to(self, device: torch.device) -> "BatchKeys":
        return BatchKeys(*(t.to(device) for t in (self.queries, self.positives, self.negatives, self.has_negative)))


class _AllGatherWithGrad(torch.autograd.Function):
    """Every rank's rows (equal counts) concatenated in rank order. Backward: the gradient of this rank's rows,
    summed over the ranks' losses (one all-reduce: gloo has no reduce-scatter). This is what
    torch.distributed.nn.functional.all_gather does, which torch deprecates for a private module."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        parts = [torch.empty_like(tensor) for _ in range(world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        summed = grad.clone(memory_format=torch.contiguous_format)  # the incoming gradient is not ours to change
        dist.all_reduce(summed)
        rows = summed.shape[0] // world_size()
        return summed[rank() * rows:(rank() + 1) * rows]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """All ranks' rows concatenated in rank order; gradients flow back to the rank that produced each row."""
    if world_size() == 1:
        return tensor
    carried = tensor.to(distributed.collective_device())  # differentiable, and a no-op where the devices agree
    return _AllGatherWithGrad.apply(carried).to(tensor.device)


def gather_plain(tensor: torch.Tensor) -> torch.Tensor:
    """All ranks' rows concatenated in rank order (no gradient), on `tensor`'s device; the collective itself runs
    on the collective device (a key tensor on the CPU would stop NCCL)."""
    if world_size() == 1:
        return tensor
    import torch.distributed as dist

    carried = tensor.to(distributed.collective_device()).contiguous()
    parts = [torch.empty_like(carried) for _ in range(world_size())]
    dist.all_gather(parts, carried)
    return torch.cat(parts, dim=0).to(tensor.device)


class InfoNCELoss:
    """`loss(queries, positives, negatives, keys)`: mean InfoNCE over this rank's queries (queries and positives
    [B, d], negatives [B x W, d] laid out as `keys.negatives`)."""

    def __init__(self, temperature: float = recipe.TEMPERATURE, mask_false_negatives: bool = True):
        self.temperature = temperature
        self.mask_false_negatives = mask_false_negatives

    def __call__(self, queries: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor,
                 keys: BatchKeys) -> torch.Tensor:
        local = queries.shape[0]
        candidates = torch.cat([gather_with_grad(positives), gather_with_grad(negatives)], dim=0)
        scores = F.normalize(queries.float(), dim=-1) @ F.normalize(candidates.float(), dim=-1).T / self.temperature
        targets = torch.arange(local, device=scores.device) + rank() * local
        blocked = self.blocked_candidates(keys.to(scores.device), targets)
        scores = scores.masked_fill(blocked, torch.finfo(scores.dtype).min)
        return F.cross_entropy(scores, targets)

    def blocked_candidates(self, keys: BatchKeys, targets: torch.Tensor) -> torch.Tensor:
        """[B_local, B_global x (1 + W)] True where a candidate must not count as a negative (the target is never
        blocked). On the device of `keys`, which must be that of `targets`."""
        positive_keys, negative_keys = gather_plain(keys.positives), gather_plain(keys.negatives)
        has_negative = gather_plain(keys.has_negative)
        total = positive_keys.shape[0]
        absent = torch.cat([torch.zeros(total, dtype=torch.bool, device=has_negative.device), ~has_negative])
        blocked = absent.unsqueeze(0).expand(targets.shape[0], -1).clone()
        if self.mask_false_negatives:
            candidate_keys = torch.cat([positive_keys, negative_keys])
            blocked |= (candidate_keys.unsqueeze(0) == keys.positives.unsqueeze(1)) & ~absent.unsqueeze(0)
            same_query = gather_plain(keys.queries).unsqueeze(0) == keys.queries.unsqueeze(1)
            blocked[:, :total] |= same_query
        blocked[torch.arange(targets.shape[0], device=targets.device), targets] = False
        return blocked
