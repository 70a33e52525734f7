"""Bitext mining on a local file of aligned pairs (mteb's BitextMining layout: `sentence1`, `sentence2`, no score).

Each `sentence1` is matched to its nearest `sentence2` by cosine similarity; a match is right when it is the
sentence's own translation. The scores are mteb's AbsTaskBitextMining's, run on the file as a local task: accuracy,
and precision, recall and F1 weighted over the gold pairs (sklearn); the main score is F1, as for BUCC and Tatoeba.
The instruction is the paper's for every bitext task, "Retrieve parallel sentences." (instructions.py), on both
sides. mteb's own bitext tasks (`mteb:BUCC`, `mteb:Tatoeba`) run through run.py's mteb path with the same rule.
"""

from __future__ import annotations

from embtools.encode.cached_encoder import CachedEncoder
from embtools.evaluate.run import EvalOptions, EvalOutcome, instruction_for
from embtools.records.datasets import DataSource, data_revision, load_bitext, split_of_file

TASK_TYPE = "BitextMining"
MAIN_SCORE = "f1"


def evaluate_bitext(source: DataSource, encoder: CachedEncoder, options: EvalOptions) -> EvalOutcome:
    """Score one bitext file with the encoder through mteb's bitext-mining task."""
    from embtools.evaluate.mteb_encoder import MtebEncoder, instruction_rule
    from embtools.evaluate.mteb_tasks import bitext_task, local_metadata, run_task

    split = split_of_file(source.path)
    metadata = local_metadata(source.name, TASK_TYPE, MAIN_SCORE, split, data_revision(source), str(source.path))
    task = bitext_task(load_bitext(source.path), metadata, split)
    model = MtebEncoder(encoder, instruction_rule(instruction_for(source.name, encoder, options, task_type=TASK_TYPE)))
    scores = run_task(task, model, split)["default"]
    return EvalOutcome(source.name, split, scores, MAIN_SCORE, lambda: metadata, task_type=TASK_TYPE)
