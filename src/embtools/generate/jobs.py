"""From task records (or a count) to chat requests, and from answers to task / example records.

A Job is one LLM call with everything needed to turn its answer into records: the rendered template, the sampled
placeholders, and the record it came from. Records are those of docs/records.md; `meta` carries the provenance.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from embtools.errors import InputError
from embtools.generate.answer_parsing import OutputRejected, parse_json_object, parse_string_list
from embtools.generate.chat_request import ChatRequest, ChatResult, OutputShape
from embtools.generate.placeholders import PlaceholderSampler, request_seed
from embtools.generate.prompt_templates import (
    BRAINSTORM_TEMPLATES,
    FIELD_MAPPINGS,
    GENERATE_TEMPLATES,
    Template,
)
from embtools.instructions import ONE_STEP_TYPES, TWO_STEP_TYPES
from embtools.records.examples import SCHEMA, example_problem
from embtools.records.jsonl import Record, require_id, require_string

TASK_FIELDS = ("id", "task_type", "task", "meta")


@dataclass(frozen=True)
class SamplingSettings:
    """What every request of a run shares."""

    model: str
    seed: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int | None = None
    json_mode: bool = False


@dataclass
class Job:
    """One call: its stable key (seeds and shards hang on it), the request, and where its records come from."""

    key: str
    task_type: str
    template: Template
    placeholders: dict[str, str]
    request: ChatRequest
    source: Record = field(default_factory=dict)  # the task record, for two-step groups


def _request(settings: SamplingSettings, key: str, prompt: str, shape: OutputShape) -> ChatRequest:
    return ChatRequest(model=settings.model, messages=({"role": "user", "content": prompt},),
                       temperature=settings.temperature, top_p=settings.top_p, max_tokens=settings.max_new_tokens,
                       seed=request_seed(settings.seed, key), json_mode=settings.json_mode, shape=shape)


def brainstorm_jobs(task_type: str, count: int, settings: SamplingSettings) -> Iterator[Job]:
    """`count` brainstorm calls for a two-step group; the prompt is fixed, the request seeds differ."""
    template = BRAINSTORM_TEMPLATES[task_type]
    for index in range(count):
        key = f"brainstorm:{task_type}:{index}"
        yield Job(key, task_type, template, {}, _request(settings, key, template.text, OutputShape()),
                  {"list_index": index})


def validate_task_record(record: Record) -> Record:
    """A task record as emb-brainstorm writes it: `id`, `task_type` (a two-step group), `task`."""
    require_id(record)
    task_type = require_string(record, "task_type")
    if task_type not in TWO_STEP_TYPES:
        raise InputError(f'field "task_type" must be one of {", ".join(TWO_STEP_TYPES)}, got {task_type!r}')
    if not require_string(record, "task").strip():
        raise InputError('field "task" is empty')
    return record


def task_jobs(tasks: Iterable[Record], sampler: PlaceholderSampler, settings: SamplingSettings) -> Iterator[Job]:
    """One generate call per task record."""
    for task in tasks:
        task_type = task["task_type"]
        key = f"{task_type}:{orjson.dumps(task['id']).decode()}"
        values = {**sampler.sample(task_type, key), "task": task["task"]}
        yield _generate_job(key, task_type, values, settings, task)


def symmetric_jobs(task_type: str, indices: Iterable[int], sampler: PlaceholderSampler,
                   settings: SamplingSettings) -> Iterator[Job]:
    """Generate calls for sts / bitext (no brainstorm step), example number i for i in indices."""
    if task_type not in ONE_STEP_TYPES:
        raise ValueError(task_type)
    for index in indices:
        key = f"{task_type}:{index}"
        yield _generate_job(key, task_type, sampler.sample(task_type, key), settings, {"id": f"{task_type}-{index}"})


def _generate_job(key: str, task_type: str, values: dict[str, str], settings: SamplingSettings,
                  source: Record) -> Job:
    template = GENERATE_TEMPLATES[task_type]
    shape = OutputShape(FIELD_MAPPINGS[task_type].keys)
    return Job(key, task_type, template, values, _request(settings, key, template.render(values), shape), source)


def _provenance(job: Job, result: ChatResult) -> dict[str, Any]:
    return {"template_id": job.template.id, "template_version": job.template.version,
            "generator": job.request.model, "seed": job.request.seed, "content_hash": job.request.content_hash(),
            "finish_reason": result.finish_reason,
            "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens}}


def task_records(job: Job, result: ChatResult) -> list[Record]:
    """The task records of one brainstorm answer (OutputRejected when it holds no list of strings)."""
    tasks = parse_string_list(result.content, truncated=result.finish_reason == "length")
    index = job.source["list_index"]
    meta = _provenance(job, result)
    return [{"id": f"{job.task_type}-{index}-{position}", "task_type": job.task_type, "task": task,
             "meta": {**meta, "list_index": index, "item_index": position, "list_size": len(tasks)}}
            for position, task in enumerate(tasks)]


def example_record(job: Job, result: ChatResult) -> Record:
    """The example record of one generate answer, mapped per group (docs/method.md); OutputRejected if invalid."""
    mapping = FIELD_MAPPINGS[job.task_type]
    output = parse_json_object(result.content, mapping.keys, truncated=result.finish_reason == "length")
    placeholders = {k: v for k, v in job.placeholders.items() if k != "task"}
    meta = {**_provenance(job, result), "placeholders": placeholders, "output": output}
    if "meta" in job.source:
        meta["task_meta"] = job.source["meta"]
    passthrough = {k: v for k, v in job.source.items() if k not in TASK_FIELDS}
    record = {**passthrough, "id": job.source["id"], "task_type": job.task_type,
              "instruction": mapping.instruction or job.placeholders["task"],
              "query": output[mapping.query], "positive": output[mapping.positive],
              "negative": output[mapping.negative] if mapping.negative else None,
              "language": placeholders.get("language") or placeholders.get("src_lang"), "meta": meta}
    problem = example_problem(record)  # the same check emb-filter and emb-train make: never write what they refuse
    if problem:
        raise OutputRejected(SCHEMA, problem)
    return record


def example_records(job: Job, result: ChatResult) -> list[Record]:
    """`example_record` as a list, the shape OutcomeWriter takes."""
    return [example_record(job, result)]
