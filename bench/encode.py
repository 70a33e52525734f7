"""Encode throughput: embtools' Encoder vs sentence-transformers' `encode`, same model, same texts, same threads.

Texts: every sentence of STS Benchmark dev (3,000). Each side runs in this process, alternately, after a warm-up;
the best of `--repeats` runs is kept. Prints a Markdown table with texts/s, tokens/s and the ratio ours / theirs.

    .venv/bin/python bench/encode.py [--models minilm-l6 smollm2-135m] [--limit N] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import orjson
import torch

from embtools.encode.encoder import Encoder, EncodeSettings

DATA = Path(os.environ.get("EMBTOOLS_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def sts_sentences(limit: int | None) -> list[str]:
    pairs = [orjson.loads(line) for line in (DATA / "stsbenchmark" / "dev.jsonl").read_bytes().splitlines()]
    texts = [s for p in pairs for s in (p["sentence1"], p["sentence2"])]
    return texts[:limit] if limit else texts


def sentence_transformer_for(encoder: Encoder):
    """The same weights as a SentenceTransformer: the model's own folder, or Transformer + last-token Pooling."""
    from sentence_transformers import SentenceTransformer, models

    if (encoder.spec.path / "modules.json").exists():
        return SentenceTransformer(str(encoder.spec.path), device="cpu")
    transformer = models.Transformer(str(encoder.spec.path), max_seq_length=encoder.max_length,
                                     model_args={"dtype": getattr(torch, encoder.dtype)})
    pooling = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode="lasttoken")
    return SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_model(name: str, dtype: str, texts: list[str], repeats: int) -> dict:
    ours = Encoder(name, EncodeSettings(dtype=dtype))
    theirs = sentence_transformer_for(ours)
    ours.encode(texts[:64]), theirs.encode(texts[:64], batch_size=32)  # warm-up
    ours.tokens = 0
    ours.encode(texts)
    tokens = ours.tokens
    t_ours = best_time(lambda: ours.encode(texts), repeats)
    t_theirs = best_time(lambda: theirs.encode(texts, batch_size=32), repeats)
    return {"model": name, "dtype": ours.dtype, "texts": len(texts), "tokens": tokens,
            "ours_s": t_ours, "theirs_s": t_theirs, "ratio": t_theirs / t_ours}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["minilm-l6", "smollm2-135m"])
    parser.add_argument("--dtype", default="float32", help="both sides run in this dtype (default float32)")
    parser.add_argument("--limit", type=int, default=None, help="first N sentences only")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    texts = sts_sentences(args.limit)
    print(f"threads: {torch.get_num_threads()}, texts: {len(texts)}, dtype: {args.dtype}\n")
    print("| model | dtype | texts | tokens | ours texts/s | ours tokens/s | ST texts/s | ST tokens/s | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        r = bench_model(name, args.dtype, texts, args.repeats)
        print(f"| {r['model']} | {r['dtype']} | {r['texts']} | {r['tokens']} | {r['texts'] / r['ours_s']:.0f} | "
              f"{r['tokens'] / r['ours_s']:.0f} | {r['texts'] / r['theirs_s']:.0f} | {r['tokens'] / r['theirs_s']:.0f} "
              f"| {r['ratio']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
