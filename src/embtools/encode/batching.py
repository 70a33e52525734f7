"""Batches by a token budget over length-sorted inputs: little padding, many short texts per batch, few long ones."""

from __future__ import annotations

from collections.abc import Iterator, Sequence


def token_budget_batches(lengths: Sequence[int], max_tokens: int, max_batch_size: int = 512) -> Iterator[list[int]]:
    """Index lists, longest texts first, each batch padded size (count x longest) within `max_tokens`.

    A single text longer than the budget still gets a batch of its own. Longest first so that an
    out-of-memory failure, if it comes, comes at once.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for index in order:
        longest = lengths[batch[0]] if batch else lengths[index]
        if batch and ((len(batch) + 1) * longest > max_tokens or len(batch) >= max_batch_size):
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch
