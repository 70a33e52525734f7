"""Example records -> training examples, and the seeded order in which batches of them are seen.

An example is (query with `Instruct: {instruction}\\nQuery: {query}`, positive, up to N negatives): a record's
`negative` may be null, a string or a list, best first, and training takes its first N (`--negatives-per-example`,
as FlagEmbedding's train group size takes group size - 1). Documents get no instruction (E5: the document index can
be built once for every task). Several files can be mixed with weights (`FILE:0.5` takes a seeded half of that file
each epoch, `FILE:2` every example twice). The order of an epoch is a pure function of (seed, epoch), so a resumed
run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from embtools.errors import InputError
from embtools.instructions import with_instruction
from embtools.records.examples import example_problem, negatives
from embtools.records.jsonl import Record, RejectSink, read_records


@dataclass(frozen=True)
class TrainingExample:
    query: str  # the instruction already applied
    positive: str
    negatives: tuple[str, ...]  # best first, at most --negatives-per-example; () when the example has none
    task: str  # what --same-task-batches groups by: the source file and the record's task_type
    instruction: str = ""


@dataclass(frozen=True)
class DataSource:
    path: str | None  # None: stdin
    weight: float = 1.0


def parse_source(argument: str) -> DataSource:
    """`FILE`, `FILE:WEIGHT` or `-`; a weight is a non-negative number after the last colon."""
    if argument == "-":
        return DataSource(None)
    head, sep, tail = argument.rpartition(":")
    if sep and head and not Path(argument).exists():
        try:
            weight = float(tail)
        except ValueError:
            weight = None
        if weight is not None:
            if weight <= 0:
                raise InputError(f"{argument}: the weight must be above 0")
            return DataSource(head, weight)
    return DataSource(argument)


def validate_example(record: Record) -> Record:
    """An example record with what training reads (records.examples.example_problem); InputError otherwise."""
    problem = example_problem(record, for_training=True)
    if problem:
        raise InputError(problem)
    return record


def to_example(record: Record, source_index: int, negatives_per_example: int = 1) -> TrainingExample:
    query = with_instruction(record["query"], record["instruction"].strip() or None)
    return TrainingExample(query, record["positive"], tuple(negatives(record)[:negatives_per_example]),
                           f"{source_index}:{record.get('task_type') or ''}", record["instruction"].strip())


def load_examples(sources: list[DataSource], sink: RejectSink | None = None,
                  negatives_per_example: int = 1) -> list[list[TrainingExample]]:
    """The examples of each source, in file order (bad records fail, or are skipped into `sink`), each with at most
    `negatives_per_example` negatives (0: none, in-batch negatives only)."""
    pools = []
    for index, source in enumerate(sources):
        records = read_records(source.path, validate_example, rejects=sink)
        pools.append([to_example(r, index, negatives_per_example) for r in records])
    return pools


def most_common_instruction(pools: list[list[TrainingExample]]) -> str | None:
    """The instruction most examples carry (it becomes the saved model's `query` prompt)."""
    counts = Counter(e.instruction for pool in pools for e in pool if e.instruction)
    return counts.most_common(1)[0][0] if counts else None


def _sample_epoch(pools: list[list[TrainingExample]], weights: list[float],
                  rng: random.Random) -> list[TrainingExample]:
    chosen: list[TrainingExample] = []
    for pool, weight in zip(pools, weights):
        whole, fraction = int(weight), weight - int(weight)
        chosen.extend(pool * whole)
        chosen.extend(rng.sample(pool, round(fraction * len(pool))))
    return chosen


def _chunks(items: list[TrainingExample], size: int) -> list[list[TrainingExample]]:
    return [items[i:i + size] for i in range(0, len(items) - size + 1, size)]  # the last partial batch is dropped


def epoch_batches(pools: list[list[TrainingExample]], weights: list[float], batch_size: int, seed: int, epoch: int,
                  same_task: bool = False) -> list[list[TrainingExample]]:
    """The batches of one epoch, a function of (seed, epoch) only; each batch from one task if `same_task`."""
    rng = random.Random(f"{seed}:{epoch}")
    examples = _sample_epoch(pools, weights, rng)
    if not same_task:
        rng.shuffle(examples)
        return _chunks(examples, batch_size)
    groups: dict[str, list[TrainingExample]] = defaultdict(list)
    for example in examples:
        groups[example.task].append(example)
    batches = []
    for task in sorted(groups):
        rng.shuffle(groups[task])
        batches.extend(_chunks(groups[task], batch_size))
    rng.shuffle(batches)
    return batches

