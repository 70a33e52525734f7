"""The 100 languages of XLM-R's pretraining corpus CC-100, with their data size in GiB.

Source: Conneau et al. 2020, "Unsupervised Cross-lingual Representation Learning at Scale" (arXiv:1911.02116),
Appendix A, Table 6, as transcribed in mayhewsw/multilingual-data-stats `cc-100/cc-100.csv` (commit 7397902d), with
the Swedish and Ukrainian rows corrected as the authors confirmed.
Two rows are Burmese (one is the Zawgyi-font variant), both Chinese rows have code `zh`, and the five romanized
variants have no code (`-`): match those by name.

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


XLMR_LANGUAGES: tuple[Language, ...] = (
    Language("English", "en", 300.8),
    Language("Vietnamese", "vi", 137.3),
    Language("Russian", "ru", 278),
    Language("Indonesian", "id", 148.3),
    Language("Persian", "fa", 111.6),
    Language("Swedish", "sv", 85),
    Language("Romanian", "ro", 61.4),
    Language("German", "de", 66.6),
    Language("French", "fr", 56.8),
    Language("Spanish", "es", 53.3),
    Language("Norwegian", "no", 49),
    Language("Portuguese", "pt", 49.1),
    Language("Danish", "da", 45.6),
    Language("Hungarian", "hu", 58.4),
    Language("Ukrainian", "uk", 84.6),
    Language("Finnish", "fi", 54.3),
    Language("Polish", "pl", 44.6),
    Language("Korean", "ko", 54.2),
    Language("Bulgarian", "bg", 57.5),
    Language("Dutch", "nl", 29.3),
    Language("Italian", "it", 30.2),
    Language("Greek", "el", 46.9),
    Language("Slovak", "sk", 23.2),
    Language("Hebrew", "he", 31.6),
    Language("Croatian", "hr", 20.5),
    Language("Arabic", "ar", 28),
    Language("Turkish", "tr", 20.9),
    Language("Czech", "cs", 16.3),
    Language("Lithuanian", "lt", 13.7),
    Language("Thai", "th", 71.7),
    Language("Catalan", "ca", 10.1),
    Language("Hindi", "hi", 20.2),
    Language("Slovenian", "sl", 10.3),
    Language("Malay", "ms", 8.5),
    Language("Latvian", "lv", 8.8),
    Language("Albanian", "sq", 5.4),
    Language("Estonian", "et", 6.1),
    Language("Serbian", "sr", 9.1),
    Language("Azerbaijani", "az", 6.5),
    Language("Urdu", "ur", 5.7),
    Language("Tamil", "ta", 12.2),
    Language("Filipino", "tl", 3.1),
    Language("Japanese", "ja", 69.3),
    Language("Bengali", "bn", 8.4),
    Language("Icelandic", "is", 3.2),
    Language("Galician", "gl", 2.9),
    Language("Kazakh", "kk", 6.4),
    Language("Georgian", "ka", 9.1),
    Language("Macedonian", "mk", 4.8),
    Language("Armenian", "hy", 5.5),
    Language("Latin", "la", 2.5),
    Language("Belarusian", "be", 4.3),
    Language("Malayalam", "ml", 7.6),
    Language("Swahili", "sw", 1.6),
    Language("Basque", "eu", 2),
    Language("Chinese (Simplified)", "zh", 46.9),
    Language("Telugu", "te", 4.7),
    Language("Mongolian", "mn", 3),
    Language("Sinhala", "si", 3.6),
    Language("Afrikaans", "af", 1.3),
    Language("Nepali", "ne", 3.8),
    Language("Chinese (Traditional)", "zh", 16.6),
    Language("Marathi", "mr", 2.8),
    Language("Kannada", "kn", 3.3),
    Language("Esperanto", "eo", 0.9),
    Language("Welsh", "cy", 0.8),
    Language("Gujarati", "gu", 1.9),
    Language("Pashto", "ps", 0.7),
    Language("Kyrgyz", "ky", 1.2),
    Language("Uzbek", "uz", 0.7),
    Language("Hindi Romanized", "-", 0.5),
    Language("Irish", "ga", 0.5),
    Language("Urdu Romanized", "-", 0.5),
    Language("Bengali Romanized", "-", 0.5),
    Language("Amharic", "am", 0.8),
    Language("Punjabi", "pa", 0.8),
    Language("Kurdish (Kurmanji)", "ku", 0.4),
    Language("Somali", "so", 0.4),
    Language("Hausa", "ha", 0.3),
    Language("Burmese", "my", 1.6),
    Language("Sindhi", "sd", 0.4),
    Language("Telugu Romanized", "-", 0.3),
    Language("Khmer", "km", 1.5),
    Language("Oriya", "or", 0.6),
    Language("Tamil Romanized", "-", 0.3),
    Language("Yiddish", "yi", 0.3),
    Language("Western Frisian", "fy", 0.2),
    Language("Uyghur", "ug", 0.4),
    Language("Malagasy", "mg", 0.2),
    Language("Javanese", "jv", 0.2),
    Language("Scottish Gaelic", "gd", 0.1),
    Language("Lao", "lo", 0.6),
    Language("Sanskrit", "sa", 0.3),
    Language("Breton", "br", 0.1),
    Language("Burmese", "my", 0.4),
    Language("Bosnian", "bs", 0.1),
    Language("Xhosa", "xh", 0.1),
    Language("Sundanese", "su", 0.1),
    Language("Oromo", "om", 0.1),
    Language("Assamese", "as", 0.1),
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
