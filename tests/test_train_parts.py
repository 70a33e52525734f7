"""emb-train's parts on their own: example records, batch order, the InfoNCE loss and its masking, GradCache."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from embtools.errors import InputError
from embtools.records.text_keys import signed_key_digest
from embtools.train.data import TrainingExample, epoch_batches, parse_source, to_example, validate_example
from embtools.train.grad_cache import grad_cache_backward, plain_backward
from embtools.train.infonce_loss import BatchKeys, InfoNCELoss
from embtools.train.text_batches import TokenBatch


def example(i: int, task: str = "0:") -> TrainingExample:
    return TrainingExample(f"q{i}", f"p{i}", (), task)


def test_queries_get_the_instruction_template_and_documents_none():
    record = {"instruction": "Given a claim, retrieve evidence", "query": "mice live long", "positive": "P",
              "negative": None}
    made = to_example(validate_example(record), 0)
    assert made.query == "Instruct: Given a claim, retrieve evidence\nQuery: mice live long"
    assert (made.positive, made.negatives) == ("P", ())


@pytest.mark.parametrize("record, message", [
    ({"instruction": "i", "positive": "p"}, 'field "query" is missing'),
    ({"instruction": "i", "query": " ", "positive": "p"}, 'field "query" is empty'),
    ({"instruction": "i", "query": "q", "positive": "p", "negative": 3}, 'field "negative" must be a string'),
    ({"query": "q", "positive": "p"}, 'field "instruction" is missing'),
])
def test_bad_examples_are_named(record, message):
    with pytest.raises(InputError, match=message):
        validate_example(record)


def test_sources_take_weights(tmp_path):
    assert parse_source("a.jsonl:0.5").weight == 0.5 and parse_source("a.jsonl:0.5").path == "a.jsonl"
    assert parse_source("-").path is None
    odd = tmp_path / "x:2"
    odd.write_text("")
    assert parse_source(str(odd)).path == str(odd)  # an existing file with a colon in its name stays a file
    with pytest.raises(InputError):
        parse_source("a.jsonl:0")


def test_epoch_order_is_seeded_weighted_and_drops_partial_batches():
    pools = [[example(i) for i in range(10)], [example(100 + i, "1:") for i in range(10)]]
    first = epoch_batches(pools, [1.0, 0.5], 4, seed=1, epoch=0)
    assert first == epoch_batches(pools, [1.0, 0.5], 4, seed=1, epoch=0)
    assert first != epoch_batches(pools, [1.0, 0.5], 4, seed=1, epoch=1)
    assert len(first) == 15 // 4 and all(len(b) == 4 for b in first)
    assert sum(e.task == "1:" for b in epoch_batches(pools, [1.0, 0.5], 1, 1, 0) for e in b) == 5
    for batch in epoch_batches(pools, [1.0, 1.0], 4, seed=3, epoch=0, same_task=True):
        assert len({e.task for e in batch}) == 1


def test_text_keys_ignore_case_and_spacing():
    assert signed_key_digest("The  Cat\n") == signed_key_digest("the cat") != signed_key_digest("the cats")


def _keys(queries, positives, negatives=None):
    negatives = negatives or [None] * len(queries)
    ids = lambda texts: torch.tensor([signed_key_digest(t) if t else -1 for t in texts])  # noqa: E731
    return BatchKeys(ids(queries), ids(positives), ids(negatives), torch.tensor([n is not None for n in negatives]))


def test_loss_is_cross_entropy_of_cosines_over_positives_and_hard_negatives():
    torch.manual_seed(0)
    q, p, n = torch.randn(3, 8), torch.randn(3, 8), torch.randn(3, 8)
    keys = _keys(["a", "b", "c"], ["pa", "pb", "pc"], ["na", None, "nc"])
    loss = InfoNCELoss(0.05)(q, p, n, keys)
    scores = F.normalize(q, dim=-1) @ F.normalize(torch.cat([p, n]), dim=-1).T / 0.05
    scores[:, 4] = float("-inf")  # example 1 has no negative
    assert torch.allclose(loss, F.cross_entropy(scores, torch.arange(3)), atol=1e-5)


def test_duplicate_positives_and_queries_are_not_negatives():
    torch.manual_seed(0)
    q, p = torch.randn(3, 8), torch.randn(3, 8)
    n = torch.zeros(3, 8)
    duplicate = _keys(["a", "b", "c"], ["same text", "Same  text", "other"])
    loss_fn = InfoNCELoss(0.05)
    blocked = loss_fn.blocked_candidates(duplicate, torch.arange(3))
    assert blocked[0, 1] and blocked[1, 0] and not blocked[0, 0] and not blocked[0, 2]
    scores = F.normalize(q, dim=-1) @ F.normalize(p, dim=-1).T / 0.05
    scores[0, 1] = scores[1, 0] = float("-inf")
    assert torch.allclose(loss_fn(q, p, n, duplicate), F.cross_entropy(scores, torch.arange(3)), atol=1e-5)
    unmasked = InfoNCELoss(0.05, mask_false_negatives=False)(q, p, n, duplicate)
    assert not torch.allclose(unmasked, loss_fn(q, p, n, duplicate))
    same_query = loss_fn.blocked_candidates(_keys(["a", "A", "c"], ["x", "y", "z"]), torch.arange(3))
    assert same_query[0, 1] and same_query[1, 0] and not same_query[2, 0]


def _tiny_llama(dropout: float):
    from transformers import LlamaConfig, LlamaModel

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, attention_dropout=dropout)
    return LlamaModel(config).train()


class _Setup:
    """A tiny random llama, two groups of 6 token rows, and the InfoNCE loss over them."""

    def __init__(self, dropout: float):
        self.model = _tiny_llama(dropout)
        generator = torch.Generator().manual_seed(1)
        texts = [torch.randint(3, 100, (6, 7), generator=generator) for _ in range(2)]
        self.batches = [TokenBatch(ids, torch.ones_like(ids)) for ids in texts]
        self.chunks = [[b.rows(i, i + 2) for i in range(0, 6, 2)] for b in self.batches]
        keys = _keys([f"q{i}" for i in range(6)], [f"p{i}" for i in range(6)])
        self.loss_fn = lambda q, p: InfoNCELoss(0.02)(q, p, torch.zeros_like(p), keys)  # noqa: E731

    def embed(self, batch):
        return self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state[:, -1]

    def gradients(self, step, groups):
        self.model.zero_grad()
        torch.manual_seed(5)
        loss = step(self.embed, groups, self.loss_fn, torch.Tensor.backward)
        return loss, torch.cat([p.grad.flatten() for p in self.model.parameters()])


def _relative_error(a, b) -> float:
    return ((a - b).norm() / b.norm()).item()


def test_grad_cache_gradients_equal_full_batch_gradients():
    """Mini-batches of 2 through GradCache == one backward of the whole batch at once (fp32, no dropout)."""
    setup = _Setup(dropout=0.0)
    full_loss, full = setup.gradients(plain_backward, [[b] for b in setup.batches])
    cached_loss, cached = setup.gradients(grad_cache_backward, setup.chunks)
    assert torch.allclose(full_loss, cached_loss, rtol=1e-5)
    assert full.norm() > 0 and _relative_error(cached, full) < 1e-4


def test_grad_cache_replays_dropout(monkeypatch):
    """With dropout, the re-forward must draw the same masks as the cached forward; without the replay it does not."""
    import contextlib

    from embtools.train import grad_cache

    setup = _Setup(dropout=0.1)
    _, with_graph = setup.gradients(plain_backward, setup.chunks)
    _, cached = setup.gradients(grad_cache_backward, setup.chunks)
    assert _relative_error(cached, with_graph) < 1e-4
    monkeypatch.setattr(grad_cache.RandomState, "replay", lambda self: contextlib.nullcontext())
    _, unreplayed = setup.gradients(grad_cache_backward, setup.chunks)
    assert _relative_error(unreplayed, with_graph) > 1e-3


@pytest.mark.parametrize("warmup, expected", [
    (4, [1 / 4, 2 / 4, 3 / 4, 1, 6 / 6, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6]),
    (0, [10 / 10, 9 / 10, 8 / 10, 7 / 10, 6 / 10, 5 / 10, 4 / 10, 3 / 10, 2 / 10, 1 / 10]),
])
def test_learning_rate_warms_up_from_its_first_step_and_never_runs_at_zero(warmup, expected):
    """Step s of W warm-up steps runs at s/W x lr (transformers' schedule ran step 1 at 0), then linear decay."""
    from pathlib import Path

    from embtools.train.loop import TrainConfig
    from embtools.train.optimizer import make_optimizer

    config = TrainConfig(output=Path("unused"), sources=[], lr=1e-3, warmup_steps=warmup)
    optimizer, scheduler = make_optimizer(torch.nn.Linear(2, 2), config, total_steps=10)
    rates = []
    for _ in range(10):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([1e-3 * f for f in expected])


def test_deepspeed_configs_do_not_clip_unless_asked(tmp_path):
    """DeepSpeed clips at gradient norm 1.0 by default; emb-train does not clip without DeepSpeed."""
    import json

    from embtools.train.deepspeed_configs import deepspeed_config

    assert deepspeed_config("zero3", 4, "no")["gradient_clipping"] == 0.0
    assert deepspeed_config("zero2", 4, "no")["gradient_clipping"] == 0.0
    own = tmp_path / "ds.json"
    own.write_text(json.dumps({"zero_optimization": {"stage": 2}, "gradient_clipping": 0.5}))
    assert deepspeed_config(str(own), 4, "no")["gradient_clipping"] == 0.5
