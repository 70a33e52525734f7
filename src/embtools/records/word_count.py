"""How many words a text has, counted the way a person asked for "at least 300 words" would count them, in every
script of the XLM-R languages (src/embtools/languages.py gives each language its ISO 15924 script).

Most scripts put spaces between words, and there a word is a whitespace-separated token (`len(text.split())`).
Chinese, Japanese, Thai, Lao, Khmer and Burmese are written without spaces between words (Thai, Lao, Khmer and
Burmese put spaces between phrases or sentences), so a whitespace count calls a 300-word Chinese document a handful
of words. For those scripts a run of the script's characters counts as its length in code points divided by the
script's average word length, the number of words a word segmenter would find; a text mixing scripts counts each run
by its own rule, and the remaining tokens that hold a letter or digit count one each (a lone "。" is not a word).
A text with no character of an unspaced script is counted by whitespace, exactly as before.
"""

from __future__ import annotations

import math
from functools import lru_cache

import regex

# ISO 15924 code -> average code points a word. Marks (Thai vowels and tones, Myanmar medials) are code points of
# their script and count. The averages estimate the word lengths that dictionary segmenters (jieba, MeCab short
# units, PyThaiNLP newmm, LaoNLP, khmer-nltk, myWord) give in running text: Chinese words are mostly one or two
# characters (about 1.6-1.8 on average), Japanese short units about as long; Thai, Lao, Khmer and Burmese words are
# one or two syllables of two to four code points each. Measured on the hand-segmented passages of
# tests/fixtures/script_passages.json: Chinese 1.85 (Simplified) and 1.79 (Traditional), Japanese 1.66, Thai 4.96,
# Lao 3.97, Khmer 4.93, Burmese 4.66 code points a word.
UNSPACED_SCRIPTS: dict[str, float] = {"Hani": 1.75, "Hira": 1.75, "Kana": 1.75, "Thai": 4.75, "Laoo": 4.6,
                                      "Khmr": 5.2, "Mymr": 4.6}
# ISO 15924 codes that name a combination of scripts (Unicode has no such script property)
SCRIPT_PARTS: dict[str, tuple[str, ...]] = {"Hans": ("Hani",), "Hant": ("Hani",), "Jpan": ("Hani", "Hira", "Kana"),
                                            "Kore": ("Hang", "Hani")}

# A run of unspaced-script characters; "ー" and "ｰ", the kana length marks, are of the Common script but part of words
_RUN = regex.compile("[" + "".join(f"\\p{{Script={code}}}" for code in UNSPACED_SCRIPTS) + "\u30fc\uff70]+")
_SCRIPTS = tuple((regex.compile(f"\\p{{Script={code}}}"), ratio) for code, ratio in UNSPACED_SCRIPTS.items())


def written_without_spaces(script: str) -> bool:
    """Is a language written in this ISO 15924 script counted by characters (all of its parts unspaced)?"""
    return all(part in UNSPACED_SCRIPTS for part in SCRIPT_PARTS.get(script, (script,)))


def whitespace_word_count(text: str) -> int:
    """Whitespace-separated words (`len(text.split())`), the count for scripts that space their words."""
    if text.isprintable():  # its only whitespace is " ": count the gaps instead of building a list of words
        inner = text.strip(" ")
        if "  " not in inner:
            return inner.count(" ") + 1 if inner else 0
    return len(text.split())


def word_count(text: str) -> int:
    """The words of a text in any script: whitespace tokens, and runs of unspaced scripts by characters per word."""
    if text.isascii() or not _RUN.search(text):
        return whitespace_word_count(text)
    words, gaps, end = 0.0, [], 0
    for run in _RUN.finditer(text):
        words += len(run.group()) / _chars_per_word(run.group()[0])
        gaps.append(text[end:run.start()])
        end = run.end()
    gaps.append(text[end:])
    return math.floor(words + _spaced_words(" ".join(gaps)) + 0.5)


@lru_cache(maxsize=4096)
def _chars_per_word(first: str) -> float:
    """The average word length of the script a run starts in (a run of length marks counts as kana)."""
    return next((ratio for script, ratio in _SCRIPTS if script.match(first)), UNSPACED_SCRIPTS["Kana"])


def _spaced_words(text: str) -> int:
    """The tokens between unspaced runs that hold a letter or digit (punctuation alone is no word)."""
    return sum(1 for token in text.split() if any(map(str.isalnum, token)))
