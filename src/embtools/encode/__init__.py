"""Encode: texts in, float32 vectors out, in input order (emb-encode, and every stage that embeds).

- `batching`: token-budget batches over length-sorted texts.
- `encoder`: a model from `models` run over those batches.
- `embedding_cache` and `cached_encoder`: each (model, text) encoded once, across runs.
- `stream`: text records -> embedding records, in one process or several.
Out: embedding records for emb-index, vectors for evaluation and mining.
"""
