"""Is each text of an example text of the kind the prompt asked for, and not something standing in for it?

Small generators often fill the JSON keys with a stand-in: a URL or a file name (`https://example.com/your_domain/
user_query.json`, `sample_input.json`), a template slot (`<query>`, `{query}`, `[insert query here]`), a slot code
(`S1`, `A1`, `T2`), the key's own name (`user_query`, `your_positive_document`, `Document 1`), an identifier
(`weather_news`), a text with no letters at all (`1234567890`, `2020-01-01 2020-01-01`) or a filler (`N/A`, `None`).
Each rule looks at the whole text (a document that merely contains a URL is text), except the template slots, which
count anywhere. Labels (long-short's `positive` and `negative`) are short strings by nature, so they are held only to
the rules that no real label meets: URLs, file names, template slots and the key's name as an identifier
(`correct_label`); a label may be "None", "A1" or "positive".
"""

from __future__ import annotations

import re
from functools import lru_cache

from embtools.generate.prompt_templates import FIELD_MAPPINGS
from embtools.records.examples import negatives
from embtools.records.jsonl import Record

PLACEHOLDER = "placeholder"

_URL = re.compile(r"(?:[a-z][a-z0-9+.-]*://|www\.|example\.(?:com|org|net)\b)\S*", re.IGNORECASE)  # RFC 2606
_EXTENSIONS = "json|jsonl|txt|csv|tsv|xml|pdf|docx?|xlsx?|pptx?|png|jpe?g|gif"  # not js, md, py: also names of things
_FILE = re.compile(r"(?=\S*[a-z])(?:%s)" % "|".join([
    rf"\S*\w\.(?:{_EXTENSIONS})",  # sample_input.json, a.txt
    r"(?:~|\.{1,2})?/\S+",  # /data/input, ./input
    r"[\w.-]+(?:/[\w.-]+){2,}/?",  # path/to/input
]), re.IGNORECASE)
_SLOT = re.compile(r"(?:\{\{?|\[|<)\s*(\w+)\s*(?:\}\}?|\]|>)")  # {query}, [query_field], <user_query>
_INSERT = re.compile(r"\[(?:insert|your|enter|add|fill in|placeholder)\b[^\]]*\]", re.IGNORECASE)
_BRACKETED = re.compile(r"<[^<>]*>|\{[^{}]*\}|\[[^\[\]]*\]")
_IDENTIFIER = re.compile(r"[\w.-]*[a-z][\w.-]*_[\w.-]+", re.IGNORECASE)
_CODE = re.compile(r"[a-z]{1,2}\d{1,4}")  # a token: s1, a111, t2
_LETTER = re.compile(r"[^\W\d_]\W?")  # a whole text of one letter: A, B:
_FILLERS = {"n/a", "na", "none", "null", "nil", "undefined", "tbd", "todo", "placeholder", "lorem ipsum"}
_NAME_WORDS = 6  # the most words of a slot name ("the user's hard negative document"); longer is text
# Words that surround a key's name in a stand-in ("your_input", "the user's positive document", "Sentence 3").
_SLOT_WORDS = {"the", "a", "an", "your", "my", "user", "users", "s", "sample", "example", "same", "this", "here",
               "insert", "enter", "first", "second", "third"}
_NOUNS = {"query", "document", "doc", "input", "output", "text", "label", "sentence", "passage", "paragraph",
          "data", "premise", "hypothesis", "item", "title", "answer", "string", "value", "field", "lorem", "ipsum"}


@lru_cache(maxsize=1)
def _keys() -> frozenset[str]:
    """The generate prompts' JSON keys as words (user_query -> "user query"), from their one list."""
    return frozenset(" ".join(key.lower().split("_")) for mapping in FIELD_MAPPINGS.values() for key in mapping.keys)


@lru_cache(maxsize=1)
def _names() -> frozenset[str]:
    return frozenset(_NOUNS | {word for key in _keys() for word in key.split()})


def _slot_name(word: str) -> bool:
    """A bracketed word names a slot when it is snake_case or a key's name: {query}, [query_field], [field1]; an
    abbreviation or a formula part is not ([FEV1], {beta}, {CI})."""
    return "_" in word.strip("_") or word.casefold().rstrip("0123456789") in _names()


def _stand_in(value: str) -> str | None:
    """What the whole of `value` is instead of text ("a URL", ...), by the rules every field is held to."""
    if _URL.fullmatch(value):
        return "a URL"
    if _FILE.fullmatch(value):
        return "a file name"
    if _BRACKETED.fullmatch(value) or _INSERT.search(value) or any(map(_slot_name, _SLOT.findall(value))):
        return "a template slot"
    return None


def _tokens(value: str) -> list[str]:
    return re.sub(r"[^\w]+|_", " ", value.casefold().replace("'s", " s")).split()


def _key_name(value: str) -> bool:
    """`value` names a slot instead of filling it: a key's name (user_query, the user's input, your_positive_document),
    slot codes (S1, A111, Same S1), or a noun with a number (Document 1, Sentence 3)."""
    if len(value.split(maxsplit=_NAME_WORDS)) > _NAME_WORDS:
        return False
    every = _tokens(value)
    tokens = [t for t in every if t not in _SLOT_WORDS]
    rest = [t for t in tokens if not t.isdigit()]
    if not rest:
        return False
    return (" ".join(t for t in every if not t.isdigit()) in _keys() or " ".join(rest) in _keys()
            or all(_CODE.fullmatch(t) for t in rest) or len(rest) < len(tokens) and all(t in _NOUNS for t in rest))


def text_problem(value: str) -> str | None:
    """Why `value` (a query, document or sentence) is not text of the kind asked for, or None when it is."""
    value = value.strip()
    if not any(ch.isalpha() for ch in value):
        return "has no letters"
    found = _stand_in(value)
    if found:
        return f"is {found}"
    if value.casefold() in _FILLERS:
        return f"is the filler {value!r}"
    if _key_name(value) or _LETTER.fullmatch(value):
        return "is a field name or a slot code"
    if _IDENTIFIER.fullmatch(value):
        return "is an identifier"
    return None


def label_problem(value: str) -> str | None:
    """Why `value` (a long-short label) stands in for a label, or None: only what no real label looks like."""
    value = value.strip()
    found = _stand_in(value)
    if found:
        return f"is {found}"
    if _IDENTIFIER.fullmatch(value) and _NOUNS.intersection(_tokens(value)):
        return "is a field name"
    return None


class ContentCheck:
    """Callable: an example -> `placeholder: <field> <problem>` for the first text that stands in for one, or None."""

    name = "content"

    def __call__(self, record: Record) -> str | None:
        labels = record.get("task_type") == "long-short"
        texts = [("query", record.get("query"), False), ("positive", record.get("positive"), labels)]
        texts += [("negative", negative, labels) for negative in negatives(record)]
        for field, value, is_label in texts:
            if isinstance(value, str) and value.strip():
                problem = label_problem(value) if is_label else text_problem(value)
                if problem:
                    return f"{PLACEHOLDER}: {field} {problem}"
        return None
