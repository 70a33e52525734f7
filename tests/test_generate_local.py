"""The embedded local generator (SmolLM2-135M-Instruct): schema-guided decoding, end to end through emb-generate."""

from __future__ import annotations

import asyncio
import json
import re

import orjson
import pytest
from click.testing import CliRunner

from conftest import write_jsonl
from embtools.commands.generate import main as generate
from embtools.generate.chat_request import ChatRequest, OutputShape
from embtools.generate.local_generator import LocalGenerator, decode_value, first_unescaped_quote

TASKS = ["Retrieve recipes that match a list of ingredients.", "Find news articles about a company's earnings.",
         "Given a medical symptom, retrieve patient-friendly explanations.", "Search for reviews of a smartphone.",
         "Given a legal question, retrieve relevant court decisions.", "Find travel guides for a city.",
         "Retrieve answers to programming error messages.", "Find historical documents about a given event.",
         "Given a math question, retrieve worked solutions.", "Find scientific papers that support a claim."]


def test_quote_and_escape_rules():
    assert first_unescaped_quote('ab\\"c"d') == 5 and first_unescaped_quote('x\\\\"') == 3
    assert first_unescaped_quote("none") == -1
    assert decode_value('line\\nnext \\"q\\"') == 'line\nnext "q"' and decode_value("bad \\x") == "bad \\x"


def test_local_answers_are_json_of_the_requested_shape_and_seeded():
    generator = LocalGenerator("smollm2-135m", batch_size=3)
    prompt = ({"role": "user", "content": "Write a JSON object with keys S1, S2 and S3: three sentences."},)
    requests = [ChatRequest("smollm2-135m", prompt, max_tokens=6, seed=s, shape=OutputShape(("S1", "S2", "S3")))
                for s in (1, 2, 1)]
    listing = ChatRequest("smollm2-135m", ({"role": "user", "content": "List three things to do on a sunny "
                                                                      "weekend, one sentence each."},),
                          max_tokens=16, seed=4, temperature=0.7, top_p=0.9)

    async def ask():
        try:
            return await asyncio.gather(*(generator.complete(r) for r in [*requests, listing]))
        finally:
            await generator.aclose()

    *objects, fruits = asyncio.run(ask())
    for result in objects:
        value = json.loads(result.content)
        assert list(value) == ["S1", "S2", "S3"] and all(isinstance(v, str) and v.strip() for v in value.values())
        assert result.prompt_tokens > 10 and 3 <= result.completion_tokens <= 6 + 3 * 8
    assert objects[0].content == objects[2].content  # same seed, same answer, whatever the batch
    items = json.loads(fruits.content)
    assert isinstance(items, list) and items and all(isinstance(i, str) and len(i.split()) >= 3 for i in items)


@pytest.mark.slow
def test_twenty_short_long_examples_end_to_end(tmp_path, capsys):
    source = write_jsonl(tmp_path / "tasks.jsonl", [{"id": i, "task_type": "short-long", "task": TASKS[i % 10]}
                                                    for i in range(20)])
    result = CliRunner().invoke(generate, [str(source), "--cache", str(tmp_path / "cache"), "-c", "10",
                                           "--max-new-tokens", "48", "--languages", "en",
                                           "--rejects", str(tmp_path / "rejects.jsonl")], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    records = [orjson.loads(line) for line in result.stdout_bytes.splitlines()]
    valid = sum(all(isinstance(r[k], str) and r[k].strip() for k in ("query", "positive", "negative"))
                for r in records)
    summary = re.search(r"tokens: (\d+) prompt \+ (\d+) completion; ([\d.]+) s", result.stderr)
    completion, seconds = int(summary.group(2)), float(summary.group(3))
    with capsys.disabled():
        print(f"\nlocal generator: {valid}/20 valid records ({valid / 20:.0%}), {completion} completion tokens "
              f"in {seconds:.1f} s = {completion / seconds:.1f} tok/s (prompt+completion "
              f"{(int(summary.group(1)) + completion) / seconds:.1f} tok/s)")
    assert valid / 20 >= 0.8
    assert all(r["meta"]["generator"] == "smollm2-135m" and r["language"] == "English" for r in records)
