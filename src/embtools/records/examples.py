"""The example record of CONTRACT.md, checked field by field, and tolerant access to what its `meta` carries.

An example has `id` (string or integer), `task_type` (one of the paper's six groups), non-empty string `instruction`,
`query`, `positive`, `negative` (a non-empty string or null), `language` (a string) and `meta` (an object).
Placeholders are read from `meta.placeholders` first and from `meta` itself second, so records from emb-generate
and hand-written ones both work.
"""

from __future__ import annotations

from typing import Any

from embtools.records.jsonl import Record

TASK_TYPES = ("short-long", "long-short", "short-short", "long-long", "sts", "bitext")
TEXT_FIELDS = ("instruction", "query", "positive")
DUPLICATE_FIELDS = ("query", "positive")  # the fields whose texts make two examples duplicates, unless told otherwise
SCHEMA = "schema"


def schema_problem(record: Record) -> str | None:
    """Why the record is not a CONTRACT example (`schema: field "query" is empty`), or None when it is one."""
    record_id = record.get("id")
    if isinstance(record_id, bool) or not isinstance(record_id, (str, int)):
        return f'{SCHEMA}: field "id" must be a string or an integer'
    if record.get("task_type") not in TASK_TYPES:
        return f'{SCHEMA}: field "task_type" must be one of {", ".join(TASK_TYPES)}'
    for name in TEXT_FIELDS:
        if not _non_empty(record.get(name)):
            return f'{SCHEMA}: field "{name}" must be a non-empty string'
    negative = record.get("negative")
    if negative is not None and not _non_empty(negative):
        return f'{SCHEMA}: field "negative" must be a non-empty string or null'
    if not isinstance(record.get("language"), str):
        return f'{SCHEMA}: field "language" must be a string'
    if not isinstance(record.get("meta", {}), dict):
        return f'{SCHEMA}: field "meta" must be an object'
    return None


def _non_empty(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def text(record: Record, field: str) -> str:
    """A text field, or "" when it is missing or not a string (checks run even with the schema check off)."""
    value = record.get(field)
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
