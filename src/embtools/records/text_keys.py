"""When two texts are "the same text", and how stages compare texts: normalized keys, word tokens, 64-bit digests.

One rule, used by every stage that asks: emb-filter's exact-duplicate, guideline, decontamination and mining checks,
and the loss's false-negative mask in emb-train. The paper's duplicate and contamination analysis disregards
"differences in character case and spacing" (App. B), so `match_key` is the text
- under NFKC, so that compatibility forms read alike are alike (a no-break space is a space, full-width letters
  and ligatures are their plain letters);
- case-folded (not only lower-cased: "Straße" and "STRASSE" are the same text);
- with every run of whitespace collapsed to one space and the ends stripped.
Spacing means how much whitespace, not whether there is any: "a part" and "apart", "foo bar" and "foobar" are
different texts, so whitespace is collapsed, never removed. Punctuation is kept: the paper does not disregard it,
and "Let's eat, grandma" is not "Let's eat grandma". `words` splits the case-folded text into word tokens (runs of
letters and digits), the unit of shingles and n-grams (length checks count words with records/word_count.py).
Digests are the first 8 bytes of BLAKE2b, so state that outlives a record holds integers, never texts.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache

import numpy as np

_WORD = re.compile(r"\w+")


@lru_cache(maxsize=64)
def match_key(text: str) -> str:
    """The text as "the same text" is decided: NFKC, case-folded, whitespace runs collapsed to one space, stripped.
    Cached for the last few texts: the guideline, duplicate and decontamination checks each ask for the same
    record's fields in turn."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    # isprintable() is false for every whitespace character but " ": a printable text is already collapsed when it
    # has no double space and no space at either end
    if folded.isprintable() and "  " not in folded and folded[:1] != " " and folded[-1:] != " ":
        return folded
    return " ".join(folded.split())


def digest64(text: str) -> int:
    """A stable 64-bit digest of a string (BLAKE2b), the same in every process and on every machine."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def key_digest(text: str) -> int:
    """digest64 of match_key(text): equal for the same text (see the module's docstring)."""
    return digest64(match_key(text))


def signed_key_digest(text: str) -> int:
    """key_digest without its top bit, so that it fits a signed 64-bit tensor (torch.long) and is never negative
    (the loss marks a missing text with -1)."""
    return key_digest(text) >> 1


def words(text: str) -> list[str]:
    """Case-folded word tokens (runs of letters, digits and underscores); punctuation and spacing are dropped."""
    return _WORD.findall(text.casefold())


# A byte belongs to a word when it is an ASCII letter or digit, or part of a multi-byte UTF-8 character.
_WORD_BYTE = np.zeros(256, dtype=bool)
_WORD_BYTE[[*range(ord("0"), ord("9") + 1), *range(ord("a"), ord("z") + 1), *range(ord("A"), ord("Z") + 1), 95]] = True
_WORD_BYTE[128:] = True
_POSITION_KEYS = np.random.default_rng(20240101).integers(1, 2**63, size=64, dtype=np.uint64) | np.uint64(1)
_MIX = np.uint64(0x9E3779B97F4A7C15)


def token_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Stable 64-bit hashes of the case-folded word tokens of many texts at once, vectorized with numpy.

    Returns (hashes, counts): the tokens of all texts in order, and how many belong to each text. A token is a run of
    ASCII letters, digits, underscores or non-ASCII characters (so punctuation and spacing never change a token). The
    hash of a token is a sum over its bytes of (byte + 1) x a fixed odd key per position, then mixed: the same token
    has the same hash in every process.
    """
    parts = [t.casefold().encode("utf-8", "surrogatepass") for t in texts]
    data = np.frombuffer(b" ".join(parts) + b" ", dtype=np.uint8)
    is_word = _WORD_BYTE[data]
    is_start = is_word & ~np.concatenate(([False], is_word[:-1]))
    starts = np.flatnonzero(is_start)
    inside = np.flatnonzero(is_word)
    token_of_byte = np.cumsum(is_start, dtype=np.int32)[inside] - 1
    position = (inside - starts[token_of_byte]) & 63
    contributions = (data[inside].astype(np.uint64) + np.uint64(1)) * _POSITION_KEYS[position]
    # where each token's first byte sits among the word bytes
    first_byte = (np.cumsum(is_word, dtype=np.int32) - 1)[starts]
    hashes = np.add.reduceat(contributions, first_byte) if len(inside) else np.zeros(0, dtype=np.uint64)
    hashes = (hashes ^ (hashes >> np.uint64(29))) * _MIX
    text_ends = np.cumsum([len(part) + 1 for part in parts])
    counts = np.bincount(np.searchsorted(text_ends, starts, side="right"), minlength=len(parts))
    return hashes, counts.astype(np.int64)
