"""The 100 languages of XLM-R's pretraining corpus CC-100, with their data size in GiB.

Source: Conneau et al. 2020, "Unsupervised Cross-lingual Representation Learning at Scale" (arXiv:1911.02116),
Appendix A, Table 6, as transcribed in mayhewsw/multilingual-data-stats `cc-100/cc-100.csv` (commit 7397902d), with
the Swedish and Ukrainian rows corrected as the authors confirmed.
Two rows are Burmese (one is the Zawgyi-font variant), both Chinese rows have code `zh`, and the five romanized
variants have no code (`-`): match those by name. Each row also names its ISO 15924 script, the one most of the
language's web text uses (Serbian: Cyrillic, though Latin is common too; both Burmese rows: Myanmar, Zawgyi being a
font encoding of the same block). records/word_count.py counts words by the script of each run of text, not by
this column; the column says which languages that rule counts by characters (docs/filter.md lists them).

This table is the one place the list lives: emb-generate samples `{language}` from it (weighted by size) and
emb-filter's language check maps the sampled names to the ISO codes its identifier answers with.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

ROMANIZED = "-"  # the code of the five romanized variants, which have none


class Language(NamedTuple):
    name: str
    iso: str  # ISO 639-1, or ROMANIZED
    gib: float  # CC-100 data size in GiB
    script: str  # ISO 15924: the script CC-100's text of the language is written in (Hans, Jpan, Mymr, ...)


XLMR_LANGUAGES: tuple[Language, ...] = (
    Language("English", "en", 300.8, "Latn"),
    Language("Vietnamese", "vi", 137.3, "Latn"),
    Language("Russian", "ru", 278, "Cyrl"),
    Language("Indonesian", "id", 148.3, "Latn"),
    Language("Persian", "fa", 111.6, "Arab"),
    Language("Swedish", "sv", 85, "Latn"),
    Language("Romanian", "ro", 61.4, "Latn"),
    Language("German", "de", 66.6, "Latn"),
    Language("French", "fr", 56.8, "Latn"),
    Language("Spanish", "es", 53.3, "Latn"),
    Language("Norwegian", "no", 49, "Latn"),
    Language("Portuguese", "pt", 49.1, "Latn"),
    Language("Danish", "da", 45.6, "Latn"),
    Language("Hungarian", "hu", 58.4, "Latn"),
    Language("Ukrainian", "uk", 84.6, "Cyrl"),
    Language("Finnish", "fi", 54.3, "Latn"),
    Language("Polish", "pl", 44.6, "Latn"),
    Language("Korean", "ko", 54.2, "Kore"),
    Language("Bulgarian", "bg", 57.5, "Cyrl"),
    Language("Dutch", "nl", 29.3, "Latn"),
    Language("Italian", "it", 30.2, "Latn"),
    Language("Greek", "el", 46.9, "Grek"),
    Language("Slovak", "sk", 23.2, "Latn"),
    Language("Hebrew", "he", 31.6, "Hebr"),
    Language("Croatian", "hr", 20.5, "Latn"),
    Language("Arabic", "ar", 28, "Arab"),
    Language("Turkish", "tr", 20.9, "Latn"),
    Language("Czech", "cs", 16.3, "Latn"),
    Language("Lithuanian", "lt", 13.7, "Latn"),
    Language("Thai", "th", 71.7, "Thai"),
    Language("Catalan", "ca", 10.1, "Latn"),
    Language("Hindi", "hi", 20.2, "Deva"),
    Language("Slovenian", "sl", 10.3, "Latn"),
    Language("Malay", "ms", 8.5, "Latn"),
    Language("Latvian", "lv", 8.8, "Latn"),
    Language("Albanian", "sq", 5.4, "Latn"),
    Language("Estonian", "et", 6.1, "Latn"),
    Language("Serbian", "sr", 9.1, "Cyrl"),
    Language("Azerbaijani", "az", 6.5, "Latn"),
    Language("Urdu", "ur", 5.7, "Arab"),
    Language("Tamil", "ta", 12.2, "Taml"),
    Language("Filipino", "tl", 3.1, "Latn"),
    Language("Japanese", "ja", 69.3, "Jpan"),
    Language("Bengali", "bn", 8.4, "Beng"),
    Language("Icelandic", "is", 3.2, "Latn"),
    Language("Galician", "gl", 2.9, "Latn"),
    Language("Kazakh", "kk", 6.4, "Cyrl"),
    Language("Georgian", "ka", 9.1, "Geor"),
    Language("Macedonian", "mk", 4.8, "Cyrl"),
    Language("Armenian", "hy", 5.5, "Armn"),
    Language("Latin", "la", 2.5, "Latn"),
    Language("Belarusian", "be", 4.3, "Cyrl"),
    Language("Malayalam", "ml", 7.6, "Mlym"),
    Language("Swahili", "sw", 1.6, "Latn"),
    Language("Basque", "eu", 2, "Latn"),
    Language("Chinese (Simplified)", "zh", 46.9, "Hans"),
    Language("Telugu", "te", 4.7, "Telu"),
    Language("Mongolian", "mn", 3, "Cyrl"),
    Language("Sinhala", "si", 3.6, "Sinh"),
    Language("Afrikaans", "af", 1.3, "Latn"),
    Language("Nepali", "ne", 3.8, "Deva"),
    Language("Chinese (Traditional)", "zh", 16.6, "Hant"),
    Language("Marathi", "mr", 2.8, "Deva"),
    Language("Kannada", "kn", 3.3, "Knda"),
    Language("Esperanto", "eo", 0.9, "Latn"),
    Language("Welsh", "cy", 0.8, "Latn"),
    Language("Gujarati", "gu", 1.9, "Gujr"),
    Language("Pashto", "ps", 0.7, "Arab"),
    Language("Kyrgyz", "ky", 1.2, "Cyrl"),
    Language("Uzbek", "uz", 0.7, "Latn"),
    Language("Hindi Romanized", "-", 0.5, "Latn"),
    Language("Irish", "ga", 0.5, "Latn"),
    Language("Urdu Romanized", "-", 0.5, "Latn"),
    Language("Bengali Romanized", "-", 0.5, "Latn"),
    Language("Amharic", "am", 0.8, "Ethi"),
    Language("Punjabi", "pa", 0.8, "Guru"),
    Language("Kurdish (Kurmanji)", "ku", 0.4, "Latn"),
    Language("Somali", "so", 0.4, "Latn"),
    Language("Hausa", "ha", 0.3, "Latn"),
    Language("Burmese", "my", 1.6, "Mymr"),
    Language("Sindhi", "sd", 0.4, "Arab"),
    Language("Telugu Romanized", "-", 0.3, "Latn"),
    Language("Khmer", "km", 1.5, "Khmr"),
    Language("Oriya", "or", 0.6, "Orya"),
    Language("Tamil Romanized", "-", 0.3, "Latn"),
    Language("Yiddish", "yi", 0.3, "Hebr"),
    Language("Western Frisian", "fy", 0.2, "Latn"),
    Language("Uyghur", "ug", 0.4, "Arab"),
    Language("Malagasy", "mg", 0.2, "Latn"),
    Language("Javanese", "jv", 0.2, "Latn"),
    Language("Scottish Gaelic", "gd", 0.1, "Latn"),
    Language("Lao", "lo", 0.6, "Laoo"),
    Language("Sanskrit", "sa", 0.3, "Deva"),
    Language("Breton", "br", 0.1, "Latn"),
    Language("Burmese", "my", 0.4, "Mymr"),
    Language("Bosnian", "bs", 0.1, "Latn"),
    Language("Xhosa", "xh", 0.1, "Latn"),
    Language("Sundanese", "su", 0.1, "Latn"),
    Language("Oromo", "om", 0.1, "Latn"),
    Language("Assamese", "as", 0.1, "Beng"),
)

# name -> ISO code, the romanized variants left out (no identifier tells them from their script's language)
ISO_BY_NAME = {lang.name: lang.iso for lang in XLMR_LANGUAGES if lang.iso != ROMANIZED}
_ISO_BY_LOWER = {**{iso: iso for iso in ISO_BY_NAME.values()}, **{n.lower(): iso for n, iso in ISO_BY_NAME.items()}}


def cc100_sizes() -> Counter[str]:
    """Language name -> CC-100 GiB; the two Burmese rows count as one language."""
    sizes: Counter[str] = Counter()
    for lang in XLMR_LANGUAGES:
        sizes[lang.name] += lang.gib
    return sizes


def names_matching(token: str) -> set[str]:
    """The names a user's token means: its name or its ISO code, case-insensitive (`zh` names both Chinese rows)."""
    wanted = token.strip().lower()
    return {lang.name for lang in XLMR_LANGUAGES if wanted in (lang.iso.lower(), lang.name.lower())}


def iso_code(value) -> str | None:
    """The ISO code of a language name or code ("English", "english", "en"); None when unknown or romanized."""
    if not isinstance(value, str) or not value.strip():
        return None
    return _ISO_BY_LOWER.get(value.strip().lower())
