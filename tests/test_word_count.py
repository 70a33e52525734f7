"""Script-aware word counts: the scripts written without spaces are counted by characters, the others by whitespace,
and no XLM-R language's generated documents are rejected by emb-filter's length guidelines for their script alone."""

from __future__ import annotations

import json
import random
import re
from functools import lru_cache

import orjson
import pytest
import regex

from chat_server import ChatServer
from conftest import REPO, read_jsonl, run_cli, write_jsonl
from embtools.commands.filter import main as emb_filter
from embtools.commands.generate import main as emb_generate
from embtools.languages import XLMR_LANGUAGES
from embtools.records.word_count import SCRIPT_PARTS, UNSPACED_SCRIPTS, word_count, written_without_spaces

PASSAGES = {p["script"]: p for p in json.loads((REPO / "tests/fixtures/script_passages.json").read_text())["passages"]}
TOLERANCE = 0.2  # the estimate's error on a 60-word passage; the filter's own slack is 0.3
SPACED = {"German": "Die Impfung trainiert das Immunsystem, indem sie ihm einen harmlosen Teil eines Erregers zeigt.",
          "Russian": "Вакцина учит иммунную систему узнавать возбудителя, прежде чем человек заболеет.",
          "Arabic": "يتعلم الجهاز المناعي من اللقاح كيف يتعرف على الفيروس قبل أن يصاب الإنسان بالمرض.",
          "Hindi": "टीका प्रतिरक्षा प्रणाली को बीमारी से पहले रोगाणु को पहचानना सिखाता है।",
          "Korean": "백신은 면역 체계가 병원체를 미리 알아보도록 가르쳐 줍니다.",
          "Amharic": "ክትባቱ የበሽታ መከላከያ ስርዓቱን ያስተምራል።"}


def segmenter_words(passage: dict) -> list[str]:
    return [token for token in passage["segmented"].split("|") if regex.search(r"[\p{L}\p{N}]", token)]


@pytest.mark.parametrize("script", sorted(PASSAGES))
def test_an_unspaced_passage_counts_as_a_segmenter_would(script):
    passage = PASSAGES[script]
    assert passage["text"] == passage["segmented"].replace("|", "")
    assert passage["words"] == len(segmenter_words(passage)) >= 50
    assert abs(word_count(passage["text"]) - passage["words"]) <= TOLERANCE * passage["words"]
    assert len(passage["text"].split()) < passage["words"] / 5  # the whitespace count it replaces


@pytest.mark.parametrize("language", sorted(SPACED))
def test_spaced_scripts_are_counted_by_whitespace_as_before(language):
    sentence = SPACED[language]
    assert word_count(sentence) == len(sentence.split()) >= 5
    assert word_count(f" {sentence}\n\t{sentence} ") == 2 * len(sentence.split())


def test_mixed_text_counts_each_run_by_its_rule():
    assert word_count("我们使用 Python 3 编程。") == 5  # 我们|使用|Python|3|编程
    assert word_count("コーヒーとケーキ") == 5  # 8 kana / 1.75: each length mark ー is a character of its run, no word
    assert word_count("「東京」。") == 1 and word_count("") == 0  # punctuation is no word


def test_the_language_table_names_the_unspaced_languages():
    unspaced = {lang.name for lang in XLMR_LANGUAGES if written_without_spaces(lang.script)}
    assert unspaced == {"Chinese (Simplified)", "Chinese (Traditional)", "Japanese", "Thai", "Lao", "Khmer", "Burmese"}
    scripts = {lang.script for lang in XLMR_LANGUAGES}
    assert all(re.fullmatch(r"[A-Z][a-z]{3}", s) for s in scripts) and len(scripts) > 20
    assert {s for s in scripts if written_without_spaces(s)} == set(PASSAGES)  # a passage for each
    for script in scripts:  # every script (or each part) is one Unicode knows
        for part in SCRIPT_PARTS.get(script, (script,)):
            regex.compile(rf"\p{{Script={part}}}")
    assert set(UNSPACED_SCRIPTS) <= {p for parts in SCRIPT_PARTS.values() for p in parts} | scripts


# --- the 100 languages end to end: emb-generate (loopback chat server) -> emb-filter ---------------------------

_BUCKET_WORDS = {"less than 5 words": 3, "5 to 15 words": 9, "at least 10 words": 12}


@lru_cache(maxsize=None)
def script_letters(script: str) -> tuple[str, ...]:
    part = SCRIPT_PARTS.get(script, (script,))[0]
    letter = regex.compile(rf"\p{{Script={part}}}")
    return tuple(c for c in map(chr, range(0x41, 0x3000)) if letter.match(c) and c.isalpha())


def script_tokens(script: str, seed: int) -> list[str]:
    """Tokens whose concatenation is text in the script: a fixture passage's segments (spaces kept where the
    script has them), or for a spaced script made-up words of its letters with spaces between."""
    if script in PASSAGES:
        return PASSAGES[script]["segmented"].split("|")
    rng = random.Random(f"{script}:{seed}")
    made_up = ("".join(rng.choices(script_letters(script), k=rng.randint(2, 8))) for _ in range(600))
    return [token for word in made_up for token in (word, " ")]


def text_of(script: str, words: int, seed: int, backwards: bool = False) -> str:
    """A text of `words` words as a segmenter counts them (backwards: another text, never a substring of the first)."""
    tokens = script_tokens(script, seed)
    tokens = tokens[::-1] if backwards else tokens
    out, count = [], 0
    while count < words:
        for token in tokens:
            if count == words:
                break
            out.append(token)
            count += bool(regex.search(r"[\p{L}\p{N}]", token))
    return "".join(out).strip()


def answer(body: dict) -> str:
    """The loopback server's answer: every field in the asked language's script, of the asked length."""
    prompt = body["messages"][-1]["content"]
    language = re.search(r"should be in (.+?)\.\n", prompt).group(1)
    script = next(lang.script for lang in XLMR_LANGUAGES if lang.name == language)
    num_words = int(re.search(r"at least (\d+) words(?: long|\))", prompt).group(1))
    query_length = re.search(r"should be [^,]+, (.+? words), ", prompt)
    seed = body["seed"]
    fields = {"user_query": text_of(script, _BUCKET_WORDS[query_length.group(1)], seed, True) if query_length else "",
              "input": text_of(script, num_words, seed, True), "positive_document": text_of(script, num_words, seed),
              "hard_negative_document": text_of(script, num_words, seed + 1)}
    return json.dumps({key: fields[key] for key in re.findall(r'^- "([^"]+)": a string', prompt, re.M)})


def old_whitespace_rule_rejects(example: dict) -> bool:
    """The rule before script-aware counts: the positive's whitespace words below the asked minimum x 0.7."""
    placeholders = example["meta"]["placeholders"]
    asked = int(placeholders.get("num_words", 300))
    return len(example["positive"].split()) < asked * 0.7


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Two long-document examples (short-long, long-long) in each of the 99 distinct XLM-R languages."""
    folder = tmp_path_factory.mktemp("languages")
    tasks = write_jsonl(folder / "tasks.jsonl", [
        {"id": "docs", "task_type": "short-long", "task": "Retrieve articles that answer a question.", "meta": {}},
        {"id": "pairs", "task_type": "long-long", "task": "Given an essay, find another on the same topic.",
         "meta": {}}])
    examples = []
    with ChatServer() as server:
        server.responder = answer
        for name in dict.fromkeys(lang.name for lang in XLMR_LANGUAGES):
            code, records, err = run_cli(emb_generate, [tasks, "--base-url", server.url, "--no-cache",
                                                        "--languages", name, "--seed", len(examples)])
            assert code == 0 and len(records) == 2, err
            examples += [{**r, "id": f"{name}:{r['id']}"} for r in records]
    return write_jsonl(folder / "examples.jsonl", examples)


def test_no_language_is_rejected_for_its_script(generated, tmp_path):
    examples = read_jsonl(generated)
    assert len(examples) == 198 and {e["language"] for e in examples} == {lang.name for lang in XLMR_LANGUAGES}
    code, kept, err = run_cli(emb_filter, [generated, "--no-dedup", "--no-near-dup", "--no-language-check",
                                           "--rejects", tmp_path / "rejects.jsonl"])
    assert code == 0 and not (tmp_path / "rejects.jsonl").read_bytes(), err
    assert [orjson.dumps(k) for k in kept] == [orjson.dumps(e) for e in examples]
    # the same examples under the whitespace count: every unspaced language's documents would be rejected
    rejected_before = {e["language"] for e in examples if old_whitespace_rule_rejects(e)}
    assert rejected_before == {lang.name for lang in XLMR_LANGUAGES if written_without_spaces(lang.script)}
