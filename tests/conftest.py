"""Shared fixtures: the real data in ../shared/data and each built-in model loaded once per session."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EMBTOOLS_TEST_DATA", REPO.parent / "shared" / "data"))


def read_jsonl(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in Path(path).read_bytes().splitlines() if line.strip()]


def write_jsonl(path: Path, records) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


@pytest.fixture(scope="session")
def sts_dev() -> list[dict]:
    return read_jsonl(DATA / "stsbenchmark" / "dev.jsonl")


@pytest.fixture(scope="session")
def sts_dev_sentences(sts_dev) -> list[str]:
    """All 3,000 sentences of STS Benchmark dev, in file order."""
    return [s for pair in sts_dev for s in (pair["sentence1"], pair["sentence2"])]


@pytest.fixture(scope="session")
def scifact_docs() -> list[dict]:
    return read_jsonl(DATA / "scifact" / "corpus.jsonl")


@pytest.fixture(scope="session")
def minilm():
    from embtools.encode.encoder import Encoder, EncodeSettings

    return Encoder("minilm-l6", EncodeSettings(dtype="float32"))


@pytest.fixture(scope="session")
def smollm():
    from embtools.encode.encoder import Encoder, EncodeSettings

    return Encoder("smollm2-135m", EncodeSettings(dtype="float32"))


@pytest.fixture(scope="session")
def tiny_decoder(tmp_path_factory, sts_dev_sentences) -> Path:
    """A folder with a small random Mistral-architecture decoder (2 layers, 64-d; its tokenizer trained on STS dev),
    built in about a second: for tests of mechanics that would otherwise load smollm2-135m's weights."""
    from embtools.models.random_decoder import build_random_decoder

    return build_random_decoder(tmp_path_factory.mktemp("tiny-decoder"), sts_dev_sentences)


@pytest.fixture
def text_file(tmp_path, sts_dev):
    """40 real text records (ids s0..s39) with a pass-through `meta` field."""
    records = [{"id": f"s{i}", "text": p["sentence1"], "meta": {"source": p["source"]}}
               for i, p in enumerate(sts_dev[:40])]
    return write_jsonl(tmp_path / "texts.jsonl", records)
