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

# one group a script; a letter of the Common script used with it (the kana length mark "ー") belongs to its run
_RUN = regex.compile("|".join(f"((?:\\p{{Script={code}}}|(?=\\p{{L}})\\p{{Script_Extensions={code}}})+)"
                              for code in UNSPACED_SCRIPTS))
_CHARS_PER_WORD = tuple(UNSPACED_SCRIPTS.values())
_LETTER_OR_DIGIT = regex.compile(r"[\p{L}\p{N}]")


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
    words = sum(len(run.group()) / _CHARS_PER_WORD[run.lastindex - 1] for run in _RUN.finditer(text))
    words += sum(1 for token in _RUN.sub(" ", text).split() if _LETTER_OR_DIGIT.search(token))
    return math.floor(words + 0.5)
