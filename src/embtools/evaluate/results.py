"""Evaluation results out: metric records for stdout, and mteb's result files for `--output-folder`.

A result file is mteb's own TaskResult written by its own `to_disk` (scores rounded to 6 places, as mteb does), at
`<folder>/<model name as path>/<revision>/<Task>.json`, where mteb's ResultCache and `TaskResult.from_disk` read it.
The file is written under a temporary name and renamed into place, so a reader never sees half a result.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from embtools.records.atomic import remove_stale_temporaries


def metric_records(task: str, split: str, scores: dict[str, Any], main_metric: str, model: str,
                   labels: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """One `{"task", "split", ...labels, "metric", "value", "main", "model"}` record per numeric score, in mteb's
    names; `labels` are the outcome's `subset`, `languages` and `type` (outcome_labels).

    mteb's confidence-curve scores (nauc_*) stay in the result file only, and `main_score` is the record marked main.
    A score mteb leaves undefined (NaN: average precision of a classification with more than two labels) has no
    record: JSON would write it as null, which no reader of metric records takes as a score.
    """
    for metric, value in scores.items():
        if metric == "main_score" or metric.startswith("nauc_"):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        yield {"task": task, "split": split, **(labels or {}), "metric": metric, "value": float(value),
               "main": metric == main_metric, "model": model}


def outcome_records(outcome, model: str) -> Iterator[dict[str, Any]]:
    """The metric records of one EvalOutcome (one subset of a task), labelled with its subset, languages, type."""
    labels = {"subset": outcome.subset, "languages": list(outcome.languages), "type": outcome.task_type}
    return metric_records(outcome.task, outcome.split, outcome.scores, outcome.main_metric, model, labels)


def task_result(metadata, split: str, scores: dict[str, dict[str, Any]], seconds: float):
    """mteb's TaskResult for one split's scores per subset ({subset: scores}) of a task described by `metadata`;
    each subset is filed under its own name with its languages, as mteb files them."""
    from mteb.results.task_result import TaskResult

    holder = type("TaskHolder", (), {"metadata": metadata})  # from_task_results reads only `.metadata`
    return TaskResult.from_task_results(holder, {split: {subset: dict(s) for subset, s in scores.items()}},
                                        evaluation_time=seconds)


def _write_atomically(target: Path, write: Callable[[Path], None]) -> Path:
    """Run `write(temporary)` and rename the temporary into place (named as records/atomic.py names its temporaries)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    temporary = target.with_name(f".{target.name}.embtools-tmp-{os.getpid()}")
    try:
        write(temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def write_task_result(result, target: Path) -> Path:
    """Write a TaskResult with mteb's own to_disk, atomically."""
    return _write_atomically(target, result.to_disk)


def write_model_meta(meta, folder: Path) -> Path:
    """model_meta.json beside the results, as mteb's ResultCache.save_to_cache writes it."""
    def write(path: Path) -> None:
        path.write_text(json.dumps(meta.to_dict(), default=str, indent=4), encoding="utf-8")
    return _write_atomically(folder / "model_meta.json", write)


class ResultFolder:
    """`--output-folder`: where a model's result files go, one per task holding all its evaluated subsets."""

    def __init__(self, folder: Path, meta):
        self.meta = meta
        self.folder = folder / meta.name.replace("/", "__").replace(" ", "_") / meta.revision

    def path(self, task_name: str) -> Path:
        """mteb's layout: `<folder>/<model name, / as __>/<revision>/<Task>.json`."""
        return self.folder / f"{task_name}.json"

    def save(self, outcomes) -> Path:
        """The result file of one task's outcomes (one per subset, all of one split), and model_meta.json."""
        first = outcomes[0]
        result = task_result(first.metadata, first.split, {o.subset: o.scores for o in outcomes}, first.seconds)
        target = write_task_result(result, self.path(first.task))
        write_model_meta(self.meta, self.folder)
        return target
