"""Batches by a token budget over length-sorted inputs: little padding, many short texts per batch, few long ones."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

# The token budget of a batch (count x longest text) when none is given. GPUs want large batches. On a CPU large ones
# are slower: measured (docs/benchmarks.md, emb-encode), one thread, 3 alternating runs, STS dev sentences: minilm-l6
# 19.9 s at 16,384, 13.1 s at 2,048, 12.3 s at 512 (1,000 texts); smollm2-135m 44.2 s at 16,384, 32.3 s at 2,048,
# 20.3 s at 1,024 (300 texts).
GPU_BATCH_TOKENS = 16384
CPU_BATCH_TOKENS = 1024


def default_batch_tokens(device: str) -> int:
    """The token budget of a batch on `device` ("cpu", "cuda:0", ...) when the user gives none."""
    return CPU_BATCH_TOKENS if str(device).split(":")[0] == "cpu" else GPU_BATCH_TOKENS


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
