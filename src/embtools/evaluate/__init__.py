"""Evaluate: a model and evaluation data in, metric records and mteb result files out (emb-eval).

- `run`: one DATA argument: which instruction, which evaluator, what comes out.
- `retrieval` and `sts`: our own evaluators (retrieval through an emb-index folder, STS by Spearman).
- `slices`: smaller evaluations that stay honest (seeded query samples, corpora of exactly N documents).
- `mteb_tasks` and `mteb_encoder`: local data as mteb tasks, and our model as an mteb encoder.
- `results`: metric records and mteb's result-file layout.
- `report`: a Markdown table and PNG chart over runs.
"""
