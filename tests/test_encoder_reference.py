"""Our embeddings equal the reference implementations': sentence-transformers for minilm-l6, and a plain
transformers forward pass (EOS appended, last hidden state) for smollm2-135m, with left and right padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embtools.encode.batching import token_budget_batches
from embtools.models.pooling import last_token_pool


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def test_minilm_equals_sentence_transformers_on_every_sts_dev_sentence(minilm, sts_dev_sentences):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(minilm.spec.path), device="cpu").encode(
        sts_dev_sentences, batch_size=64, convert_to_numpy=True)
    ours = minilm.encode(sts_dev_sentences)
    assert ours.shape == reference.shape == (3000, 384)
    assert cosine_rows(ours, reference).min() >= 0.9999


def _reference_last_token(model, tokenizer, texts, padding_side):
    """E5's recipe written out plainly: tokenize, append EOS, pad on one side, take the last real token's state."""
    eos = tokenizer.eos_token_id
    ids = [tokenizer(t, add_special_tokens=True)["input_ids"] + [eos] for t in texts]
    width = max(map(len, ids))
    pad = [[eos] * (width - len(x)) for x in ids]
    rows = [p + x if padding_side == "left" else x + p for x, p in zip(ids, pad)]
    masks = [[0] * len(p) + [1] * len(x) if padding_side == "left" else [1] * len(x) + [0] * len(p)
             for x, p in zip(ids, pad)]
    with torch.inference_mode():
        hidden = model(input_ids=torch.tensor(rows), attention_mask=torch.tensor(masks)).last_hidden_state
    if padding_side == "left":
        vectors = hidden[:, -1]
    else:
        vectors = hidden[torch.arange(len(ids)), torch.tensor(masks).sum(1) - 1]
    return torch.nn.functional.normalize(vectors.float(), dim=-1).numpy()


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_smollm_last_token_equals_plain_forward_pass(smollm, sts_dev_sentences, padding_side):
    texts = sts_dev_sentences[:24]
    reference = _reference_last_token(smollm.model, smollm.tokenizer, texts, padding_side)
    ours = smollm.encode(texts)
    assert smollm.pooling == "last"
    assert np.abs(ours - reference).max() < 1e-4
    assert cosine_rows(ours, reference).min() > 0.99999


def test_smollm_inputs_end_with_eos(smollm):
    ids = smollm.tokenizer("a short text", add_special_tokens=False)["input_ids"]
    framed = smollm.framing.prefix + ids + smollm.framing.suffix
    assert framed[-1] == smollm.tokenizer.eos_token_id == 2


def test_last_token_pool_refuses_a_sequence_without_eos():
    hidden = torch.randn(2, 4, 8)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    ids = torch.tensor([[5, 6, 2, 2], [5, 6, 7, 9]])
    with pytest.raises(Exception, match="EOS"):
        last_token_pool(hidden, mask, ids, eos_token_id=2)
    good = torch.tensor([[5, 6, 2, 2], [5, 6, 7, 2]])
    assert torch.equal(last_token_pool(hidden, mask, good, 2), torch.stack([hidden[0, 2], hidden[1, 3]]))


def test_left_and_right_padding_pool_the_same_token():
    hidden = torch.randn(2, 5, 3)
    left = last_token_pool(hidden, torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]), torch.full((2, 5), 2), 2)
    assert torch.equal(left, hidden[:, -1])


def test_token_budget_batches_cover_every_text_once_within_budget():
    lengths = [5, 300, 17, 17, 64, 2, 300, 900, 40] * 7
    batches = list(token_budget_batches(lengths, max_tokens=1024))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 1024


def test_mixed_lengths_in_any_order_give_the_same_vectors(minilm, scifact_docs, sts_dev_sentences):
    texts = [d["text"] for d in scifact_docs[:6]] + sts_dev_sentences[:6]
    together = minilm.encode(texts)
    alone = np.concatenate([minilm.encode([t]) for t in texts])
    assert np.abs(together - alone).max() < 1e-5


def test_batch_budget_defaults_to_the_devices_and_a_given_one_wins():
    from embtools.encode.batching import CPU_BATCH_TOKENS, GPU_BATCH_TOKENS, default_batch_tokens
    from embtools.encode.encoder import Encoder, EncodeSettings

    assert default_batch_tokens("cpu") == CPU_BATCH_TOKENS < GPU_BATCH_TOKENS == default_batch_tokens("cuda:1")
    assert Encoder("minilm-l6").max_tokens == CPU_BATCH_TOKENS
    assert Encoder("minilm-l6", EncodeSettings(max_tokens=300)).max_tokens == 300
