"""emb-brainstorm and emb-generate end to end against a real chat-completions server on 127.0.0.1 with faults."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from chat_server import ChatServer
from conftest import REPO, read_jsonl, write_jsonl
from embtools.commands.brainstorm import main as brainstorm
from embtools.commands.generate import main as generate
from embtools.generate.chat_request import ChatRequest
from embtools.generate.response_cache import ResponseCache

KEY = "sk-planted-c0ffee-4242"
FAULTS = ["429", "500", "drop", "slow", "malformed", "truncated", "wrong_type", "bad_body", "503", None, None, None]


@pytest.fixture
def server():
    with ChatServer(slow_seconds=1.0) as running:
        yield running


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("EMBTOOLS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return tmp_path


def tasks_file(path: Path, count: int) -> Path:
    return write_jsonl(path, [{"id": f"t{i}", "task_type": ("short-long", "long-short", "short-short")[i % 3],
                               "task": f"Retrieve documents about subject {i}.", "meta": {"from": "test"},
                               "extra": i} for i in range(count)])


def run(command, args, stdin: bytes | None = None):
    result = CliRunner().invoke(command, args, input=stdin, catch_exceptions=False)
    return result.exit_code, result.stdout_bytes, result.stderr


def body_hash(body: dict) -> str:
    return ChatRequest(body["model"], tuple(body["messages"]), body["temperature"], body["top_p"],
                       body.get("max_tokens"), body.get("seed"), "response_format" in body).content_hash()


def test_every_example_is_written_or_rejected_once_under_faults(server, env):
    by_seed = {}
    server.fault = lambda body, seen: by_seed.setdefault(body["seed"], FAULTS[len(by_seed) % len(FAULTS)]) \
        if seen == 0 else None
    source = tasks_file(env / "tasks.jsonl", 36)
    code, out, err = run(generate, [str(source), "--base-url", server.url, "--timeout", "0.4", "-c", "6",
                                    "--rejects", str(env / "rejects.jsonl"), "--max-retries", "3"])
    assert code == 0, err
    written = [orjson.loads(line) for line in out.splitlines()]
    rejected = read_jsonl(env / "rejects.jsonl")
    assert [r["id"] for r in written] == [f"t{i}" for i in range(36) if f"t{i}" not in
                                          {r["record"]["id"] for r in rejected}]  # input order, none twice
    assert len(written) + len(rejected) == 36 and len({r["record"]["id"] for r in rejected}) == len(rejected)
    reasons = {r["reason"].split(":")[0] for r in rejected}
    assert reasons == {"parse_error", "truncated", "not_a_string"}
    assert f"{len(written)} examples written, {len(rejected)} rejected" in err
    example = written[0]
    assert set(example) >= {"id", "task_type", "instruction", "query", "positive", "negative", "language", "meta",
                            "extra"}
    assert example["instruction"] == "Retrieve documents about subject 0." and example["meta"]["task_meta"]
    assert example["query"].startswith("user_query text") and example["negative"].startswith("hard_negative")
    meta = example["meta"]
    assert meta["template_id"] == "e5-short-long-generate" and meta["usage"] == {"prompt_tokens": 100,
                                                                                "completion_tokens": 50}
    assert set(meta["placeholders"]) == {"query_type", "query_length", "clarity", "num_words", "difficulty",
                                         "language"}
    short_short = next(r for r in written if r["task_type"] == "short-short")
    assert short_short["negative"] is None and short_short["query"].startswith("input text")
    assert all(b["temperature"] == 1.0 and b["top_p"] == 1.0 for b in server.completions())


def test_a_rerun_answers_from_the_cache(server, env):
    source = tasks_file(env / "tasks.jsonl", 10)
    args = [str(source), "--base-url", server.url, "--cache", str(env / "cache")]
    first = run(generate, args)
    again = run(generate, args)
    assert first[1] == again[1] and len(server.completions()) == 10
    assert "10 calls (10 from the cache, 0 retries)" in again[2]


def test_the_api_key_appears_nowhere(server, env):
    server.fault = lambda body, seen: ["500", "malformed", None][body["seed"] % 3] if seen == 0 else None
    source = tasks_file(env / "tasks.jsonl", 9)
    out_file, rejects = env / "out.jsonl", env / "rejects.jsonl"
    code, out, err = run(generate, [str(source), "--base-url", server.url, "--cache", str(env / "cache"), "-v",
                                    "-o", str(out_file), "--rejects", str(rejects)])
    assert code == 0 and out_file.exists() and rejects.exists()
    server.fault = lambda body, seen: "401"
    failed = run(generate, [str(source), "--base-url", server.url, "--no-cache", "-o", str(env / "never.jsonl")])
    assert failed[0] == 1 and "401" in failed[2] and not (env / "never.jsonl").exists()
    texts = [out, err.encode(), failed[1], failed[2].encode()]
    texts += [p.read_bytes() for p in env.rglob("*") if p.is_file()]  # outputs, rejects, cache + its WAL
    assert len(texts) > 6 and not any(KEY.encode() in text for text in texts)
    assert all(auth == f"Bearer {KEY}" for _, _, auth in server.log)  # it was sent, where it belongs


def test_same_seed_same_output_other_seed_other_output(server, env):
    args = ["--task-type", "sts", "-n", "6", "--base-url", server.url, "--no-cache"]
    one, two, other = run(generate, args), run(generate, args), run(generate, args + ["--seed", "5"])
    assert one[1] == two[1] and one[1] != other[1]
    records = [orjson.loads(line) for line in one[1].splitlines()]
    assert [r["id"] for r in records] == [f"sts-{i}" for i in range(6)]
    assert all(r["instruction"] == "Retrieve semantically similar text." for r in records)
    assert {r["meta"]["placeholders"]["low_score"] for r in records} <= {"2.5", "3", "3.5"}


def test_shards_split_without_overlap_and_concatenate(server, env):
    source = tasks_file(env / "tasks.jsonl", 10)
    base = [str(source), "--base-url", server.url, "--cache", str(env / "cache")]
    whole = run(generate, base)[1].splitlines()
    parts = [run(generate, base + ["--shard", f"{i}/3"])[1].splitlines() for i in range(3)]
    assert sorted(line for part in parts for line in part) == sorted(whole)
    assert [orjson.loads(line)["id"] for line in parts[1]] == ["t1", "t4", "t7"]
    bitext = run(generate, ["-t", "bitext", "-n", "5", "--shard", "1/2", "--base-url", server.url])[1]
    assert [orjson.loads(line)["id"] for line in bitext.splitlines()] == ["bitext-1", "bitext-3"]


def test_budgets_stop_cleanly_and_a_later_run_continues(server, env):
    source = tasks_file(env / "tasks.jsonl", 8)
    base = [str(source), "--base-url", server.url, "--cache", str(env / "cache"), "-c", "1"]
    code, out, err = run(generate, base + ["--max-requests", "3"])
    assert code == 0 and len(out.splitlines()) == 3 and "budget reached: 5 calls not made" in err
    code, out, err = run(generate, base + ["--max-tokens", "300"])  # 150 tokens a call: two more calls
    assert len(out.splitlines()) == 5 and len(server.completions()) == 5
    code, out, err = run(generate, base)
    assert len(out.splitlines()) == 8 and len(server.completions()) == 8


def test_dry_run_calls_nothing(server, env):
    source = tasks_file(env / "tasks.jsonl", 4)
    code, out, err = run(generate, [str(source), "--base-url", server.url, "--dry-run", "--max-new-tokens", "300"])
    assert code == 0 and out == b"" and server.completions() == []
    assert "dry run: 4 calls, 0 already in the cache, 4 to make" in err and "1200 completion tokens" in err


def test_bad_task_records_stop_or_are_skipped(server, env):
    source = write_jsonl(env / "tasks.jsonl", [{"id": 1, "task_type": "short-long", "task": "T"},
                                               {"id": 2, "task_type": "sts", "task": "T"}, {"task": "x"}])
    code, out, err = run(generate, [str(source), "--base-url", server.url])
    assert code == 1 and "line 2" in err and "task_type" in err
    code, out, err = run(generate, [str(source), "--base-url", server.url, "--skip-invalid"])
    assert code == 0 and len(out.splitlines()) == 1 and "; 2 skipped (" in err


def test_answer_rejects_and_input_rejects_are_separate(server, env):
    """--rejects holds the LLM's unusable answers and does not skip bad task records; --input-rejects does."""
    source = write_jsonl(env / "tasks.jsonl", [{"id": 1, "task_type": "short-long", "task": "Find cat facts."},
                                               {"id": 2, "task_type": "sts", "task": "T"},
                                               {"id": 3, "task_type": "short-long", "task": "Find dog facts."}])
    answers, tasks = env / "answers.jsonl", env / "tasks-rejected.jsonl"
    server.fault = lambda body, seen: "malformed" if "dog facts" in str(body["messages"]) else None
    code, out, err = run(generate, [str(source), "--base-url", server.url, "--rejects", str(answers)])
    assert code == 1 and "line 2" in err and not answers.exists()
    code, out, err = run(generate, [str(source), "--base-url", server.url, "--rejects", str(answers),
                                    "--input-rejects", str(tasks)])
    assert code == 0 and len(out.splitlines()) == 1
    assert [(r["line"], r["record"]["id"]) for r in read_jsonl(tasks)] == [(2, 2)]
    assert [r["record"]["id"] for r in read_jsonl(answers)] == [3]
    assert "1 rejected (parse_error: 1)" in err and "; 1 skipped (" in err


def test_tasks_from_stdin_and_usage_errors(server, env):
    source = tasks_file(env / "tasks.jsonl", 2)
    code, out, err = run(generate, ["--base-url", server.url, "-n", "1"], stdin=source.read_bytes())
    assert code == 0 and len(out.splitlines()) == 1
    assert run(generate, ["-t", "sts", "--base-url", server.url])[0] == 2


def test_brainstorm_parses_lists_and_drops_exact_duplicates(server, env):
    answers = iter(["```python\n['Find a recipe.', \"Match a word with its definition.\"]\n```",
                    '["Find a recipe.", "Search court decisions."]', "I cannot do that."])
    server.responder = lambda body: next(answers)
    code, out, err = run(brainstorm, ["-t", "short-short", "-n", "3", "--base-url", server.url, "-c", "1",
                                      "--rejects", str(env / "rejects.jsonl")])
    tasks = [orjson.loads(line) for line in out.splitlines()]
    assert code == 0 and [t["task"] for t in tasks] == ["Find a recipe.", "Match a word with its definition.",
                                                        "Search court decisions."]
    assert [t["id"] for t in tasks] == ["short-short-0-0", "short-short-0-1", "short-short-1-1"]
    assert tasks[0]["meta"]["template_id"] == "e5-short-short-brainstorm"
    assert "1 exact duplicates dropped" in err and "parse_error: 1" in err
    assert len({b["seed"] for b in server.completions()}) == 3  # the same prompt, three different calls
    assert read_jsonl(env / "rejects.jsonl")[0]["record"]["content"] == "I cannot do that."


def test_kill_9_then_rerun_sends_only_the_missing_requests(env):
    cache = env / "cache"
    command = [sys.executable, "-m", "embtools.commands.generate", "-t", "sts", "-n", "40", "-c", "2",
               "--cache", str(cache), "-o", str(env / "out.jsonl")]
    with ChatServer(delay=0.05) as server:
        process = subprocess.Popen(command + ["--base-url", server.url], cwd=REPO, env=dict(os.environ),
                                   stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while len(server.completions()) < 12 and time.time() < deadline and process.poll() is None:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert not (env / "out.jsonl").exists()  # no half-written output that looks whole
        answered = len(ResponseCache(cache))
        assert 10 <= answered < 40
    with ChatServer() as server:
        done = subprocess.run(command + ["--base-url", server.url], cwd=REPO, capture_output=True)
        assert done.returncode == 0, done.stderr
        assert len(server.completions()) == 40 - answered  # only what the first run had not been answered
        cached = ResponseCache(cache)
        assert len(cached) == 40
    records = read_jsonl(env / "out.jsonl")
    assert [r["id"] for r in records] == [f"sts-{i}" for i in range(40)]
    assert not list(env.glob(".out.jsonl*"))
