"""Encode throughput: embtools' Encoder vs sentence-transformers' `encode`, same model, same texts, same threads.

Texts: every sentence of STS Benchmark dev (3,000). Both sides run in this process after a warm-up, taking turns for
`--repeats` runs (the order rotated each run: bench/side_by_side.py). Prints a Markdown table per model: each side's
seconds as median [range], texts/s and tokens/s at the median, and the ratio ST time / our time (> 1: we are
faster) as the median [range] of the run-by-run ratios. Each run goes to stderr as it ends; the load average is
printed before and after, since the rates mean little without it.

    .venv/bin/python bench/encode.py [--models minilm-l6 smollm2-135m] [--limit N] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import orjson
import torch

from embtools.encode.encoder import Encoder, EncodeSettings
from side_by_side import alternate, median_range, ratios, untimed_nothing

DATA = Path(os.environ.get("EMBTOOLS_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
ST_BATCH = 32  # sentence-transformers' default batch size


def sts_sentences(limit: int | None) -> list[str]:
    pairs = [orjson.loads(line) for line in (DATA / "stsbenchmark" / "dev.jsonl").read_bytes().splitlines()]
    texts = [s for p in pairs for s in (p["sentence1"], p["sentence2"])]
    return texts[:limit] if limit else texts


def sentence_transformer_for(encoder: Encoder):
    """The same weights as a SentenceTransformer: the model's own folder, or Transformer + last-token Pooling."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    if (encoder.spec.path / "modules.json").exists():
        return SentenceTransformer(str(encoder.spec.path), device="cpu")
    transformer = Transformer(str(encoder.spec.path), max_seq_length=encoder.max_length,
                              model_kwargs={"dtype": getattr(torch, encoder.dtype)})
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="lasttoken")
    return SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu")


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def bench_model(name: str, dtype: str, texts: list[str], repeats: int) -> dict:
    """Seconds per run of each side on `texts`, and the token count our side encoded."""
    ours = Encoder(name, EncodeSettings(dtype=dtype))
    theirs = sentence_transformer_for(ours)
    ours.encode(texts[:64]), theirs.encode(texts[:64], batch_size=ST_BATCH)  # warm-up
    ours.tokens = 0
    times = alternate(repeats, {
        "embtools": (lambda _: ours.encode(texts), untimed_nothing),
        "sentence-transformers": (lambda _: theirs.encode(texts, batch_size=ST_BATCH), untimed_nothing)},
        on_run=lambda side, seconds: print(f"{name} {side}: {seconds:.1f} s", file=sys.stderr, flush=True))
    tokens = ours.tokens // repeats
    return {"model": name, "dtype": ours.dtype, "texts": len(texts), "tokens": tokens,
            "ours": times["embtools"], "theirs": times["sentence-transformers"]}


def row(r: dict) -> str:
    """A Markdown row: each side's seconds median [range] and its rates at the median; the ratio's median [range]."""
    def rates(seconds: list[float]) -> str:
        median = statistics.median(seconds)
        return f"{median_range(seconds)} | {r['texts'] / median:,.0f} | {r['tokens'] / median:,.0f}"
    return (f"| {r['model']} | {r['dtype']} | {r['texts']:,} | {r['tokens']:,} | {rates(r['ours'])} | "
            f"{rates(r['theirs'])} | {median_range(ratios(r['theirs'], r['ours']))}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["minilm-l6", "smollm2-135m"])
    parser.add_argument("--dtype", default="float32", help="both sides run in this dtype (default float32)")
    parser.add_argument("--limit", type=int, default=None, help="first N sentences only")
    parser.add_argument("--repeats", type=int, default=3, help="runs a side, taking turns (default 3)")
    args = parser.parse_args()
    texts = sts_sentences(args.limit)
    print(f"threads: {torch.get_num_threads()}, texts: {len(texts)}, dtype: {args.dtype}, {args.repeats} runs a "
          f"side taking turns, median [range]; {load()}\n")
    print("| model | dtype | texts | tokens | ours s | ours texts/s | ours tokens/s | ST s | ST texts/s | "
          "ST tokens/s | ratio ST/ours |")
    print("|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for name in args.models:
        print(row(bench_model(name, args.dtype, texts, args.repeats)), flush=True)
        print(f"{name} done; {load()}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
