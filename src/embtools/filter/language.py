"""Is an example in the language it was asked for? Offline language identification with py3langid.

py3langid (a maintained fork of langid.py, MIT) ships its naive-Bayes model inside the wheel and needs no network.
The paper samples `{language}` from the XLM-R list by name ("English", "Chinese (Simplified)"); that list's table
(embtools.languages) maps the names to the ISO 639-1 codes py3langid answers with. A text is rejected only when the
identifier is confident (`min_confidence`) that it is in another language: short texts and labels, languages the
model does not know and romanized variants are not checked. Close pairs the identifier confuses (Malay/Indonesian,
Bosnian/Croatian/Serbian, Norwegian/Danish) count as the same language.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from embtools.filter import defaults
from embtools.languages import iso_code
from embtools.records.examples import placeholder, text
from embtools.records.jsonl import Record

LANGUAGE = "language"

_SAME_LANGUAGE = [{"ms", "id"}, {"bs", "hr", "sr"}, {"no", "nb", "nn", "da"}, {"zh", "yue", "wuu"}]
_FIELDS_BY_SIDE = {"query": "src_lang", "positive": "tgt_lang", "negative": "tgt_lang"}


def same_language(expected: str, found: str) -> bool:
    return expected == found or any(expected in group and found in group for group in _SAME_LANGUAGE)


@lru_cache(maxsize=1)
def identifier():
    """py3langid's identifier with normalized probabilities (loading its model takes a second or two: once)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@dataclass
class LanguageSettings:
    min_confidence: float = defaults.LANGUAGE_CONFIDENCE
    min_chars: int = 20
    max_chars: int = 600  # the identifier reads the first characters only: enough to decide, and fast


class LanguageCheck:
    """Callable: a record -> `language: positive looks like de (0.98), asked en` or None."""

    name = "language"

    def __init__(self, settings: LanguageSettings | None = None):
        self.settings = settings or LanguageSettings()
        self.identifier = identifier()
        self.known = set(self.identifier.labels)
        self.unchecked: Counter[str] = Counter()

    def __call__(self, record: Record) -> str | None:
        for field in ("query", "positive", "negative"):
            expected = self._expected(record, field)
            if expected is None:
                continue
            sample = text(record, field)[:self.settings.max_chars]
            if len(sample.strip()) < self.settings.min_chars:
                continue
            found, confidence = self.identifier.classify(sample)
            if confidence >= self.settings.min_confidence and not same_language(expected, found):
                return f"{LANGUAGE}: {field} looks like {found} ({confidence:.2f}), asked {expected}"
        return None

    def _expected(self, record: Record, field: str) -> str | None:
        """The ISO code the field should be in: bitext sides by src_lang / tgt_lang, everything else by language."""
        name = placeholder(record, _FIELDS_BY_SIDE[field]) if record.get("task_type") == "bitext" else None
        name = name or record.get("language") or placeholder(record, "language")
        code = iso_code(name)
        if code is None or code not in self.known:
            self.unchecked[f"language {name!r} not identifiable"] += 1
            return None
        return code
