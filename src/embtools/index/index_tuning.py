"""Measuring an index against exact search: recall@10 of held-out queries and query time, over a sweep of its
search parameter (nprobe for IVF, efSearch for HNSW, set through faiss.ParameterSpace), and the setting a goal picks:
the cheapest that reaches --min-recall, or the most accurate within --max-query-ms.

Query time is a batch of the held-out queries searched at once (faiss's threads), divided by their number: the
best of two runs, in milliseconds per query.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from embtools.index.faiss_setup import set_parameter

K = 10
SWEEPS = {"nprobe": (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024, 2048, 4096),
          "efSearch": (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)}
EXACT_CHUNK = 65_536


@dataclass(frozen=True)
class Setting:
    """One measured search setting: the parameter's value (None for Flat), recall@10, milliseconds per query."""

    value: int | None
    recall: float
    query_ms: float


@dataclass(frozen=True)
class Goal:
    """What the user asked for: recall@10 of at least min_recall (cheapest such setting), or, with max_query_ms,
    the most accurate setting within that time."""

    min_recall: float
    max_query_ms: float | None = None

    def met(self, setting: Setting) -> bool:
        if self.max_query_ms is not None:
            return setting.query_ms <= self.max_query_ms
        return setting.recall >= self.min_recall

    def done(self, setting: Setting) -> bool:
        """Whether a sweep (in ascending cost) can stop here: nothing further would be picked."""
        if self.max_query_ms is not None:
            return setting.query_ms > 2 * self.max_query_ms or setting.recall >= 0.9999
        return setting.recall >= self.min_recall

    def pick(self, settings: list[Setting]) -> Setting | None:
        """A candidate's setting: the cheapest meeting min_recall, or the most accurate within max_query_ms."""
        meeting = [setting for setting in settings if self.met(setting)]
        if not meeting:
            return None
        if self.max_query_ms is not None:
            return max(meeting, key=lambda setting: (setting.recall, -setting.query_ms))
        return meeting[0]

    def rank(self, setting: Setting) -> tuple:
        """Order among candidates' picks (smaller first): the fastest for min_recall, the most accurate for
        max_query_ms."""
        if self.max_query_ms is not None:
            return (-setting.recall, setting.query_ms)
        return (setting.query_ms, -setting.recall)


def exact_neighbors(base: np.ndarray, queries: np.ndarray, k: int = K, exclude: np.ndarray | None = None
                    ) -> np.ndarray:
    """Row numbers of each query's k highest inner products in `base` (which may be a memmap, read in chunks);
    with `exclude`, query i never finds row exclude[i] (itself). Fewer than k when base has fewer rows."""
    k = min(k, len(base) - (exclude is not None))
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(base), EXACT_CHUNK):
        scores = queries @ np.asarray(base[start:start + EXACT_CHUNK], dtype=np.float32).T
        if exclude is not None:
            inside = (exclude >= start) & (exclude < start + len(scores[0]))
            scores[np.flatnonzero(inside), exclude[inside] - start] = -np.inf
        rows = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        best_scores = np.concatenate([best_scores, scores], axis=1)
        best_rows = np.concatenate([best_rows, rows], axis=1)
        keep = np.argpartition(-best_scores, min(k, best_scores.shape[1]) - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(best_scores, keep, 1)
        best_rows = np.take_along_axis(best_rows, keep, 1)
    order = np.argsort(-best_scores, axis=1, kind="stable")
    return np.take_along_axis(best_rows, order, 1)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """The mean share of each query's true k neighbours among those found (1 when there are none to find)."""
    if truth.shape[1] == 0:
        return 1.0
    return float(np.mean([len(set(f[f >= 0]) & set(t)) / len(t) for f, t in zip(found, truth)]))


def measure(index, queries: np.ndarray, truth: np.ndarray, exclude: np.ndarray | None = None) -> tuple[float, float]:
    """(recall@k, ms per query) of the index at its current setting; with `exclude`, each query's own row is
    dropped from what it finds (it searches one deeper)."""
    k = truth.shape[1]
    depth = k + (exclude is not None)
    elapsed = []
    for _ in range(2):
        started = time.perf_counter()
        _, found = index.search(queries, depth)
        elapsed.append(time.perf_counter() - started)
    if exclude is not None:
        found = np.array([[row for row in rows if row != own][:k] for rows, own in zip(found, exclude)])
    return recall_at_k(found, truth), 1000 * min(elapsed) / len(queries)


def sweep(index, parameter: str | None, values: list[int], queries: np.ndarray, truth: np.ndarray, goal: Goal,
          exclude: np.ndarray | None = None) -> list[Setting]:
    """Measure the index at each value of its search parameter in turn (one measurement without a parameter),
    stopping once `goal` has what it needs."""
    if parameter is None:
        return [Setting(None, *measure(index, queries, truth, exclude))]
    settings = []
    for value in values:
        set_parameter(index, parameter, value)
        settings.append(Setting(value, *measure(index, queries, truth, exclude)))
        if goal.done(settings[-1]):
            break
    return settings


def sweep_values(parameter: str | None, nlist: int = 0) -> list[int]:
    """The values a sweep tries, cheapest first: nprobe up to all the lists (nlist), efSearch up to 1024."""
    if parameter is None:
        return []
    values = [value for value in SWEEPS[parameter] if parameter != "nprobe" or value < nlist]
    return values + ([nlist] if parameter == "nprobe" else [])
