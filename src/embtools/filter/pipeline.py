"""The emb-filter pipeline: example records in, the ones that pass every enabled check out, each reject with a reason.

Checks run cheapest first and stop at the first failure: schema, content (placeholders), guidelines, exact
duplicates, language, decontamination, near-duplicates. A check is a callable `record -> reason | None`; it may
also have `prepare(batch)` (vectorized work for a batch of records, done before they are checked) and `remember(record)`
(called once the record is kept: the duplicate checks learn only from kept records). Records are read in batches of
`batch_size`; state across the stream is only what the duplicate checks remember (hashes).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from embtools.errors import InputError
from embtools.filter import defaults
from embtools.filter.content import ContentCheck
from embtools.filter.decontamination import ContaminationIndex, DecontaminationSettings
from embtools.filter.duplicates import ExactDuplicateCheck, NearDuplicateCheck
from embtools.filter.guidelines import GuidelineCheck, GuidelineSettings
from embtools.filter.labeled_data import beir_examples, sts_examples
from embtools.filter.language import LanguageCheck, LanguageSettings
from embtools.filter.report import FilterStats
from embtools.records.examples import DUPLICATE_FIELDS, schema_problem
from embtools.records.jsonl import Record, RejectSink, count_lines, read_records

log = logging.getLogger("embtools")


@dataclass
class FilterSettings:
    schema: bool = True
    content: bool = True
    guidelines: bool = True
    exact_duplicates: bool = True
    language: bool = True
    near_duplicates: bool = True
    decontaminate: tuple[Path, ...] = ()
    dedup_fields: tuple[str, ...] = DUPLICATE_FIELDS
    near_dup_threshold: float = defaults.NEAR_DUP_THRESHOLD
    num_perm: int = defaults.NUM_PERM
    shingle_size: int = 3
    batch_size: int = 512
    guideline: GuidelineSettings = field(default_factory=GuidelineSettings)
    language_settings: LanguageSettings = field(default_factory=LanguageSettings)
    decontamination: DecontaminationSettings = field(default_factory=DecontaminationSettings)


class SchemaCheck:
    name = "schema"

    def __call__(self, record: Record) -> str | None:
        return schema_problem(record)


def contamination_index(paths: Iterable[Path], settings: DecontaminationSettings) -> ContaminationIndex:
    """The hashes of every evaluation text under `paths`, with a line per source on stderr."""
    index = ContaminationIndex(settings)
    for path in paths:
        count = index.add_source(Path(path))
        log.info(f"decontaminating against {count} texts of {path}")
    return index


def build_checks(settings: FilterSettings) -> list:
    """The enabled checks, in the order they run."""
    checks: list = []
    if settings.schema:
        checks.append(SchemaCheck())
    if settings.content:
        checks.append(ContentCheck())
    if settings.guidelines:
        checks.append(GuidelineCheck(settings.guideline))
    if settings.exact_duplicates:
        checks.append(ExactDuplicateCheck(settings.dedup_fields))
    if settings.language:
        checks.append(LanguageCheck(settings.language_settings))
    if settings.decontaminate:
        checks.append(contamination_index(settings.decontaminate, settings.decontamination))
    if settings.near_duplicates:
        checks.append(NearDuplicateCheck(settings.near_dup_threshold, settings.num_perm, settings.shingle_size,
                                         settings.dedup_fields))
    return checks


def first_failure(record: Record, checks: list) -> str | None:
    for check in checks:
        reason = check(record)
        if reason:
            return reason
    return None


def filter_examples(records: Iterable[Record], checks: list, sink: RejectSink, stats: FilterStats,
                    batch_size: int = 512) -> Iterator[Record]:
    """Yield the records that pass every check, in input order; rejects go to `sink` with their reason."""
    preparing = [check for check in checks if hasattr(check, "prepare")]
    remembering = [check for check in checks if hasattr(check, "remember")]
    iterator = iter(records)
    while batch := list(islice(iterator, batch_size)):
        for check in preparing:
            check.prepare(batch)
        for record in batch:
            stats.read += 1
            reason = first_failure(record, checks)
            if reason:
                sink.reject(record, reason)
                continue
            for check in remembering:
                check.remember(record)
            yield record


def input_examples(files: tuple[str, ...], beir: tuple[Path, ...] = (), sts: tuple[Path, ...] = (),
                   sink: RejectSink | None = None, beir_split: str = "train", instruction: str | None = None,
                   min_score: float = defaults.MIN_STS_SCORE) -> Iterator[Record]:
    """Example records from FILEs (stdin when there are none and no labeled data is given), then the examples
    converted from BEIR folders and STS files. With several FILEs an error names the file as well as the line."""
    sources = list(files) or ([] if beir or sts else [None])
    for source in sources:
        try:
            yield from read_records(source, rejects=sink)
        except InputError as exc:
            raise InputError(f"{source}: {exc}" if len(sources) > 1 else str(exc)) from None
    for folder in beir:
        yield from beir_examples(Path(folder), beir_split, instruction)
    for path in sts:
        yield from sts_examples(Path(path), min_score)


def input_total(files: tuple[str, ...], beir: tuple = (), sts: tuple = ()) -> int | None:
    """How many records input_examples will yield, when FILEs alone (plain JSONL) say it cheaply: a progress bar's
    total. None for stdin, labeled data or compressed files."""
    counts = [count_lines(source) for source in files]
    return None if beir or sts or not counts or None in counts else sum(counts)


def unchecked_notes(checks: list) -> Counter:
    """`not checked: ...` counts of the checks that skip records they cannot judge."""
    notes: Counter[str] = Counter()
    for check in checks:
        for what, count in getattr(check, "unchecked", {}).items():
            notes[f"{check.name}: {what}"] += count
    return notes
