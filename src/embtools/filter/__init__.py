"""Filter: example records in, trustworthy ones out, each reject with a reason; labeled data and mining.

- `defaults`: every check's default, once (the command line and the settings classes read them).
- `pipeline`: the ordered record checks and the stream through them.
- `duplicates` (with `near_duplicates`): exact and MinHash-LSH near-duplicates over the whole stream.
- `guidelines`: does an example follow the prompt it came from (lengths, difficulty, format).
- `language`: is it in the language it was asked for (py3langid).
- `decontamination`: no evaluation text in training data (exact and 13-gram matches).
- `labeled_data`: BEIR and STS data as example records.
- `negative_mining` (with `mining_pool`): hard negatives for examples that have none.
- `report`: distributions of what was kept and why the rest was rejected.
Out: example records for emb-train, rejects, and a Markdown report.
"""
