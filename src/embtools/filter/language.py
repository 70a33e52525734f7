"""Is an example in the language it was asked for? Offline language identification with py3langid.

py3langid (a maintained fork of langid.py, MIT) ships its naive-Bayes model inside the wheel and needs no network.
The paper samples `{language}` from the XLM-R list by name ("English", "Chinese (Simplified)"); NAME_TO_ISO maps
those names to the ISO 639-1 codes py3langid answers with. A text is rejected only when the identifier is confident
(`min_confidence`) that it is in another language: short texts and labels, languages the model does not know and
romanized variants are not checked. Close pairs the identifier confuses (Malay/Indonesian, Bosnian/Croatian/Serbian,
Norwegian/Danish) count as the same language.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from embtools.records.examples import placeholder, text
from embtools.records.jsonl import Record

LANGUAGE = "language"

# The XLM-R language list (Conneau et al. 2020, the list the paper samples {language} from), name -> ISO 639-1.
NAME_TO_ISO = {
    "English": "en", "Vietnamese": "vi", "Russian": "ru", "Indonesian": "id", "Persian": "fa", "Swedish": "sv",
    "Romanian": "ro", "German": "de", "French": "fr", "Spanish": "es", "Norwegian": "no", "Portuguese": "pt",
    "Danish": "da", "Hungarian": "hu", "Ukrainian": "uk", "Finnish": "fi", "Polish": "pl", "Korean": "ko",
    "Bulgarian": "bg", "Dutch": "nl", "Italian": "it", "Greek": "el", "Slovak": "sk", "Hebrew": "he",
    "Croatian": "hr", "Arabic": "ar", "Turkish": "tr", "Czech": "cs", "Lithuanian": "lt", "Thai": "th",
    "Catalan": "ca", "Hindi": "hi", "Slovenian": "sl", "Malay": "ms", "Latvian": "lv", "Albanian": "sq",
    "Estonian": "et", "Serbian": "sr", "Azerbaijani": "az", "Urdu": "ur", "Tamil": "ta", "Filipino": "tl",
    "Japanese": "ja", "Bengali": "bn", "Icelandic": "is", "Galician": "gl", "Kazakh": "kk", "Georgian": "ka",
    "Macedonian": "mk", "Armenian": "hy", "Latin": "la", "Belarusian": "be", "Malayalam": "ml", "Swahili": "sw",
    "Basque": "eu", "Chinese (Simplified)": "zh", "Telugu": "te", "Mongolian": "mn", "Sinhala": "si",
    "Afrikaans": "af", "Nepali": "ne", "Chinese (Traditional)": "zh", "Marathi": "mr", "Kannada": "kn",
    "Esperanto": "eo", "Welsh": "cy", "Gujarati": "gu", "Pashto": "ps", "Kyrgyz": "ky", "Uzbek": "uz", "Irish": "ga",
    "Amharic": "am", "Punjabi": "pa", "Kurdish (Kurmanji)": "ku", "Somali": "so", "Hausa": "ha", "Burmese": "my",
    "Sindhi": "sd", "Khmer": "km", "Oriya": "or", "Yiddish": "yi", "Western Frisian": "fy", "Uyghur": "ug",
    "Malagasy": "mg", "Javanese": "jv", "Scottish Gaelic": "gd", "Lao": "lo", "Sanskrit": "sa", "Breton": "br",
    "Burmese": "my", "Bosnian": "bs", "Xhosa": "xh", "Sundanese": "su", "Oromo": "om", "Assamese": "as",
}
_ISO_BY_LOWER_NAME = {name.lower(): iso for name, iso in NAME_TO_ISO.items()}
_ISO_CODES = set(NAME_TO_ISO.values())
_SAME_LANGUAGE = [{"ms", "id"}, {"bs", "hr", "sr"}, {"no", "nb", "nn", "da"}, {"zh", "yue", "wuu"}]
_FIELDS_BY_SIDE = {"query": "src_lang", "positive": "tgt_lang", "negative": "tgt_lang"}


def language_code(value) -> str | None:
    """An ISO code for a language name or code ("English", "english", "en"); None when unknown or romanized."""
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip().lower()
    return _ISO_BY_LOWER_NAME.get(value, value if value in _ISO_CODES else None)


def same_language(expected: str, found: str) -> bool:
    return expected == found or any(expected in group and found in group for group in _SAME_LANGUAGE)


@lru_cache(maxsize=1)
def identifier():
    """py3langid's identifier with normalized probabilities (loading its model takes a second or two: once)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@dataclass
class LanguageSettings:
    min_confidence: float = 0.9
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
        code = language_code(name)
        if code is None or code not in self.known:
            self.unchecked[f"language {name!r} not identifiable"] += 1
            return None
        return code
