"""One rule for "the same text": emb-filter's duplicate check, the mining pool and the loss's false-negative mask
agree on every pair, tricky ones included (case, spacing, punctuation, Unicode forms, no-break spaces)."""

from __future__ import annotations

import pytest

from embtools.filter.duplicates import ExactDuplicateCheck
from embtools.filter.mining_pool import TextPool
from embtools.train.data import TrainingExample
from embtools.train.step import batch_keys

PAIRS = [  # (one text, another, the same text?)
    ("The Cat sat", "the cat sat", True),
    ("Die Straße", "DIE STRASSE", True),  # case folding, not only lower-casing
    ("the  cat\n sat", "the cat sat", True),
    ("  the cat sat ", "the cat sat", True),
    ("the\tcat\r\nsat", "the cat sat", True),
    ("the\u00a0cat sat", "the cat sat", True),  # a no-break space is a space
    ("the\u3000cat\u2003sat", "the cat sat", True),  # ideographic and em spaces
    ("\uff54\uff48\uff45 \uff43\uff41\uff54 sat", "the cat sat", True),  # full-width letters
    ("caf\u00e9 au lait", "cafe\u0301 au lait", True),  # composed and decomposed accent
    ("\ufb01ne print", "fine print", True),  # the fi ligature
    ("foo bar", "foobar", False),  # spacing means how much, not whether
    ("a part of it", "apart of it", False),
    ("the cat sat.", "the cat sat", False),  # punctuation counts
    ("Let's eat, grandma", "Let's eat grandma", False),
    ("the cat sat", "the cats sat", False),
]


def filter_says_same(first: str, second: str) -> bool:
    check = ExactDuplicateCheck(fields=("query",))
    check.remember({"query": first})
    return check({"query": second}) is not None


def mining_says_same(first: str, second: str) -> bool:
    pool = TextPool()
    try:
        return pool.add(first) == pool.add(second)
    finally:
        pool.close()


def loss_says_same(first: str, second: str) -> bool:
    keys = batch_keys([TrainingExample(first, "positive one", (), "t"),
                       TrainingExample(second, "positive two", (), "t")])
    return bool(keys.queries[0] == keys.queries[1])


@pytest.mark.parametrize("first, second, same", PAIRS, ids=[repr(p[0]) for p in PAIRS])
def test_filter_mining_and_loss_agree_on_the_same_text(first, second, same):
    assert (filter_says_same(first, second), mining_says_same(first, second), loss_says_same(first, second)) \
        == (same, same, same)
