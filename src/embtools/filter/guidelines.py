"""Does an example follow the prompt it was generated from? Checks driven by the placeholders in its `meta`.

The generation prompts (paper, Tables 8-13) ask for documents of at least {num_words} words, a query of a
{query_length} bucket, very short short-short texts, long-long texts of at least 300 words, S2 != S3 for STS and
bitext, a misleading label different from the label, no query copied verbatim into the document, and no label
inside the input text. A check whose placeholder is absent is counted as not checked, never as a reject.
Lengths are words as records/word_count.py counts them (by characters in the scripts written without spaces);
`tolerance` widens every bound (0.3: a 300-word ask passes at 210 words).
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from embtools.filter import defaults
from embtools.records.examples import negatives, placeholder, text
from embtools.records.jsonl import Record
from embtools.records.text_keys import match_key, words
from embtools.records.word_count import word_count

NUM_WORDS, QUERY_LENGTH, NOT_SHORT, NOT_LONG = ("guideline-num-words", "guideline-query-length",
                                                "guideline-not-short", "guideline-not-long")
SAME_S2_S3, SAME_LABELS, QUERY_COPIED, LABEL_IN_INPUT = ("guideline-same-s2-s3", "guideline-same-labels",
                                                         "guideline-query-copied", "guideline-label-in-input")

_BUCKET = re.compile(r"(less than|fewer than|under|at most|at least|more than|over)?\s*(\d+(?:\.\d+)?)"
                     r"(?:\s*(?:to|-|–)\s*(\d+(?:\.\d+)?))?")
_UPPER_ONLY = ("less than", "fewer than", "under", "at most")
COPY_MIN_QUERY_WORDS = 3  # a one- or two-word query inside its document is normal, not copying


def word_range(value) -> tuple[float, float] | None:
    """A placeholder's word bounds: 300 -> (300, inf); "less than 10" -> (0, 10); "5 to 15 words" -> (5, 15)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value), math.inf
    found = _BUCKET.search(str(value).lower())
    if not found:
        return None
    qualifier, first, second = found.group(1), float(found.group(2)), found.group(3)
    if second is not None:
        return first, float(second)
    if qualifier in _UPPER_ONLY:
        return 0.0, first
    return first, math.inf


@dataclass
class GuidelineSettings:
    tolerance: float = defaults.LENGTH_TOLERANCE
    short_max_words: int = defaults.SHORT_MAX_WORDS
    long_min_words: int = 300


class GuidelineCheck:
    """Callable: a record -> the first guideline it breaks (`guideline-...: detail`) or None.

    `unchecked` counts the checks skipped because a placeholder was missing or unreadable."""

    name = "guidelines"

    def __init__(self, settings: GuidelineSettings | None = None):
        self.settings = settings or GuidelineSettings()
        self.unchecked: Counter[str] = Counter()
        self._by_type = {"short-long": [self._document_length, self._query_length, self._query_copied],
                         "long-short": [self._input_length, self._same_labels, self._label_in_input],
                         "short-short": [self._short, self._query_copied],
                         "long-long": [self._long, self._query_copied],
                         "sts": [self._same_s2_s3, self._query_equals_positive],
                         "bitext": [self._same_s2_s3, self._query_equals_positive]}

    def __call__(self, record: Record) -> str | None:
        for check in self._by_type.get(record.get("task_type"), ()):
            reason = check(record)
            if reason:
                return reason
        return None

    def _bounds(self, record: Record, name: str) -> tuple[float, float] | None:
        value = placeholder(record, name)
        bounds = word_range(value)
        if bounds is None:
            self.unchecked[f"{name} {'missing' if value is None else 'unreadable'}"] += 1
            return None
        low, high = bounds
        return low * (1 - self.settings.tolerance), high * (1 + self.settings.tolerance)

    def _document_length(self, record: Record) -> str | None:
        bounds = self._bounds(record, "num_words")
        if bounds is None:
            return None
        documents = [("positive", text(record, "positive"))] if record.get("positive") is not None else []
        for field, value in documents + [("negative", negative) for negative in negatives(record)]:
            count = word_count(value)
            if count < bounds[0]:
                return f"{NUM_WORDS}: {field} has {count} words, asked {placeholder(record, 'num_words')}"
        return None

    def _within(self, record: Record, name: str, field: str, reason: str) -> str | None:
        bounds = self._bounds(record, name)
        if bounds is None:
            return None
        count = word_count(text(record, field))
        if not bounds[0] <= count <= bounds[1]:
            return f"{reason}: {field} has {count} words, asked {placeholder(record, name)}"
        return None

    def _query_length(self, record: Record) -> str | None:
        return self._within(record, "query_length", "query", QUERY_LENGTH)

    def _input_length(self, record: Record) -> str | None:
        return self._within(record, "num_words", "query", NUM_WORDS)

    def _short(self, record: Record) -> str | None:
        for field in ("query", "positive"):
            count = word_count(text(record, field))
            if count > self.settings.short_max_words * (1 + self.settings.tolerance):
                return f"{NOT_SHORT}: {field} has {count} words (a sentence or a phrase asked)"
        return None

    def _long(self, record: Record) -> str | None:
        for field in ("query", "positive"):
            count = word_count(text(record, field))
            if count < self.settings.long_min_words * (1 - self.settings.tolerance):
                return f"{NOT_LONG}: {field} has {count} words (at least {self.settings.long_min_words} asked)"
        return None

    def _same_s2_s3(self, record: Record) -> str | None:
        return f"{SAME_S2_S3}: S2 and S3 are the same text" if _negative_is_positive(record) else None

    def _same_labels(self, record: Record) -> str | None:
        return f"{SAME_LABELS}: label and misleading label are the same" if _negative_is_positive(record) else None

    def _label_in_input(self, record: Record) -> str | None:
        input_text = text(record, "query").casefold()
        for field, what in (("positive", "label"), ("negative", "misleading label")):
            label_words = words(text(record, field))
            if (record.get(field) is not None and label_words and all(w in input_text for w in label_words)
                    and _phrase_pattern(tuple(label_words)).search(input_text)):  # the cheap test first
                return f"{LABEL_IN_INPUT}: the {what} appears in the input text"
        return None

    def _query_equals_positive(self, record: Record) -> str | None:
        if match_key(text(record, "query")) == match_key(text(record, "positive")):
            return f"{QUERY_COPIED}: the query and the positive are the same text"
        return None

    def _query_copied(self, record: Record) -> str | None:
        query = text(record, "query")
        if word_count(query) >= COPY_MIN_QUERY_WORDS:
            key = match_key(query).strip(string.punctuation)
            if key and key in match_key(text(record, "positive")):
                return f"{QUERY_COPIED}: the query appears verbatim in the positive"
        return self._query_equals_positive(record)


def _negative_is_positive(record: Record) -> bool:
    """The record has a negative (any one of a list) that is the same text as its positive."""
    positive = match_key(text(record, "positive"))
    return any(match_key(negative) == positive for negative in negatives(record))


@lru_cache(maxsize=4096)
def _phrase_pattern(phrase: tuple[str, ...]) -> re.Pattern:
    """The words of a label as a whole-word pattern, any punctuation or spacing between them."""
    return re.compile(r"(?<!\w)" + r"\W+".join(map(re.escape, phrase)) + r"(?!\w)")
