"""The conventions every command keeps (CONTRACT.md, Conventions), each asserted for all seven commands: a fast
`--help` that imports no heavy library, usage errors that exit 2 in one line, a missing input file that is one line,
`-o` outputs that appear whole or not at all, and a reader that goes away (`| head -1`) ending the command quietly."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from importlib import import_module

import numpy as np
import pytest
from click.testing import CliRunner

from chat_server import ChatServer
from conftest import DATA, REPO, read_jsonl, write_jsonl
from embtools.help_docs import console_scripts

MODULES = {"emb-brainstorm": "brainstorm", "emb-encode": "encode", "emb-eval": "eval", "emb-filter": "filter",
           "emb-generate": "generate", "emb-index": "index", "emb-train": "train"}
COMMANDS = sorted(MODULES)
HEAVY = ("torch", "transformers", "mteb", "faiss", "numpy", "sklearn", "scipy", "accelerate", "peft")
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


def command(name: str):
    return import_module(f"embtools.commands.{MODULES[name]}").main


def invoke(name: str, args, env: dict | None = None):
    result = CliRunner().invoke(command(name), [str(a) for a in args], env=env, catch_exceptions=False)
    return result.exit_code, result.stdout_bytes, result.stderr


def one_error_line(name: str, stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{name}: error: "), stderr
    return lines[0]


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A folder to work in; the models stay in the default EMBTOOLS_HOME (converted once), no run uses a cache."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # relative outputs (`-o m`) land in the test's folder, should a case ever run
    return tmp_path


def test_the_table_names_every_console_script():
    assert set(MODULES) == set(console_scripts())


_HELP_PROBE = """
import resource, sys
from embtools.commands.{module} import main
try:
    main(["--help"])
except SystemExit as exc:
    assert not exc.code, exc.code
used = resource.getrusage(resource.RUSAGE_SELF)
print(used.ru_utime + used.ru_stime, *[m for m in {heavy!r} if m in sys.modules], file=sys.stderr)
"""


@pytest.mark.parametrize("name", COMMANDS)
def test_help_imports_no_heavy_library_and_takes_under_half_a_second(name):
    """The time is CPU seconds (user + sys) of the whole process, best of 3: on a 2-core machine shared with other
    jobs the wall time measures the neighbours, while CPU time is what `--help` costs (importing torch alone takes
    more than the half second)."""
    seconds = []
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", _HELP_PROBE.format(module=MODULES[name], heavy=HEAVY)],
                              env=ENV, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "Usage:" in done.stdout, done.stderr
        used, *heavy = done.stderr.split()
        assert heavy == [], f"{name} --help imports {heavy}"
        seconds.append(float(used))
    assert min(seconds) < 0.5, seconds


EXISTING = str(REPO / "pyproject.toml")
BAD_VALUES = [
    ("emb-brainstorm", ["-t", "sts"]), ("emb-brainstorm", ["-t", "short-long", "-n", "0"]),
    ("emb-brainstorm", ["-t", "short-long", "--temperature", "-1"]),
    ("emb-brainstorm", ["-t", "short-long", "--top-p", "0"]), ("emb-brainstorm", ["-t", "short-long", "-c", "0"]),
    ("emb-brainstorm", ["-t", "short-long", "--timeout", "0"]),
    ("emb-brainstorm", ["-t", "short-long", "--max-retries", "-1"]),
    ("emb-brainstorm", ["-t", "short-long", "--max-new-tokens", "0"]),
    ("emb-brainstorm", ["-t", "short-long", "--max-requests", "-1"]),
    ("emb-brainstorm", ["-t", "short-long", "--max-tokens", "-1"]),
    ("emb-brainstorm", ["-t", "short-long", "--seed", "x"]),
    ("emb-generate", ["--languages", "xx"]), ("emb-generate", ["--languages", "en:heavy"]),
    ("emb-generate", ["--languages", "en:0"]), ("emb-generate", ["--shard", "4/4"]),
    ("emb-generate", ["--shard", "half"]), ("emb-generate", ["-t", "sts"]), ("emb-generate", ["-t", "short-long"]),
    ("emb-generate", ["-t", "sts", "-n", "1", EXISTING]), ("emb-generate", ["-n", "-1"]),
    ("emb-filter", ["--dedup-fields", "title"]), ("emb-filter", ["--negative-ranks", "100-10"]),
    ("emb-filter", ["--ngram", "1"]), ("emb-filter", ["--near-dup-threshold", "1"]),
    ("emb-filter", ["--num-perm", "4"]),
    ("emb-filter", ["--length-tolerance", "2"]), ("emb-filter", ["--short-max-words", "0"]),
    ("emb-filter", ["--language-confidence", "-0.1"]), ("emb-filter", ["--min-contamination-words", "0"]),
    ("emb-filter", ["--negative-margin", "1.5"]), ("emb-filter", ["--min-score", "high"]),
    ("emb-filter", ["--max-length", "1"]), ("emb-filter", ["--dtype", "int8"]),
    ("emb-filter", ["--decontaminate", "/no/such/path"]), ("emb-filter", ["--from-beir", "/no/such/dir"]),
    ("emb-filter", ["--from-sts", "/no/such.jsonl"]), ("emb-filter", ["--negatives-from", "/no/such/path"]),
    ("emb-train", ["x.jsonl"]), ("emb-train", ["-o", "m", "x.jsonl:0"]), ("emb-train", ["-o", "m", "x.jsonl:-2"]),
    ("emb-train", ["-o", "m", "--deepspeed", "zero9"]), ("emb-train", ["-o", "m", "--batch-size", "1"]),
    ("emb-train", ["-o", "m", "--batch-size", "9", "--num-processes", "2"]),
    ("emb-train", ["-o", "m", "--lora-rank", "0"]), ("emb-train", ["-o", "m", "--lora-dropout", "2"]),
    ("emb-train", ["-o", "m", "--temperature", "0"]), ("emb-train", ["-o", "m", "--lr", "0"]),
    ("emb-train", ["-o", "m", "--mixed-precision", "fp8"]), ("emb-train", ["-o", "m", "--max-length", "3"]),
    ("emb-train", ["-o", "m", "--warmup-steps", "-1"]), ("emb-train", ["-o", "m", "--epochs", "0"]),
    ("emb-encode", ["--pooling", "max"]), ("emb-encode", ["--max-length", "1"]), ("emb-encode", ["--encoding", "hex"]),
    ("emb-encode", ["--dtype", "int8"]), ("emb-encode", ["--batch-tokens", "0"]), ("emb-encode", ["--chunk-size", "0"]),
    ("emb-encode", ["--num-processes", "0"]),
    ("emb-index", ["build"]), ("emb-index", ["-o", "ix", "--train-size", "0"]),
    ("emb-index", ["-o", "ix", "--batch-size", "0"]), ("emb-index", ["search"]), ("emb-index", ["add"]),
    ("emb-index", ["search", "--index", "ix", "-k", "0"]), ("emb-index", ["search", "--index", "ix", "--nprobe", "0"]),
    ("emb-index", ["search", "--index", "ix", "--ef-search", "0"]),
    ("emb-eval", []), ("emb-eval", [EXISTING, "--instruction", "q", "--no-instruction"]),
    ("emb-eval", [EXISTING, "--compare", EXISTING]), ("emb-eval", [EXISTING, "--compare", "/no/such.jsonl"]),
    ("emb-eval", [EXISTING, "--max-pairs", "1"]), ("emb-eval", [EXISTING, "--dtype", "int8"]),
    ("emb-eval", [EXISTING, "--pooling", "max"]), ("emb-eval", [EXISTING, "--max-corpus", "0"]),
    ("emb-eval", ["mteb:SciFact", "--max-corpus", "100"]),
]
BAD_ENVIRONMENT = [
    ("emb-encode", {"EMBTOOLS_NUM_PROCESSES": "zero"}), ("emb-generate", {"EMBTOOLS_LANGUAGES": "xx"}),
    ("emb-generate", {"EMBTOOLS_CONCURRENCY": "0"}), ("emb-index", {"EMBTOOLS_TOP_K": "-1"}),
    ("emb-encode", {"EMBTOOLS_SKIP_INVALID": "maybe"}), ("emb-encode", {"EMBTOOLS_DTYPE": "int8"}),
]


@pytest.mark.parametrize("name, args", BAD_VALUES, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_a_bad_option_value_is_a_usage_error_in_one_line(home, name, args):
    code, out, err = invoke(name, args)
    assert (code, out) == (2, b""), err
    one_error_line(name, err)


@pytest.mark.parametrize("name, env", BAD_ENVIRONMENT, ids=lambda v: str(v))
def test_a_bad_environment_value_is_a_usage_error_in_one_line(home, name, env):
    args = ["search", "--index", "ix"] if name == "emb-index" else []
    code, out, err = invoke(name, args, env=env)
    assert (code, out) == (2, b""), err
    one_error_line(name, err)


MISSING = "/no/such/input.jsonl"
MISSING_INPUT = {  # a FILE that does not exist is bad input, exit 1; emb-brainstorm takes no FILE, a usage error
    "emb-brainstorm": (["-t", "short-long", MISSING], 2),
    "emb-encode": ([MISSING], 1),
    "emb-eval": ([MISSING], 1),
    "emb-filter": ([MISSING, "--no-language-check"], 1),
    "emb-generate": ([MISSING, "--no-cache"], 1),
    "emb-index": (["-o", "ix", MISSING], 1),
    "emb-train": (["-m", "minilm-l6", "-o", "model", MISSING], 1),
}


@pytest.mark.parametrize("name", COMMANDS)
def test_a_missing_input_file_is_one_line_with_the_contracts_exit_code(home, name):
    args, expected = MISSING_INPUT[name]
    code, out, err = invoke(name, args)
    assert (code, out) == (expected, b""), err
    assert MISSING in one_error_line(name, err)
    assert not (home / "ix").exists() and not (home / "model").exists()


def sts_pairs(count: int, start: int = 0) -> list[dict]:
    return read_jsonl(DATA / "stsbenchmark" / "dev.jsonl")[start:start + count]


def examples_of(pairs: list[dict]) -> list[dict]:
    return [{"id": i, "task_type": "sts", "instruction": "Retrieve semantically similar text.",
             "query": p["sentence1"], "positive": p["sentence2"], "negative": None} for i, p in enumerate(pairs)]


def vectors_file(path, count: int, dim: int = 16, seed: int = 0):
    vectors = np.random.default_rng(seed).standard_normal((count, dim)).round(4)
    return write_jsonl(path, [{"id": f"v{i}", "embedding": v.tolist()} for i, v in enumerate(vectors)])


def with_bad_line(path, records: list[dict]):
    """The records, then a line that is not JSON: the command fails after it has written the records before it."""
    write_jsonl(path, records)
    with open(path, "ab") as stream:
        stream.write(b'{"id": "broken", \n')
    return path


def failing_server_after(calls: int) -> ChatServer:
    """A chat server that answers `calls` requests and then refuses the API key (401, a runtime failure)."""
    server, counter = ChatServer(), itertools.count()
    server.fault = lambda body, seen: "401" if next(counter) >= calls else None
    return server


def failing_run(name: str, tmp):
    """Arguments of a run of `name` that fails after its output is opened and written to, and that output."""
    if name == "emb-encode":
        texts = [{"id": i, "text": p["sentence1"]} for i, p in enumerate(sts_pairs(3))]
        return ["-m", "minilm-l6", "--chunk-size", "1", with_bad_line(tmp / "in.jsonl", texts)], tmp / "out.jsonl"
    if name == "emb-filter":  # the first batch (1,024 examples) is written before the bad line is read
        source = with_bad_line(tmp / "in.jsonl", examples_of(sts_pairs(1100)))
        return [source, "--no-language-check", "--no-near-dup"], tmp / "out.jsonl"
    if name == "emb-eval":  # the first DATA's scores are written before the second's bad line is read
        first = write_jsonl(tmp / "first.jsonl", sts_pairs(20))
        second = with_bad_line(tmp / "second.jsonl", sts_pairs(20, 20))
        return ["-m", "minilm-l6", "--no-cache", first, second], tmp / "out.jsonl"
    if name == "emb-index":  # search: one query at a time, the first written before the bad line
        code, _, err = invoke(name, ["-o", tmp / "ix", vectors_file(tmp / "docs.jsonl", 50)])
        assert code == 0, err
        queries = read_jsonl(vectors_file(tmp / "q.jsonl", 3, seed=1))
        return ["search", "--index", tmp / "ix", "--batch-size", "1", with_bad_line(tmp / "q.jsonl", queries)], \
            tmp / "out.jsonl"
    if name == "emb-train":  # a folder: nothing of it may appear when the run fails
        return ["-m", "minilm-l6", with_bad_line(tmp / "in.jsonl", examples_of(sts_pairs(4)))], tmp / "model"
    if name == "emb-generate":
        return ["-t", "sts", "-n", "4", "-c", "1", "--no-cache"], tmp / "out.jsonl"
    return ["-t", "short-long", "-n", "3", "-c", "1", "--no-cache"], tmp / "out.jsonl"


LOADS_A_MODEL = ("emb-encode", "emb-eval", "emb-train")  # seconds to minutes on a loaded CPU: `make test-slow`
WITH_SLOW_MODELS = [pytest.param(n, marks=pytest.mark.slow) if n in LOADS_A_MODEL else n for n in COMMANDS]


@pytest.mark.parametrize("name", WITH_SLOW_MODELS)
def test_a_failed_run_leaves_no_output_and_no_temporary(home, name):
    args, target = failing_run(name, home)
    with failing_server_after(1) as server:
        extra = ["--base-url", server.url] if name in ("emb-brainstorm", "emb-generate") else []
        code, out, err = invoke(name, [*args, *extra, "-o", target, "-q"])
        written = len(server.completions())
    assert code == 1, err
    one_error_line(name, err)
    assert not target.exists() and not list(target.parent.glob(f".{target.name}.*"))
    if extra:
        assert written >= 2  # an answer was written, then the endpoint failed


def large_output_run(name: str, tmp, server_url: str) -> list:
    """A run whose stdout is well over a pipe buffer (64 KB), so the command is still writing when `head` exits;
    emb-eval flushes each DATA's scores, so its second write meets a closed pipe."""
    if name == "emb-encode":
        texts = [{"id": i, "text": p["sentence1"]} for i, p in enumerate(sts_pairs(40))]  # 40 x 384 floats
        return ["-m", "minilm-l6", write_jsonl(tmp / "in.jsonl", texts)]
    if name == "emb-filter":
        return [write_jsonl(tmp / "in.jsonl", examples_of(sts_pairs(1500))), "--no-language-check"]
    if name == "emb-eval":
        return ["-m", "minilm-l6", "--no-cache", write_jsonl(tmp / "a.jsonl", sts_pairs(20)),
                write_jsonl(tmp / "b.jsonl", sts_pairs(20, 20))]
    if name == "emb-index":
        subprocess.run([sys.executable, "-m", "embtools.commands.index", "-o", tmp / "ix",
                        vectors_file(tmp / "docs.jsonl", 500)], env=ENV, check=True, capture_output=True)
        return ["search", "--index", tmp / "ix", "-k", "100", vectors_file(tmp / "q.jsonl", 200, seed=1)]
    if name == "emb-train":  # one summary line: the reader is gone before it is written
        return ["-m", "minilm-l6", "--no-lora", "--batch-size", "4", "--max-steps", "1", "--warmup-steps", "0",
                "-o", tmp / "model", write_jsonl(tmp / "in.jsonl", examples_of(sts_pairs(8)))]
    if name == "emb-generate":
        return ["-t", "sts", "-n", "300", "--no-cache", "--base-url", server_url]
    return ["-t", "short-long", "-n", "200", "--no-cache", "--base-url", server_url]


@pytest.mark.parametrize("name", WITH_SLOW_MODELS)
def test_a_reader_that_goes_away_ends_the_command_quietly(home, name):
    with ChatServer() as server:
        args = [str(a) for a in large_output_run(name, home, server.url)]
        reader = "true" if name == "emb-train" else "head -1"
        line = " ".join(f"'{a}'" for a in [sys.executable, "-m", f"embtools.commands.{MODULES[name]}", *args])
        done = subprocess.run(["bash", "-c", f"set -o pipefail; {line} | {reader}"], env=ENV, capture_output=True,
                              timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert b"Traceback" not in done.stderr and b"Broken pipe" not in done.stderr and b"error" not in done.stderr
