"""Shared fixtures: the real evaluation data (EMBTOOLS_TEST_DATA, by default the `shared/data` folder beside the
checkout), each built-in model loaded once per session, and a runner for the commands."""

from __future__ import annotations

import os
from pathlib import Path

import click
import orjson
import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EMBTOOLS_TEST_DATA", REPO.parent / "shared" / "data"))


def read_jsonl(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in Path(path).read_bytes().splitlines() if line.strip()]


def write_jsonl(path: Path, records) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def run_cli(command: click.Command, args, input: bytes | None = None) -> tuple[int, list[dict], list[str]]:
    """Run a command in this process: (exit code, the records it wrote to stdout, the lines it wrote to stderr).

    stdout must be JSONL (it carries records only), so anything else there fails the test; stderr is kept apart from
    it. An exception the command does not turn into an exit code propagates with its traceback."""
    result = CliRunner().invoke(command, [str(a) for a in args], input=input, catch_exceptions=False)
    records = [orjson.loads(line) for line in result.stdout_bytes.splitlines() if line.strip()]
    return result.exit_code, records, result.stderr.splitlines()


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
