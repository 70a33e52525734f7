"""mteb tasks, run task by task: each on its evaluation split and every one of its subsets, one EvalOutcome per
subset; with a result folder, a task whose result file already holds that split is not run again (resume) but read
back from the file, so a killed benchmark run picks up where it stopped and still reports every task.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from embtools.encode.cached_encoder import CachedEncoder
from embtools.evaluate.mteb_selection import evaluation_split, subset_languages
from embtools.evaluate.results import ResultFolder
from embtools.evaluate.run import EvalOptions, EvalOutcome, _task_prompt, instruction_for
from embtools.progress import Bar, attached

# Keys of a result file's subset entry that are labels, not scores.
_RESULT_LABELS = {"hf_subset", "languages", "mteb_version"}

log = logging.getLogger("embtools")


def evaluate_task(task: Any, encoder: CachedEncoder, options: EvalOptions) -> list[EvalOutcome]:
    """Evaluate the model on one mteb task (its data loaded here unless already in memory): an outcome per subset."""
    from embtools.evaluate.mteb_encoder import MtebEncoder, instruction_rule
    from embtools.evaluate.mteb_tasks import load_task_data, run_task

    split = evaluation_split(task, options.split)
    load_task_data(task)
    instruction = instruction_for(task.metadata.name, encoder, options, fallback=_task_prompt(task.metadata),
                                  task_type=task.metadata.type)
    started = time.perf_counter()
    with attached(encoder, Bar(task.metadata.name, unit="text", rates=("tokens",))):
        scores = run_task(task, MtebEncoder(encoder, instruction_rule(instruction)), split)
    return _outcomes(task, split, scores, time.perf_counter() - started)


def _outcomes(task: Any, split: str, scores: dict[str, dict[str, Any]], seconds: float) -> list[EvalOutcome]:
    metadata = task.metadata
    return [EvalOutcome(metadata.name, split, subset_scores, metadata.main_score, lambda: metadata, seconds,
                        metadata.type, subset, subset_languages(task, subset))
            for subset, subset_scores in scores.items()]


def resumed_outcomes(task: Any, split: str, path: Path) -> list[EvalOutcome] | None:
    """The outcomes stored in a task's result file for `split` and the task's subsets (None unless all are there)."""
    if not path.is_file():
        return None
    from mteb import TaskResult

    stored = {e["hf_subset"]: e for e in TaskResult.from_disk(path).scores.get(split, [])}
    if not set(task.hf_subsets) <= set(stored):
        return None
    scores = {s: {k: v for k, v in stored[s].items() if k not in _RESULT_LABELS} for s in task.hf_subsets}
    return _outcomes(task, split, scores, 0.0)


def run_tasks(tasks: list[Any], encoder: CachedEncoder, options: EvalOptions,
              results: ResultFolder | None) -> Iterator[list[EvalOutcome]]:
    """Each task's outcomes in turn; with `results`, each task's result file written as soon as it is done, and a
    task whose file already holds its split read back instead of run (said on stderr)."""
    for task in tasks:
        split = evaluation_split(task, options.split)
        done = resumed_outcomes(task, split, results.path(task.metadata.name)) if results else None
        if done:
            log.info(f"{task.metadata.name} {split}: skipped, {results.path(task.metadata.name)} exists (its scores "
                 "are read from it)")
            yield done
            continue
        outcomes = evaluate_task(task, encoder, options)
        if results:
            log.info(f"wrote {results.save(outcomes)}")
        yield outcomes
