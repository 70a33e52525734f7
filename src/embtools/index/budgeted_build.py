"""`emb-index build --max-memory`: the index chosen for the user by memory budget, measured, built and verified.

1. The input is spooled to disk (index/spooled_vectors.py), normalized, its ids written as it streams.
2. The candidates that fit the budget (index/index_choice.py) are each built on a random sample of
   `tune_sample` vectors and swept over their search parameter against exact search for `tune_queries` held-out
   input vectors (index/index_tuning.py); the goal picks one candidate and setting.
3. The chosen index is built on everything, and the setting verified on it against exact search over the whole
   input (each query's own row left out), moving along the sweep until the goal holds.
index.json records the choice under `choice`: factory, search parameters, measured recall@10 and query time,
estimated and actual bytes, the goal, and what every candidate measured.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embtools.errors import EmbtoolsError, InputError
from embtools.index.defaults import DEFAULT_TRAIN_SIZE
from embtools.index.faiss_setup import OPQ_FINAL_TRAINING, OPQ_TRAINING, clusterings, new_index, train
from embtools.index.folder import IDS_FILE
from embtools.index.index_choice import Candidate, candidates, format_bytes, within_budget
from embtools.index.index_tuning import Goal, Setting, exact_neighbors, sweep, sweep_values
from embtools.index.spooled_vectors import SpooledVectors
from embtools.index.vector_blocks import VectorBlock

log = logging.getLogger("embtools")
SPOOL_FILE = "vectors.spool"
# k-means iterations of the indexes built on the tuning sample (faiss's default is 25, kept for the full build):
# training was most of the time of choosing, and the sample only has to rank the candidates
TUNING_KMEANS_ITERATIONS = 10


@dataclass(frozen=True)
class Budget:
    """What --max-memory and its options ask: at most max_bytes for the index, the goal, the tuning sizes."""

    max_bytes: int
    goal: Goal
    tune_sample: int
    tune_queries: int


def spool(blocks: Iterable[VectorBlock], folder: Path) -> SpooledVectors:
    """Write the blocks' ids to folder/ids.jsonl and their L2-normalized vectors to a spool file beside it."""
    spooled = None
    with open(folder / IDS_FILE, "wb") as ids_out:
        for block in blocks:
            spooled = spooled or SpooledVectors(folder / SPOOL_FILE, block.vectors.shape[1])
            spooled.append(block.normalized())
            block.write_ids(ids_out)
    if spooled is None:
        raise InputError("no embeddings to index")
    return spooled


def split_rows(n: int, sample: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(tuning sample rows, held-out query rows), disjoint, drawn at random; the queries are at most a fifth of n."""
    order = np.random.default_rng(seed).permutation(n)
    queries = max(1, min(queries, n // 5))
    return np.sort(order[queries:queries + sample]), np.sort(order[:queries])


def quiet_train(index, sample: np.ndarray) -> bool:
    """Train a tuning index quickly (TUNING_KMEANS_ITERATIONS) and without faiss's starved-k-means warnings;
    False when the sample cannot train it."""
    for _what, centroids, params in clusterings(index):
        if len(sample) < centroids:
            return False
        params.min_points_per_centroid = 1
        params.niter = min(params.niter, TUNING_KMEANS_ITERATIONS)
    if not index.is_trained:
        index.train(sample)
    return True


def sample_index(candidate: Candidate, sample: np.ndarray):
    """The candidate scaled to the sample, built on it with the tuning's bounded training; None when the sample
    cannot train it."""
    index = new_index(candidate.d, candidate.for_sample(len(sample)).factory, OPQ_TRAINING)
    if not quiet_train(index, sample):
        return None
    index.add(sample)
    return index


def tune(candidate: Candidate, sample: np.ndarray, queries: np.ndarray, truth: np.ndarray, goal: Goal
         ) -> tuple[Setting | None, list[Setting], float]:
    """(the goal's pick, every setting measured, build seconds) of the candidate built on the sample."""
    started = time.perf_counter()
    scaled = candidate.for_sample(len(sample))
    index = sample_index(candidate, sample)
    if index is None:
        return None, [], 0.0
    seconds = time.perf_counter() - started
    settings = sweep(index, candidate.search_parameter, sweep_values(candidate.search_parameter, scaled.nlist),
                     queries, truth, goal)
    return goal.pick(settings), settings, seconds


def full_value(candidate: Candidate, value: int | None, sample_size: int) -> int | None:
    """The sample's setting for the whole input: nprobe scaled to visit the same share of the lists."""
    if value is None or candidate.search_parameter != "nprobe":
        return value
    sample_lists = candidate.for_sample(sample_size).nlist
    return max(1, min(candidate.nlist, round(value * candidate.nlist / sample_lists)))


def choose(fitting: list[Candidate], spooled: SpooledVectors, goal: Goal, sample_rows: np.ndarray,
           query_rows: np.ndarray) -> tuple[Candidate, Setting, list[dict]]:
    """(candidate, setting on the sample, what each candidate measured): the goal's best pick among them."""
    sample, queries = spooled.rows(sample_rows), spooled.rows(query_rows)
    truth = exact_neighbors(sample, queries)
    report, picks, measured = [], [], []
    for number, candidate in enumerate(fitting):
        pick, settings, seconds = tune(candidate, sample, queries, truth, goal)
        report.append({"factory": candidate.factory, "estimated_bytes": candidate.estimated_bytes,
                       "sample_build_s": round(seconds, 3), "pick": _setting_record(candidate, pick),
                       "swept": [_setting_record(candidate, setting) for setting in settings]})
        picks += [(goal.rank(pick), number, pick)] if pick else []
        measured += [(setting, number) for setting in settings]
    if picks:
        _, number, pick = min(picks)
        return fitting[number], pick, report
    return _closest(fitting, measured, goal) + (report,)


def _closest(fitting: list[Candidate], measured: list[tuple[Setting, int]], goal: Goal) -> tuple[Candidate, Setting]:
    """When no candidate meets the goal: the most accurate for --min-recall (with a warning); an error for
    --max-query-ms, naming the fastest time measured."""
    if not measured:
        raise EmbtoolsError("no candidate index could be trained on the tuning sample: give a larger --tune-sample")
    if goal.max_query_ms is not None:
        fastest, number = min(measured, key=lambda item: item[0].query_ms)
        raise EmbtoolsError(f"no index within the budget searches in {goal.max_query_ms:g} ms a query: the fastest, "
                            f"{fitting[number].factory}, took {fastest.query_ms:.3g} ms; raise --max-query-ms")
    best, number = max(measured, key=lambda item: item[0].recall)
    log.warning(f"no index within the budget reaches recall@10 {goal.min_recall:g}; taking the most accurate, "
                f"{fitting[number].factory} ({best.recall:.3f} on the tuning sample)")
    return fitting[number], best


def _setting_record(candidate: Candidate, setting: Setting | None) -> dict | None:
    if setting is None:
        return None
    parameters = {candidate.search_parameter: setting.value} if setting.value is not None else {}
    return {"search_params": parameters, "recall_at_10": round(setting.recall, 4),
            "query_ms": round(setting.query_ms, 4)}


def build_chosen(candidate: Candidate, spooled: SpooledVectors, train_size: int, batch_size: int, seed: int = 0):
    """The candidate's index over every spooled vector, trained on `train_size` of them drawn at random; an OPQ
    rotation, trained once here, with OPQ_FINAL_TRAINING (more than the tuning's OPQ_TRAINING)."""
    index = new_index(candidate.d, candidate.factory, OPQ_FINAL_TRAINING)
    if not index.is_trained:
        rows = np.random.default_rng(seed).choice(spooled.count, min(train_size, spooled.count), replace=False)
        train(index, spooled.rows(np.sort(rows)))
    for batch in spooled.batches(batch_size):
        index.add(batch)
    return index


def verify(index, candidate: Candidate, value: int | None, spooled: SpooledVectors, query_rows: np.ndarray,
           goal: Goal) -> Setting:
    """The setting on the full index, starting from `value` and moving along the sweep (up for --min-recall, down
    for --max-query-ms) until the goal holds; the last one tried when it never does."""
    queries = spooled.rows(query_rows)
    truth = exact_neighbors(spooled.matrix(), queries, exclude=query_rows)
    parameter, grid = candidate.search_parameter, sweep_values(candidate.search_parameter, candidate.nlist)
    if parameter is None:
        return sweep(index, None, [], queries, truth, goal, exclude=query_rows)[0]
    further = [v for v in reversed(grid) if v < value] if goal.max_query_ms is not None else \
        [v for v in grid if v > value]
    for tried in [value, *further]:
        setting = sweep(index, parameter, [tried], queries, truth, goal, exclude=query_rows)[0]
        if goal.met(setting):
            break
    return setting


def build_within_budget(blocks: Iterable[VectorBlock], folder: Path, budget: Budget, *,
                        train_size: int = DEFAULT_TRAIN_SIZE, batch_size: int = 4096):
    """(index, count, trained_on, choice) of the index chosen for the budget, built from blocks of checked float rows;
    ids.jsonl is written into `folder`, the spool file there is removed."""
    goal = budget.goal
    spooled = spool(blocks, folder)
    try:
        n, d = spooled.count, spooled.dim
        fitting = within_budget(candidates(n, d), budget.max_bytes)
        sample_rows, query_rows = split_rows(n, budget.tune_sample, budget.tune_queries)
        candidate, setting, report = (fitting[0], None, []) if n < 100 else \
            choose(fitting, spooled, goal, sample_rows, query_rows)
        started = time.perf_counter()
        index = build_chosen(candidate, spooled, train_size, batch_size)
        value = full_value(candidate, setting.value if setting else None, len(sample_rows))
        final = verify(index, candidate, value, spooled, query_rows, goal)
        choice = {"factory": candidate.factory, **_setting_record(candidate, final), "goal": _goal_record(goal),
                  "max_memory": budget.max_bytes, "estimated_bytes": candidate.estimated_bytes,
                  "build_s": round(time.perf_counter() - started, 3),
                  "tuning": {"sample": len(sample_rows), "queries": len(query_rows), "candidates": report}}
        return index, n, min(train_size, n) if candidate.nlist or "SQ" in candidate.factory else 0, choice
    finally:
        spooled.remove()


def _goal_record(goal: Goal) -> dict:
    return {"max_query_ms": goal.max_query_ms} if goal.max_query_ms is not None else {"min_recall": goal.min_recall}


def choice_line(choice: dict) -> str:
    """The one stderr line that reports the choice."""
    parameters = "".join(f", {name} {value}" for name, value in choice["search_params"].items())
    return (f"chose {choice['factory']}{parameters} for --max-memory {format_bytes(choice['max_memory'])}: "
            f"recall@10 {choice['recall_at_10']:.3f} ({choice['tuning']['queries']} held-out queries), "
            f"{choice['query_ms']:.3g} ms a query, {format_bytes(choice['actual_bytes'])} "
            f"(estimated {format_bytes(choice['estimated_bytes'])})")
