"""Encode: texts in, float32 vectors out, in input order (emb-encode, and every stage that embeds).

- `batching`: token-budget batches over length-sorted texts.
- `encoder`: a model from `models` run over those batches.
- `embedding_cache` and `cached_encoder`: each (model, text) encoded once, across runs.
- `stream`: text records -> embedding records (or chunks of vectors), in one process or several; `--shard`.
- `output`: the vectors shaped (truncated, quantized) and written as JSONL, npy or Parquet.
- `resume`: the progress kept beside an output, so a killed run continues (`--resume`).
Out: embedding records for emb-index, vectors for evaluation and mining.
"""
