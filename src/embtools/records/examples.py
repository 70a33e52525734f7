"""The example record (docs/records.md), checked field by field, and tolerant access to what its `meta` carries.

An example has `id` (string or integer), `task_type` (one of the paper's six groups), non-empty string `instruction`,
`query`, `positive`, `negative` (a non-empty string, a non-empty list of them, best first, or null), `language` (a
string) and `meta` (an object).
`example_problem` is the one check of that shape: emb-generate runs it on what it writes, emb-filter's schema check
on what it reads, and emb-train (`for_training`) on the fields training reads.
Placeholders are read from `meta.placeholders` first and from `meta` itself second, so records from emb-generate
and hand-written ones both work.
"""

from __future__ import annotations

from typing import Any

from embtools.instructions import TASK_TYPES
from embtools.records.jsonl import Record

TEXT_FIELDS = ("instruction", "query", "positive")
DUPLICATE_FIELDS = ("query", "positive")  # the fields whose texts make two examples duplicates, unless told otherwise
SCHEMA = "schema"


def example_problem(record: Record, *, for_training: bool = False) -> str | None:
    """Why the record is not an example record (`field "query" is empty`), or None when it is one.

    `for_training` checks only what emb-train reads: the texts, where an empty instruction means "no instruction"
    (hand-written training data may leave out id, task_type, language and meta)."""
    problem = None if for_training else _identity_problem(record)
    for name in TEXT_FIELDS:
        problem = problem or _text_problem(record, name, may_be_empty=for_training and name == "instruction")
    problem = problem or _negative_problem(record.get("negative"))
    if problem or for_training:
        return problem
    if not isinstance(record.get("language"), str):
        return 'field "language" must be a string'
    if not isinstance(record.get("meta", {}), dict):
        return 'field "meta" must be an object'
    return None


def schema_problem(record: Record) -> str | None:
    """example_problem as emb-filter's reject reason: `schema: field "query" is empty`."""
    problem = example_problem(record)
    return f"{SCHEMA}: {problem}" if problem else None


def _identity_problem(record: Record) -> str | None:
    record_id = record.get("id")
    if isinstance(record_id, bool) or not isinstance(record_id, (str, int)):
        return 'field "id" must be a string or an integer'
    if record.get("task_type") not in TASK_TYPES:
        return f'field "task_type" must be one of {", ".join(TASK_TYPES)}'
    return None


def _text_problem(record: Record, name: str, *, nullable: bool = False, may_be_empty: bool = False) -> str | None:
    value = record.get(name)
    if value is None:
        return None if nullable else f'field "{name}" is missing'
    if not isinstance(value, str):
        return f'field "{name}" must be a string, got {type(value).__name__}'
    if not (value.strip() or may_be_empty):
        return f'field "{name}" is empty' + (" (use null for none)" if nullable else "")
    return None


def _negative_problem(value: Any) -> str | None:
    """A negative is null, a non-empty string, or a non-empty list of non-empty strings."""
    if not isinstance(value, list):
        return _text_problem({"negative": value}, "negative", nullable=True)
    if not value:
        return 'field "negative" is an empty list (use null for none)'
    for index, item in enumerate(value):
        problem = _text_problem({f"negative[{index}]": item}, f"negative[{index}]")
        if problem:
            return problem
    return None


def negatives(record: Record) -> list[str]:
    """The record's negatives, best first: [] for null, [text] for a string, the strings of a list."""
    value = record.get("negative")
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def field_texts(record: Record, fields: tuple[str, ...]) -> list[tuple[str, str]]:
    """(field, text) of every non-empty text of `fields`, each negative of a list on its own."""
    pairs = [(name, value) for name in fields
             for value in (negatives(record) if name == "negative" else [text(record, name)])]
    return [(name, value) for name, value in pairs if value]


def text(record: Record, field: str) -> str:
    """A text field, or "" when it is missing or not a string (checks run even with the schema check off).
    A list of negatives reads as its texts joined by blank lines, so every check sees every negative."""
    value = record.get(field)
    if isinstance(value, list):
        return "\n\n".join(item for item in value if isinstance(item, str))
    return value if isinstance(value, str) else ""


def meta_of(record: Record) -> dict:
    meta = record.get("meta")
    return meta if isinstance(meta, dict) else {}


def placeholder(record: Record, name: str) -> Any:
    """The sampled placeholder `name`: meta.placeholders[name], else meta[name], else None."""
    meta = meta_of(record)
    nested = meta.get("placeholders")
    if isinstance(nested, dict) and nested.get(name) is not None:
        return nested[name]
    return meta.get(name)


def filter_meta(record: Record) -> dict:
    """meta.filter of the record, created when missing: where emb-filter notes what it found or added."""
    meta = record.get("meta")
    if not isinstance(meta, dict):
        meta = record["meta"] = {}
    found = meta.get("filter")
    if not isinstance(found, dict):
        found = meta["filter"] = {}
    return found
