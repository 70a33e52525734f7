"""What one emb-eval run covers, in order: its DATA arguments as local sources and mteb tasks (a benchmark gives
several), `--dry-run`'s listing of them, and their evaluation task by task.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from embtools.encode.cached_encoder import CachedEncoder
from embtools.evaluate.run import EvalOptions, EvalOutcome, evaluate_source
from embtools.records.datasets import DataSource

log = logging.getLogger("embtools")


def run_plan(sources: Sequence[DataSource], task_types: Sequence[str] = (),
             languages: Sequence[str] = ()) -> list[Any]:
    """What runs, in order: the local files and folders as given, then the mteb tasks of the `mteb:` arguments
    (selected together: each task once, an error only if the filters leave none of them)."""
    from embtools.evaluate.mteb_selection import select_tasks

    names = [source.name for source in sources if source.kind == "mteb"]
    local: list[Any] = [source for source in sources if source.kind != "mteb"]
    return local + (select_tasks(names, task_types, languages) if names else [])


def planned_records(plan: list[Any], split: str | None) -> list[dict[str, Any]]:
    """`--dry-run`: a record per mteb task and subset (task, type, split, subset, languages); per local DATA one
    record (task, kind, data)."""
    from embtools.evaluate.mteb_selection import planned_runs

    records: list[dict[str, Any]] = []
    for item in plan:
        if isinstance(item, DataSource):
            records.append({"task": item.name, "kind": item.kind, "data": str(item.path) if item.path else None})
        else:
            records += planned_runs(item, split)
    return records


def evaluate_plan(plan: list[Any], encoder: CachedEncoder, options: EvalOptions,
                  results=None) -> Iterator[list[EvalOutcome]]:
    """Each task's outcomes (a list, one per subset) in plan order; with `results` (a ResultFolder) each task's
    result file is written as the task ends, and an mteb task whose file exists is read back instead of run."""
    from embtools.evaluate.mteb_run import run_tasks

    for item in plan:
        if not isinstance(item, DataSource):
            yield from run_tasks([item], encoder, options, results)
            continue
        outcome = evaluate_source(item, encoder, options)
        if results:
            log.info(f"wrote {results.save([outcome])}")
        yield [outcome]
