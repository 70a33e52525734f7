"""Progress bars: drawn on stderr when it is a terminal (a real pseudo-terminal here), never into a pipe or a file
unless forced, never into stdout's records; `--progress/--no-progress` > EMBTOOLS_PROGRESS > the terminal test."""

from __future__ import annotations

import fcntl
import gzip
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest

from conftest import DATA, REPO, read_jsonl, write_jsonl

BAR = b"%|"  # tqdm's percentage and bar edge: drawn only where a total is known


def run_command(module: str, args, stdin: Path | None = None, tty: bool = True, env: dict | None = None):
    """Run `python -m embtools.commands.MODULE ARGS` as its own process, stderr on a pseudo-terminal (160 columns) or
    a pipe, with `env` over the environment (None: unset); returns (exit code, stdout bytes, stderr bytes)."""
    environment = {k: v for k, v in os.environ.items() if k != "EMBTOOLS_PROGRESS"}
    environment |= {"PYTHONPATH": str(REPO / "src"), **(env or {})}
    environment = {k: v for k, v in environment.items() if v is not None}  # None: not set
    master, slave = pty.openpty() if tty else (None, subprocess.PIPE)
    if tty:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))
    with open(stdin or os.devnull, "rb") as source:
        process = subprocess.Popen([sys.executable, "-m", f"embtools.commands.{module}", *map(str, args)],
                                   stdin=source, stdout=subprocess.PIPE, stderr=slave, env=environment)
    if not tty:
        out, err = process.communicate(timeout=300)
        return process.returncode, out, err
    os.close(slave)
    chunks: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(master, chunks))
    reader.start()
    out = process.communicate(timeout=300)[0]
    reader.join()
    os.close(master)
    return process.returncode, out, b"".join(chunks)


def _drain(fd: int, chunks: list[bytes]) -> None:
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return
        if not data:
            return
        chunks.append(data)


def no_bar(err: bytes) -> bool:
    return b"\r" not in err.replace(b"\r\n", b"\n") and BAR not in err


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> Path:
    """40 SciFact documents as text records."""
    docs = read_jsonl(DATA / "scifact" / "corpus.jsonl")[:40]
    return write_jsonl(tmp_path_factory.mktemp("texts") / "texts.jsonl",
                       [{"id": d["_id"], "text": d["text"][:300]} for d in docs])


@pytest.fixture(scope="module")
def encoded(texts):
    """emb-encode --model minilm-l6 on the texts under a terminal and into a pipe."""
    args = ["--model", "minilm-l6", "--dtype", "float32", "--batch-tokens", "1024", texts]
    return run_command("encode", args, tty=True), run_command("encode", args, tty=False)


def test_encode_draws_a_bar_on_a_terminal_and_none_into_a_pipe(encoded):
    (code, out, err), (piped_code, piped_out, piped_err) = encoded
    assert code == 0 and piped_code == 0, err + piped_err
    assert BAR in err and b"40/40" in err and b"tokens/s" in err, err
    assert no_bar(piped_err), piped_err
    assert out == piped_out and len(out.splitlines()) == 40  # the records are the same, byte for byte


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> Path:
    """300 STS Benchmark train pairs as sts example records."""
    pairs = read_jsonl(DATA / "stsbenchmark" / "train.jsonl")[:300]
    return write_jsonl(tmp_path_factory.mktemp("examples") / "examples.jsonl", [
        {"id": i, "task_type": "sts", "instruction": "Retrieve semantically similar text.", "query": p["sentence1"],
         "positive": p["sentence2"], "negative": None, "language": "English", "meta": {}}
        for i, p in enumerate(pairs)])


FILTER = ["--no-near-dup", "--no-language-check"]  # the checks that load nothing: a run of a second


def test_filter_draws_records_per_second_and_the_same_records_as_a_pipe(examples):
    code, out, err = run_command("filter", [*FILTER, examples], tty=True)
    piped_code, piped_out, piped_err = run_command("filter", [*FILTER, examples], tty=False)
    assert code == 0 and piped_code == 0, err + piped_err
    assert b"filter: 100%|" in err and b"300/300" in err and b"record/s" in err, err
    assert no_bar(piped_err) and b"emb-filter: " in piped_err, piped_err
    assert out == piped_out and out.count(b"\n") > 250


@pytest.mark.parametrize("args, env, drawn", [
    (["--no-progress"], {}, False),                         # the flag wins over the terminal
    ([], {"EMBTOOLS_PROGRESS": "0"}, False),                # the variable wins over the terminal
    (["--progress"], {"EMBTOOLS_PROGRESS": "0"}, True),     # the flag wins over the variable
    (["-q"], {}, False),                                    # -q: errors only, no bar on the terminal
    (["-q"], {"EMBTOOLS_PROGRESS": "1"}, True),             # ... unless asked for
])
def test_flag_over_variable_over_terminal(examples, args, env, drawn):
    code, out, err = run_command("filter", [*FILTER, *args, examples], tty=True, env=env)
    assert code == 0, err
    assert (BAR in err) is drawn, err
    assert out.count(b"\n") > 250


@pytest.mark.parametrize("args, env", [(["--progress"], {}), ([], {"EMBTOOLS_PROGRESS": "1"})])
def test_progress_can_be_forced_into_a_pipe(examples, args, env):
    code, out, err = run_command("filter", [*FILTER, *args, examples], tty=False, env=env)
    assert code == 0, err
    assert b"\r" in err and b"300/300" in err, err
    assert b"%|" not in out and out.count(b"\n") > 250


def test_generate_shows_requests_cached_failed_and_tokens_against_the_budget(tmp_path):
    from chat_server import ChatServer

    tasks = write_jsonl(tmp_path / "tasks.jsonl", [
        {"id": f"t{i}", "task_type": "short-long", "task": f"Retrieve documents about subject {i}.", "meta": {}}
        for i in range(6)])
    args = [tasks, "--cache", tmp_path / "cache", "--max-tokens", "100000", "--seed", "1"]
    env = {"OPENAI_API_KEY": "sk-test", "EMBTOOLS_HOME": str(tmp_path / "home")}
    with ChatServer() as server:
        code, out, err = run_command("generate", [*args, "--base-url", server.url], tty=True, env=env)
        piped_code, piped_out, piped_err = run_command("generate", [*args, "--base-url", server.url], tty=False,
                                                       env=env)
    assert code == 0 and piped_code == 0, err + piped_err
    assert b"examples: 100%|" in err and b"6/6" in err and b"failed 0" in err, err
    assert b"cached 0" in err and b"/100000" in err, err  # tokens spent of the --max-tokens budget
    assert no_bar(piped_err) and b"6 from the cache" in piped_err, piped_err
    assert out == piped_out and out.count(b"\n") == 6  # the second run answered from the cache, the same records


def test_eval_shows_the_task_and_its_stage_and_writes_the_same_metrics(tmp_path):
    args = ["--model", "minilm-l6", "--max-pairs", "30", DATA / "stsbenchmark" / "dev.jsonl"]
    env = {"EMBTOOLS_HOME": str(tmp_path / "home")}
    code, out, err = run_command("eval", args, tty=True, env=env)
    piped_code, piped_out, piped_err = run_command("eval", args, tty=False, env=env)  # from the embedding cache
    assert code == 0 and piped_code == 0, err + piped_err
    assert b"STSBenchmark: " in err and b"stage sentences" in err and b"60 text" in err, err
    assert re.search(rb"[^\r\n]emb-eval: loading", err) is None, err  # a log line starts above the bar, not in it
    assert no_bar(piped_err), piped_err
    assert out == piped_out and b"cosine_spearman" in out


def test_train_shows_step_loss_lr_and_examples_per_second(tiny_decoder, tmp_path):
    pairs = read_jsonl(DATA / "stsbenchmark" / "train.jsonl")[:24]
    examples = write_jsonl(tmp_path / "examples.jsonl", [
        {"id": i, "task_type": "sts", "instruction": "Retrieve semantically similar text.",
         "query": p["sentence1"], "positive": p["sentence2"], "negative": None} for i, p in enumerate(pairs)])
    args = [examples, "-o", tmp_path / "model", "--model", tiny_decoder, "--max-steps", "3", "--batch-size", "4",
            "--max-length", "24", "--warmup-steps", "1"]
    code, out, err = run_command("train", args, tty=True, env={"OMP_NUM_THREADS": "1"})
    assert code == 0, err
    assert b"train: 100%|" in err and b"3/3" in err, err
    assert b"loss " in err and b"lr " in err and b"examples/s " in err, err
    assert len(out.splitlines()) == 1 and b'"steps": 3' in out  # stdout holds the summary record only


@pytest.mark.parametrize("flag, drawn", [([], True), (["--no-progress"], False)])
def test_a_hub_download_draws_its_bar_by_the_same_decision(tiny_decoder, texts, tmp_path, flag, drawn):
    from hub_server import HubServer

    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_PROGRESS_BARS": None, "HF_HUB_OFFLINE": None,
           "HF_TOKEN": None}
    with HubServer({"org/tiny-decoder": tiny_decoder}) as hub:
        code, out, err = run_command("encode", ["--model", "org/tiny-decoder", *flag, texts], tty=True,
                                     env={**env, "HF_ENDPOINT": hub.url})
    assert code == 0, err
    assert b"downloaded org/tiny-decoder" in err and out.count(b"\n") == 40
    assert (b"Fetching" in err or b"Download" in err) is drawn, err  # huggingface_hub's own bar


@pytest.mark.slow  # two worker processes under accelerate: about a minute on 2 shared cores
def test_under_two_processes_rank_0_alone_draws_and_its_bar_reaches_the_terminal(texts):
    args = ["--model", "minilm-l6", "--dtype", "float32", "--num-processes", "2", "--chunk-size", "15", texts]
    code, out, err = run_command("encode", args, tty=True, env={"OMP_NUM_THREADS": "1"})
    assert code == 0, err
    assert err.count(b"encode: 0 text") == 1, err  # one bar drawn: rank 0's (rank 1 is told, and stays quiet)
    assert b"encode: 25 text" in err, err  # rank 0's share: chunks 0 and 2 of 15, 15 and 10 texts
    assert out.count(b"\n") == 40


def test_line_counts_give_totals_only_where_they_are_cheap(tmp_path):
    from embtools.records.jsonl import count_lines

    (tmp_path / "three.jsonl").write_bytes(b'{"id": 1}\n{"id": 2}\n{"id": 3}')  # no final newline
    (tmp_path / "two.jsonl.gz").write_bytes(gzip.compress(b'{"id": 1}\n{"id": 2}\n'))
    assert count_lines(tmp_path / "three.jsonl") == 3
    assert count_lines(tmp_path / "empty.jsonl") is None  # missing: the reader reports it
    assert count_lines(tmp_path / "two.jsonl.gz") is None and count_lines("-") is None and count_lines(None) is None


def test_a_run_without_a_bar_never_counts_its_input(capsys):
    """A line count reads the whole input once more: only a drawn bar may pay for it."""
    from embtools.progress import Bar

    calls = []

    def total() -> int:
        calls.append(1)
        return 4

    with Bar("off", total, on=False) as bar:
        bar.update(2)
    assert calls == []
    with Bar("on", total, on=True) as bar:
        bar.update(2)
        bar.update(2)
    assert calls == [1] and "4/4" in capsys.readouterr().err


def test_brainstorm_counts_its_lists(tmp_path):
    from chat_server import ChatServer

    env = {"OPENAI_API_KEY": "sk-test", "EMBTOOLS_HOME": str(tmp_path / "home")}
    with ChatServer() as server:
        code, out, err = run_command("brainstorm", ["-t", "short-long", "-n", "3", "--base-url", server.url,
                                                    "--max-requests", "10", "--no-cache"], tty=True, env=env)
    assert code == 0, err
    assert b"tasks: 100%|" in err and b"3/3" in err and b"requests 3/10" in err, err
    assert out.count(b"\n") == 15 and BAR not in out  # 5 tasks a list
