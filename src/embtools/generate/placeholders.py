"""Every placeholder of the paper's templates, drawn per example from the paper's value sets, reproducibly.

Value sets: arXiv:2401.00368 Tables 8-13 (listed in docs/method.md). Each placeholder is an independent
uniform draw from its set (Fig. 1: "replaced by sampling from a predefined set of values"), except `{language}`,
which comes from the XLM-R list "with higher probability for high-resource languages". The paper does not publish
those weights; ours: English gets 43% (the share the paper reports for its data, Fig. 2) and every other language a
share proportional to its CC-100 size to the power 0.7, which gives about 2-4% to each large language and about 17%
to the bottom 75 together (the paper: about 20%). `--languages` restricts or reweights.

Draws are seeded by (run seed, example key) through a string-seeded `random.Random` (SHA-512 of the string), so an
example's placeholders do not depend on how many examples came before it, on sharding, or on the process.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from embtools.errors import EmbtoolsError
from embtools.languages import cc100_sizes, names_matching

ENGLISH_SHARE = 0.43
SIZE_EXPONENT = 0.7

_CLARITY = ("clear", "understandable with some effort", "ambiguous")
_SYMMETRIC = {"high_score": ("4", "4.5", "5"), "unit": ("sentence", "phrase", "passage"),
              "difficulty": ("elementary school", "high school", "college")}

VALUE_SETS: dict[str, dict[str, tuple[str, ...]]] = {
    "short-long": {
        "query_type": ("extremely long-tail", "long-tail", "common"),
        # Table 8's set; the paper's section 3.1 text says "5-10 words" instead of "5 to 15 words".
        "query_length": ("less than 5 words", "5 to 15 words", "at least 10 words"),
        "clarity": _CLARITY,
        "num_words": ("50", "100", "200", "300", "400", "500"),
        "difficulty": ("high school", "college", "PhD"),
    },
    "long-short": {
        "num_words": ("less than 10", "at least 10", "at least 50", "at least 100", "at least 200"),
        "difficulty": ("high school", "college", "PhD"),
        "clarity": _CLARITY,
    },
    "short-short": {},
    "long-long": {},
    "sts": {**_SYMMETRIC, "low_score": ("2.5", "3", "3.5")},
    "bitext": {**_SYMMETRIC, "low_score": ("1.5", "2", "2.5")},  # not the STS set (Table 13)
}


def default_language_weights() -> dict[str, float]:
    """Language name -> probability, English pinned at ENGLISH_SHARE, the rest by CC-100 size ** SIZE_EXPONENT."""
    others = {name: size ** SIZE_EXPONENT for name, size in cc100_sizes().items() if name != "English"}
    total = sum(others.values())
    return {"English": ENGLISH_SHARE, **{name: (1 - ENGLISH_SHARE) * w / total for name, w in others.items()}}


def _language_name(token: str) -> str:
    """A language named by ISO code or name (case-insensitive) -> its name in the XLM-R list."""
    matches = names_matching(token)
    if len(matches) != 1:
        hint = "ambiguous, give the name" if matches else "not in the XLM-R list"
        raise EmbtoolsError(f"--languages: {token.strip()!r} is {hint}")
    return matches.pop()


def parse_languages(spec: str | None) -> dict[str, float]:
    """Weights from `--languages`: None -> defaults; `en,de` -> those, default weights renormalized;
    `en:3,de:1` -> those, with the given relative weights."""
    if not spec:
        return default_language_weights()
    defaults = default_language_weights()
    chosen: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        token, _, weight = item.partition(":")
        name = _language_name(token)
        try:
            chosen[name] = float(weight) if weight else defaults[name]
        except ValueError:
            raise EmbtoolsError(f"--languages: weight {weight!r} of {token} is not a number") from None
        if chosen[name] < 0:
            raise EmbtoolsError(f"--languages: weight of {token} is negative")
    total = sum(chosen.values())
    if total <= 0:
        raise EmbtoolsError("--languages: no language with a positive weight")
    return {name: w / total for name, w in chosen.items()}


@dataclass(frozen=True)
class PlaceholderSampler:
    """Draws one example's placeholder values for a task type, given the run seed and the example's key."""

    seed: int
    languages: dict[str, float]

    def rng(self, key: str) -> random.Random:
        return random.Random(f"embtools-placeholders:{self.seed}:{key}")

    def sample(self, task_type: str, key: str) -> dict[str, str]:
        rng = self.rng(key)
        values = {name: rng.choice(options) for name, options in VALUE_SETS[task_type].items()}
        if task_type == "bitext":
            values["src_lang"], values["tgt_lang"] = self._language_pair(rng)
        else:
            values["language"] = self._language(rng)
        return values

    def _language(self, rng: random.Random) -> str:
        names = list(self.languages)
        return rng.choices(names, weights=[self.languages[n] for n in names])[0]

    def _language_pair(self, rng: random.Random) -> tuple[str, str]:
        """Two independent weighted draws, the target redrawn until it differs (the paper does not say how pairs
        are chosen); a single allowed language pairs with itself."""
        source = self._language(rng)
        if len(self.languages) == 1:
            return source, source
        target = self._language(rng)
        while target == source:
            target = self._language(rng)
        return source, target


def request_seed(seed: int, key: str) -> int:
    """A 31-bit integer seed for one request (sent as the API's `seed`, and part of the cache key)."""
    return random.Random(f"embtools-request:{seed}:{key}").getrandbits(31)
