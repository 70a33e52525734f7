"""STS evaluation: how well embedding similarity of sentence pairs ranks like the gold scores.

The scores are mteb's (AbsTaskSTS): Pearson and Spearman correlation of the gold scores with cosine similarity,
negative Manhattan and negative Euclidean distance; the main score is cosine Spearman, the number
sentence-transformers' EmbeddingSimilarityEvaluator reports too. E5 puts the instruction on both sentences.
"""

from __future__ import annotations

import numpy as np

from embtools.encode.cached_encoder import CachedEncoder
from embtools.instructions import with_instruction
from embtools.records.datasets import StsData

MAIN_SCORE = "cosine_spearman"


def _correlations(gold: list[float], predicted: np.ndarray) -> tuple[float, float]:
    from scipy.stats import pearsonr, spearmanr

    return float(pearsonr(gold, predicted)[0]), float(spearmanr(gold, predicted)[0])


def sts_scores(embeddings1: np.ndarray, embeddings2: np.ndarray, gold: list[float]) -> dict[str, float]:
    """mteb's STS score dict (without main_score) for paired embeddings and gold scores."""
    from sklearn.metrics.pairwise import (
        paired_cosine_distances,
        paired_euclidean_distances,
        paired_manhattan_distances,
    )

    scores: dict[str, float] = {}
    for name, similarity in (("cosine", 1 - paired_cosine_distances(embeddings1, embeddings2)),
                             ("manhattan", -paired_manhattan_distances(embeddings1, embeddings2)),
                             ("euclidean", -paired_euclidean_distances(embeddings1, embeddings2))):
        scores[f"{name}_pearson"], scores[f"{name}_spearman"] = _correlations(gold, similarity)
    scores["pearson"], scores["spearman"] = scores["cosine_pearson"], scores["cosine_spearman"]
    return scores


def evaluate_sts(data: StsData, encoder: CachedEncoder, instruction: str | None) -> dict[str, float]:
    """Embed both sides (with the instruction, if any; one call, so shared sentences are encoded once) and score."""
    texts = [with_instruction(t, instruction) for t in data.sentences1 + data.sentences2]
    encoder.progress.show(stage="sentences")
    vectors = encoder.embed(texts)
    half = len(data.sentences1)
    scores = sts_scores(vectors[:half], vectors[half:], data.scores)
    return {**scores, "main_score": scores[MAIN_SCORE]}
