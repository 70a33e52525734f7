"""Personalized passkey retrieval: the paper's test of long inputs (Section 5, Figure 4), generated on the fly.

For one length L: CANDIDATES documents of L tokens each (counted by the model's own tokenizer, special tokens
included), each the classic passkey filler (Mohtashami & Jaggi's "The grass is green. ...", which the paper's
Figure 4 shows) with one needle, `{name}'s pass key is {key}. Remember it. {key} is the pass key for {name}.`, at a
seeded random place; one query per document, `what is the pass key for {name}?`. A query is right when its own
document is the nearest of all candidates; the score is the top-1 accuracy, as the paper reports it. Names and keys
come from a seeded generator, so a length and a seed give the same task on every machine.

`emb-eval passkey:256,1024,4096` runs one task per length (`Passkey[256 tokens]`, ...). The paper gives no instruction
for this task; PASSKEY_INSTRUCTION is ours.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from embtools.encode.cached_encoder import CachedEncoder
from embtools.errors import EmbtoolsError
from embtools.instructions import with_instruction
from embtools.records.datasets import DataSource

FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
NEEDLE = "{name}'s pass key is {key}. Remember it. {key} is the pass key for {name}. "
QUERY = "what is the pass key for {name}?"
PASSKEY_INSTRUCTION = "Given a person's name, retrieve the document that holds that person's pass key"
CANDIDATES = 100  # documents per length, as in the paper
MAIN_SCORE = "accuracy"
MIN_LENGTH = 64  # the needle and a little filler must fit
FIRST_NAMES = ("Malayah", "Cesar", "Ingrid", "Tomas", "Amara", "Kenji", "Lucia", "Dmitri", "Fatima", "Oliver",
               "Priya", "Mateo", "Sienna", "Kwame", "Elif", "Rafael", "Noor", "Henrik", "Yara", "Jonah", "Leila",
               "Anders", "Zainab", "Marco", "Chloe", "Idris", "Hana", "Felix", "Ximena", "Tariq")
LAST_NAMES = ("Graves", "McLean", "Okafor", "Lindqvist", "Haddad", "Tanaka", "Moreau", "Petrov", "Silva", "Nakamura",
              "Brennan", "Castillo", "Adeyemi", "Novak", "Fischer", "Quispe", "Rahman", "Kowalski", "Dubois", "Mensah",
              "Varga", "Whitaker", "Ismail", "Rossi", "Holm", "Ortega", "Sato", "Lambert", "Oyelaran", "Keane")


def parse_lengths(text: str) -> list[int]:
    """`256,1024,4096` -> [256, 1024, 4096]; one line naming what is wrong otherwise."""
    try:
        lengths = [int(part) for part in text.split(",")]
    except ValueError:
        raise EmbtoolsError(f"passkey:{text}: expected token lengths separated by commas, e.g. passkey:256,1024") \
            from None
    if not lengths or min(lengths) < MIN_LENGTH:
        raise EmbtoolsError(f"passkey:{text}: every length must be at least {MIN_LENGTH} tokens")
    return lengths


def passkey_sources(argument: str) -> list[DataSource]:
    """`passkey:256,1024` -> a DataSource per length, named `Passkey[256 tokens]`, ..."""
    return [DataSource("passkey", f"Passkey[{length} tokens]", length=length)
            for length in parse_lengths(argument[len("passkey:"):])]


@dataclass
class PasskeyTask:
    """The generated task of one length: queries[i] belongs to documents[i]."""

    length: int
    queries: list[str]
    documents: list[str]


def people(count: int, rng: random.Random) -> list[tuple[str, int]]:
    """`count` distinct (full name, 5-digit pass key) pairs."""
    names = rng.sample([f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES], count)
    return [(name, rng.randint(10000, 99999)) for name in names]


def passkey_task(length: int, tokenizer, seed: int = 0, candidates: int = CANDIDATES) -> PasskeyTask:
    """The task at `length` tokens per document (special tokens included, as the encoder frames a text)."""
    rng = random.Random(f"passkey-{seed}-{length}")
    budget = length - _special_tokens(tokenizer)
    filler = _count(tokenizer, FILLER * 8) / 8
    queries, documents = [], []
    for name, key in people(candidates, rng):
        needle = NEEDLE.format(name=name, key=key)
        units = max(0, int((budget - _count(tokenizer, needle)) / filler))
        before = rng.randint(0, units)
        document = FILLER * before + needle + FILLER * (units - before)
        while units and _count(tokenizer, document) > budget:  # joins can tokenize a little longer
            units -= 1
            before = min(before, units)
            document = FILLER * before + needle + FILLER * (units - before)
        queries.append(QUERY.format(name=name))
        documents.append(document.strip())
    return PasskeyTask(length, queries, documents)


def top1_accuracy(queries: np.ndarray, documents: np.ndarray) -> float:
    """The share of queries whose own document (same row) scores strictly above every other document (cosine): a
    tie is a miss, whatever order the documents come in."""
    scores = queries @ documents.T
    own = np.diag(scores).copy()
    np.fill_diagonal(scores, -np.inf)
    return float(np.mean(own > scores.max(axis=1)))


def evaluate_passkey(length: int, encoder: CachedEncoder, instruction: str | None, seed: int = 0) -> dict:
    """mteb-style scores of the task at `length`: accuracy (main), and the documents' mean length in tokens."""
    limit = encoder.encoder.max_length
    if limit < length:
        raise EmbtoolsError(f"passkey:{length} needs --max-length {length} or more (the model reads {limit} tokens "
                            "of a text)")
    task = passkey_task(length, encoder.encoder.tokenizer, seed)
    queries = encoder.embed([with_instruction(q, instruction) for q in task.queries], normalize=True)
    documents = encoder.embed(task.documents, normalize=True)
    accuracy = top1_accuracy(queries, documents)
    return {MAIN_SCORE: accuracy, "main_score": accuracy}


def _count(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _special_tokens(tokenizer) -> int:
    """Tokens the encoder adds around a text: the tokenizer's own (BOS) and an appended EOS."""
    return len(tokenizer("", add_special_tokens=True)["input_ids"]) + 1
