"""Which mteb tasks an emb-eval run covers: `mteb:Task`, `mteb:Task@subset` or a benchmark (`mteb:MTEB(eng, v2)`),
narrowed by `--task-type` and `--language`, each with its evaluation split and subsets.

Only mteb's metadata is read here (no data, no model), so a selection, and `--dry-run`'s listing of it, works offline.
A benchmark's tasks come as the benchmark defines them (MTEB(eng, v2) keeps only the `en` subset of MTOP); the
filters narrow that further, never widen it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from copy import copy
from typing import Any

from embtools.errors import EmbtoolsError

log = logging.getLogger("embtools")

# The split a task's published score is on: its test split, else its only evaluation split (MSMARCO: dev).
PREFERRED_SPLIT = "test"


def parse_name(name: str) -> tuple[str, str | None]:
    """`Task@subset` -> ("Task", "subset"); `Task` or a benchmark name -> (name, None)."""
    task, at, subset = name.rpartition("@")
    return (task, subset) if at and task and subset else (name, None)


def select_tasks(names: Iterable[str], task_types: Sequence[str] = (), languages: Sequence[str] = ()) -> list[Any]:
    """mteb task objects for the names (tasks, `Task@subset`, benchmarks), in order and each once, filtered by type
    (mteb's names: Retrieval, STS, ...) and language (`deu` or `deu-Latn`: a subset is kept if it has one of them).
    A name the filters leave nothing of is said on stderr; an empty selection is an error."""
    chosen: dict[str, Any] = {}
    for name in names:
        kept = [task for task in _tasks_of(name) if _matches(task, task_types, languages)]
        if not kept:
            log.warning(f"mteb:{name}: no task matches {_filters(task_types, languages)}; skipped")
        for task in kept:
            chosen.setdefault(task.metadata.name, task)
    if not chosen:
        raise EmbtoolsError(f"no mteb task of {', '.join(names)} matches {_filters(task_types, languages)}")
    return list(chosen.values())


def _matches(task: Any, task_types: Sequence[str], languages: Sequence[str]) -> bool:
    if task_types and task.metadata.type not in task_types:
        return False
    return not languages or _keep_languages(task, languages)


def _filters(task_types: Sequence[str], languages: Sequence[str]) -> str:
    return f"--task-type {'/'.join(task_types) or '*'} and --language {'/'.join(languages) or '*'}"


def _tasks_of(name: str) -> list[Any]:
    import mteb

    task_name, subset = parse_name(name)
    if subset is None:
        try:
            return [copy(task) for task in mteb.get_benchmark(name).tasks]  # filters must not narrow mteb's own
        except (KeyError, ValueError):
            pass
    try:
        task = mteb.get_task(task_name)
    except (KeyError, ValueError) as exc:
        raise EmbtoolsError(f"mteb:{name}: the installed mteb has no such task or benchmark "
                            f"({str(exc).splitlines()[0]})") from None
    if subset is not None:
        _keep_subset(task, subset)
    return [task]


def _keep_subset(task: Any, subset: str) -> None:
    if subset not in task.hf_subsets:
        raise EmbtoolsError(f"mteb:{task.metadata.name}@{subset}: no such subset (it has: "
                            f"{', '.join(task.hf_subsets)})")
    task.filter_languages(None, hf_subsets=[subset])


def _keep_languages(task: Any, languages: Sequence[str]) -> bool:
    """Narrow the task's current subsets to those in the languages; False when none is left."""
    try:
        task.filter_languages(list(languages), hf_subsets=list(task.hf_subsets))
    except ValueError:
        return False
    return True


def evaluation_split(task: Any, split: str | None) -> str:
    """`--split` when given (an error if the task lacks it), else the task's own evaluation split."""
    splits = list(task.eval_splits)
    if split is None:
        return PREFERRED_SPLIT if PREFERRED_SPLIT in splits else splits[0]
    if split not in splits:
        raise EmbtoolsError(f"mteb:{task.metadata.name}: no split {split!r} (it has: {', '.join(splits)}; "
                            "choose one with --split)")
    return split


def subset_languages(task: Any, subset: str) -> list[str]:
    """The languages of one subset, as mteb writes them into a result file."""
    return list(task.metadata.hf_subsets_to_langscripts.get(subset, []))


def planned_runs(task: Any, split: str | None) -> list[dict[str, Any]]:
    """What `--dry-run` lists: one record per subset of the task (task, type, split, subset, languages)."""
    chosen = evaluation_split(task, split)
    return [{"task": task.metadata.name, "type": task.metadata.type, "split": chosen, "subset": subset,
             "languages": subset_languages(task, subset)} for subset in task.hf_subsets]
