"""A small randomly initialised decoder of the Mistral architecture, built offline into a normal Hugging Face folder.

For checks and tests of mechanics (devices, precisions, collectives, shapes) where the 135M weights of
smollm2-135m only cost time, and for machines where those weights are absent. It has Mistral's layout (grouped-query
attention, RMSNorm, SwiGLU, rotary positions) at a toy size, and a byte-level BPE tokenizer trained on the spot on the
texts it is given, with Mistral's special tokens: `<s>` before every text, `</s>` as EOS (which last-token pooling
appends), `<pad>` for padding. `emb-encode --model FOLDER`, `emb-train --model FOLDER` and emb-eval load the folder.

Its vectors mean nothing; they are a deterministic function of the seed and the texts, which is what a check needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

BOS, EOS, PAD = "<s>", "</s>", "<pad>"


@dataclass(frozen=True)
class DecoderShape:
    """The toy size. `init_std` is well above Mistral's 0.02 so that the last token's vector depends on the text
    before it (at 0.02 every text pools to nearly the EOS embedding, and comparisons of vectors prove nothing)."""

    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 512
    init_std: float = 0.2
    vocab_size: int = 512


def build_tokenizer(texts: Iterable[str], vocab_size: int):
    """A byte-level BPE tokenizer (any text encodes, no unknown token) trained on `texts`, as transformers' fast
    tokenizer with Mistral's special tokens and its rule of a BOS before each text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(list(texts), trainer=trainer)
    backend.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                                                           special_tokens=[(BOS, backend.token_to_id(BOS))])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   model_max_length=DecoderShape.max_position_embeddings)


def mistral_config(shape: DecoderShape, tokenizer):
    from transformers import MistralConfig

    sizes = {k: v for k, v in asdict(shape).items() if k not in {"init_std", "vocab_size"}}
    return MistralConfig(**sizes, vocab_size=len(tokenizer), initializer_range=shape.init_std,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False, sliding_window=None)


def build_random_decoder(out_dir: Path, texts: Iterable[str], seed: int = 0,
                         shape: DecoderShape = DecoderShape()) -> Path:
    """Write a Mistral-architecture decoder with random weights (seeded) and its tokenizer into `out_dir`
    (safetensors, float32); returns `out_dir`. The same texts, seed and shape give the same folder. The bare
    decoder, without the LM head that embedding never uses (and that every load would report as unexpected)."""
    import torch
    from transformers import MistralModel

    tokenizer = build_tokenizer(texts, shape.vocab_size)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = MistralModel(mistral_config(shape, tokenizer))
    finally:
        torch.random.set_rng_state(generator_state)  # the caller's own random stream is left as it was
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir
