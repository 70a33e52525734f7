"""GradCache (Gao et al., 2021): the gradients of a large contrastive batch in the memory of a small one.

1. Embed the batch mini-batch by mini-batch without building a graph, remembering each mini-batch's RNG state.
2. Compute the loss on the full batch of (detached) embeddings and its gradient with respect to each embedding.
3. Embed each mini-batch again, now with a graph and the same RNG state (so dropout draws the same masks), and
   backpropagate the cached embedding gradients through it: sum(embedding * cached_grad).backward().
The parameter gradients equal those of one full-batch backward; only one mini-batch's activations live at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch


class RandomState:
    """The CPU (and CUDA) random generator states at one moment, to replay a forward pass's dropout exactly."""

    def __init__(self) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None

    @contextlib.contextmanager
    def replay(self) -> Iterator[None]:
        """Run the block from this state, then put the generators back where they were."""
        with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if self.cuda else []):
            torch.set_rng_state(self.cpu)
            if self.cuda is not None:
                torch.cuda.set_rng_state_all(self.cuda)
            yield


def embed_without_grad(embed: Callable[[Any], torch.Tensor],
                       chunks: Sequence[Any]) -> tuple[list[torch.Tensor], list[RandomState]]:
    """Each chunk's embeddings (no graph) and the RNG state it was embedded from."""
    vectors, states = [], []
    for chunk in chunks:
        states.append(RandomState())
        with torch.no_grad():
            vectors.append(embed(chunk))
    return vectors, states


def backward_through_chunks(embed: Callable[[Any], torch.Tensor], chunks: Sequence[Any], states: Sequence[RandomState],
                            grads: Sequence[torch.Tensor], backward: Callable[[torch.Tensor], None],
                            sync: Callable[[bool], contextlib.AbstractContextManager]) -> None:
    """Re-embed each chunk with a graph from its saved RNG state and backpropagate its cached gradient.
    `sync(is_last)` wraps each forward and backward (DDP: all-reduce the gradients only on the last one)."""
    for index, (chunk, state, grad) in enumerate(zip(chunks, states, grads)):
        with sync(index == len(chunks) - 1), state.replay():
            vectors = embed(chunk)
            backward(torch.dot(vectors.flatten().float(), grad.flatten().float()))


def grad_cache_backward(embed: Callable[[Any], torch.Tensor], groups: Sequence[Sequence[Any]],
                        loss_fn: Callable[..., torch.Tensor], backward: Callable[[torch.Tensor], None],
                        sync: Callable[[bool], contextlib.AbstractContextManager] = (
                            lambda last: contextlib.nullcontext())) -> torch.Tensor:
    """One GradCache step. `groups` holds the chunks of each kind of text (queries, positives, ...);
    `loss_fn(*embeddings)` gets one tensor per group (None for a group without chunks). Parameter gradients are
    accumulated; returns the loss."""
    cached = [embed_without_grad(embed, chunks) for chunks in groups]
    leaves = [torch.cat(vectors).detach().requires_grad_() if vectors else None for vectors, _ in cached]
    loss = loss_fn(*leaves)
    loss.backward()
    work = []
    for (vectors, states), leaf, chunks in zip(cached, leaves, groups):
        if leaf is None:
            continue
        grads = torch.split(leaf.grad, [v.shape[0] for v in vectors])
        work.extend(zip(chunks, states, grads))
    if work:
        chunks, states, grads = zip(*work)
        backward_through_chunks(embed, chunks, states, grads, backward, sync)
    return loss.detach()


def plain_backward(embed: Callable[[Any], torch.Tensor], groups: Sequence[Sequence[Any]],
                   loss_fn: Callable[..., torch.Tensor], backward: Callable[[torch.Tensor], None],
                   sync: Callable[[bool], contextlib.AbstractContextManager] = lambda last: contextlib.nullcontext()
                   ) -> torch.Tensor:
    """The same step without GradCache: every chunk embedded with a graph, one backward of the full loss."""
    with sync(True):
        embeddings = [torch.cat([embed(chunk) for chunk in chunks]) if chunks else None for chunks in groups]
        loss = loss_fn(*embeddings)
        backward(loss)
    return loss.detach()
