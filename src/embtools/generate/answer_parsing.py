"""Strict parsing of what an LLM wrote: a JSON object with required string keys, or a list of strings.

Code fences and prose around the JSON are stripped; what remains must parse (JSON, or for lists a Python literal via
`ast.literal_eval`, never `eval`). Anything else raises `OutputRejected` with a reason code that emb-generate counts
and writes to `--rejects`:

- `empty_response`: no content at all; `truncated`: unparseable and the model stopped at its token limit;
- `parse_error`: no JSON object / list could be read; `not_an_object` / `not_a_list`: the wrong JSON type;
- `missing_key`: a required key is absent; `not_a_string`: a value is not a string; `empty_value`: only whitespace;
- `empty_list`: a list with no non-empty strings;
- `schema`: the example record made from the answer fails records.examples.example_problem.
"""

from __future__ import annotations

import ast
import json
import re

_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)(?:```|$)", re.DOTALL)


class OutputRejected(Exception):
    """Model output that cannot become a record; `reason` is a short code, `detail` a human explanation."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


def strip_fences(text: str) -> str:
    """The inside of the first ``` code fence when there is one, else the text itself."""
    match = _FENCE.search(text)
    return match.group(1) if match else text


def _span(text: str, opening: str, closing: str) -> str | None:
    start, end = text.find(opening), text.rfind(closing)
    return text[start:end + 1] if start != -1 and end > start else None


def _check_content(content: str | None) -> str:
    if content is None or not content.strip():
        raise OutputRejected("empty_response", "the model returned no text")
    return strip_fences(content)


def parse_json_object(content: str | None, required_keys: tuple[str, ...], truncated: bool = False) -> dict:
    """The JSON object in `content`, with every required key holding a non-empty string."""
    text = _check_content(content)
    span = _span(text, "{", "}")
    try:
        value = json.loads(span if span is not None else text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than Python's stack
        raise OutputRejected("truncated" if truncated else "parse_error", str(exc)[:200]) from None
    if not isinstance(value, dict):
        raise OutputRejected("not_an_object", f"got {type(value).__name__}")
    for key in required_keys:
        if key not in value:
            raise OutputRejected("missing_key", f'"{key}"')
        if not isinstance(value[key], str):
            raise OutputRejected("not_a_string", f'"{key}" is {type(value[key]).__name__}')
        if not value[key].strip():
            raise OutputRejected("empty_value", f'"{key}"')
    return value


def parse_string_list(content: str | None, truncated: bool = False) -> list[str]:
    """The list of strings in `content` (JSON or a Python list literal), stripped, empty items dropped."""
    text = _check_content(content)
    span = _span(text, "[", "]") or text
    value = _literal(span)
    if value is None:
        raise OutputRejected("truncated" if truncated else "parse_error", "no JSON or Python list")
    if not isinstance(value, list):
        raise OutputRejected("not_a_list", f"got {type(value).__name__}")
    items = [item.strip() for item in value if isinstance(item, str) and item.strip()]
    if not items:
        raise OutputRejected("empty_list", f"{len(value)} items, none a non-empty string")
    return items


def _literal(text: str):
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
