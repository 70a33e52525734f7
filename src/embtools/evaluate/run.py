"""One emb-eval DATA argument, evaluated: which instruction applies, which evaluator runs, what comes out.

`evaluate_source(source, encoder, options)` returns an EvalOutcome: the task name (with the slice, if any), the
split, mteb's score dict (with `main_score`), the mteb TaskMetadata the result file is written under, and the time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from embtools.encode.cached_encoder import CachedEncoder
from embtools.errors import EmbtoolsError
from embtools.evaluate.mteb_tasks import LOCAL_LANGUAGES
from embtools.instructions import model_takes_instructions, task_instruction
from embtools.progress import Bar, attached
from embtools.records.datasets import (
    EVALUATION_SPLIT,
    DataSource,
    data_revision,
    detect,
    folder_name,
    load_classification,
    load_retrieval,
    load_sts,
    split_of_file,
)

log = logging.getLogger("embtools")


@dataclass
class EvalOptions:
    """`instruction`: --instruction; `use_instruction`: False for --no-instruction, None to decide by model;
    `split`: --split, None for the default (`test` for files and folders, an mteb task's own evaluation split)."""

    instruction: str | None = None
    use_instruction: bool | None = None
    split: str | None = EVALUATION_SPLIT
    max_corpus: int | None = None
    max_queries: int | None = None
    seed: int = 42
    ignore_identical_ids: bool = False
    max_pairs: int | None = None


@dataclass
class EvalOutcome:
    """`metadata`: the mteb TaskMetadata to file the result under (built only when asked, as importing mteb
    takes seconds and an STS run does not need it). One outcome is one subset of a task (`default` for local data);
    `seconds` is the time of the whole task, and `task_type` mteb's name of its type (Retrieval, STS, ...)."""

    task: str
    split: str
    scores: dict[str, Any]
    main_metric: str
    describe: Callable[[], Any]
    seconds: float = 0.0
    task_type: str | None = None
    subset: str = "default"
    languages: list[str] = field(default_factory=lambda: list(LOCAL_LANGUAGES))

    @property
    def metadata(self) -> Any:
        return self.describe()


def _local(source: DataSource, task: str, task_type: str, main_metric: str, split: str,
           scores: dict[str, Any]) -> EvalOutcome:
    """An outcome on local data, its metadata naming the data's path and content revision."""
    def describe() -> Any:
        from embtools.evaluate.mteb_tasks import local_metadata

        return local_metadata(task, task_type, main_metric, split, data_revision(source), folder_name(source.path))
    return EvalOutcome(task, split, scores, main_metric, describe, task_type=task_type)


def instruction_for(task_name: str, encoder: CachedEncoder, options: EvalOptions,
                    fallback: str | None = None, task_type: str | None = None) -> str | None:
    """--instruction; else, for a model trained with instructions, the E5 instruction of the task (by name, else by
    the rule of its mteb `task_type`: instructions.task_instruction), else `fallback` (an mteb task's own prompt);
    where none is known, plain texts and a warning."""
    if options.use_instruction is False:
        return None
    if options.instruction:
        return options.instruction
    if options.use_instruction is None and not model_takes_instructions(encoder.spec.is_decoder,
                                                                         encoder.spec.prompts):
        return None
    instruction = task_instruction(task_name, task_type) or fallback
    if instruction is None:
        log.warning(f"no E5 instruction known for {task_name}; encoding plain texts; give one with --instruction")
    return instruction


def evaluate_source(source: DataSource, encoder: CachedEncoder, options: EvalOptions) -> EvalOutcome:
    """Evaluate one DATA argument with the encoder."""
    started = time.perf_counter()
    from embtools.evaluate.bitext import evaluate_bitext

    evaluate = {"sts": _sts, "retrieval": _retrieval, "classification": _classification, "mteb": _mteb,
                "bitext": evaluate_bitext, "passkey": _passkey}[source.kind]
    with attached(encoder, Bar(source.name, unit="text", rates=("tokens",))):
        outcome = evaluate(source, encoder, options)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _sts(source: DataSource, encoder: CachedEncoder, options: EvalOptions):
    from embtools.evaluate.slices import limit_pairs
    from embtools.evaluate.sts import MAIN_SCORE, evaluate_sts

    data, note = limit_pairs(load_sts(source.path), options.max_pairs, options.seed)
    scores = evaluate_sts(data, encoder, instruction_for(source.name, encoder, options, task_type="STS"))
    name = f"{source.name}[{note}]" if note else source.name
    return _local(source, name, "STS", MAIN_SCORE, split_of_file(source.path), scores)


def _retrieval(source: DataSource, encoder: CachedEncoder, options: EvalOptions):
    from embtools.evaluate.retrieval import MAIN_SCORE, evaluate_retrieval
    from embtools.evaluate.slices import limit_corpus, limit_queries, sliced_name

    split = options.split or EVALUATION_SPLIT
    data = load_retrieval(source.path, split)
    data = limit_corpus(limit_queries(data, options.max_queries, options.seed), options.max_corpus, options.seed)
    name = sliced_name(source.name, data)
    instruction = instruction_for(source.name, encoder, options, task_type="Retrieval")
    scores = evaluate_retrieval(data, encoder, instruction, options.ignore_identical_ids)
    return _local(source, name, "Retrieval", MAIN_SCORE, split, scores)


def _classification(source: DataSource, encoder: CachedEncoder, options: EvalOptions):
    from embtools.evaluate.mteb_encoder import MtebEncoder, instruction_rule
    from embtools.evaluate.mteb_tasks import classification_task, local_metadata, run_task

    split = options.split or EVALUATION_SPLIT
    data = load_classification(source.path, split)
    metadata = local_metadata(source.name, "Classification", "accuracy", split, data_revision(source),
                              str(source.path))
    task = classification_task(data, metadata, split)
    model = MtebEncoder(encoder, instruction_rule(instruction_for(source.name, encoder, options,
                                                                  task_type="Classification")))
    scores = run_task(task, model, split)["default"]
    return EvalOutcome(source.name, split, scores, metadata.main_score, lambda: metadata, task_type="Classification")


def _mteb(source: DataSource, encoder: CachedEncoder, options: EvalOptions):
    """One mteb task of one subset (emb-train --eval); emb-eval runs whole selections through mteb_run."""
    from embtools.evaluate.mteb_run import evaluate_task
    from embtools.evaluate.mteb_selection import select_tasks

    tasks = select_tasks([source.name])
    if len(tasks) != 1 or len(tasks[0].hf_subsets) != 1:
        raise EmbtoolsError(f"mteb:{source.name}: more than one task or subset; name one (mteb:Task@subset)")
    [outcome] = evaluate_task(tasks[0], encoder, options)
    return outcome


def _passkey(source: DataSource, encoder: CachedEncoder, options: EvalOptions):
    from embtools.evaluate.mteb_tasks import local_metadata
    from embtools.evaluate.passkey import MAIN_SCORE, PASSKEY_INSTRUCTION, evaluate_passkey

    instruction = instruction_for("Passkey", encoder, options, fallback=PASSKEY_INSTRUCTION)
    scores = evaluate_passkey(source.length, encoder, instruction, options.seed)
    metadata = local_metadata(source.name, "Retrieval", MAIN_SCORE, "test", f"seed-{options.seed}", "generated")
    return EvalOutcome(source.name, "test", scores, MAIN_SCORE, lambda: metadata, task_type="Retrieval")


def sources_of(argument: str) -> list[DataSource]:
    """The tasks of one DATA argument: one, except `passkey:L1,L2,...` (a task per length)."""
    if argument.startswith("passkey:"):
        from embtools.evaluate.passkey import passkey_sources

        return passkey_sources(argument)
    return [detect(argument)]


def _task_prompt(metadata) -> str | None:
    """The instruction mteb ships with a task (E5's strings where the paper lists the task): its query prompt, or its
    only prompt. Not mteb's generic prompt of a task type (`abstask_prompt`), which is not E5's for most types."""
    prompt = metadata.prompt
    if isinstance(prompt, dict):
        return prompt.get("query") or next(iter(prompt.values()), None)
    return prompt
