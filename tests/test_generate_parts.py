"""The pieces of emb-brainstorm / emb-generate without a server: templates, placeholder sampling, parsing, cache."""

from __future__ import annotations

import multiprocessing
from collections import Counter

import pytest

from embtools.errors import EmbtoolsError
from embtools.generate.answer_parsing import OutputRejected, parse_json_object, parse_string_list
from embtools.generate.chat_request import ChatRequest, ChatResult
from embtools.generate.jobs import SamplingSettings, example_record, task_jobs
from embtools.generate.placeholders import VALUE_SETS, PlaceholderSampler, default_language_weights, parse_languages
from embtools.generate.prompt_templates import BRAINSTORM_TEMPLATES, FIELD_MAPPINGS, GENERATE_TEMPLATES
from embtools.generate.response_cache import ResponseCache
from embtools.instructions import ONE_STEP_TYPES, TASK_TYPES, TWO_STEP_TYPES
from embtools.records.examples import example_problem

DRAWS = 3000


def test_every_group_has_its_templates_and_every_placeholder_is_sampled():
    assert set(GENERATE_TEMPLATES) == set(TASK_TYPES) and set(BRAINSTORM_TEMPLATES) == set(TWO_STEP_TYPES)
    sampler = PlaceholderSampler(0, default_language_weights())
    for task_type, template in GENERATE_TEMPLATES.items():
        values = sampler.sample(task_type, "k")
        expected = set(template.placeholders) - {"task"}
        assert set(values) == expected, task_type
        text = template.render({**values, "task": "T"})
        assert "{" not in text.replace('{"', ""), task_type  # nothing left unfilled
        for key in FIELD_MAPPINGS[task_type].keys:
            assert f'"{key}"' in template.text
    for template in BRAINSTORM_TEMPLATES.values():
        assert template.placeholders == () and template.text.startswith("Brainstorm a list of")
        assert template.text.endswith("Do not explain yourself or output anything else. Be creative!")


def test_templates_are_the_papers_text():
    short_long = GENERATE_TEMPLATES["short-long"].text
    assert short_long.startswith("You have been assigned a retrieval task: {task}\nYour mission is to write one "
                                 "text retrieval example for this task in JSON format.")
    assert '- The "user_query" should be {query_type}, {query_length}, {clarity}, and diverse in topic.' in short_long
    assert "- The translation quality score of \"S3\" with respect to \"S1\" should be {low_score}\n" in \
        GENERATE_TEMPLATES["bitext"].text  # the paper's line has no full stop
    assert "(at least 300 words)" in GENERATE_TEMPLATES["long-long"].text
    assert "(a sentence or a phrase)" in GENERATE_TEMPLATES["short-short"].text
    assert "must always be a python list" in BRAINSTORM_TEMPLATES["short-long"].text  # Table 8, not Fig. 1
    assert len({t.id for t in GENERATE_TEMPLATES.values()} | {t.id for t in BRAINSTORM_TEMPLATES.values()}) == 10


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_placeholder_draws_cover_the_papers_value_sets_uniformly(task_type):
    sampler = PlaceholderSampler(7, default_language_weights())
    draws = [sampler.sample(task_type, f"{task_type}:{i}") for i in range(DRAWS)]
    for name, options in VALUE_SETS[task_type].items():
        counts = Counter(d[name] for d in draws)
        assert set(counts) == set(options), name
        expected = DRAWS / len(options)
        assert all(abs(c - expected) < 0.2 * expected for c in counts.values()), (name, counts)
    language_key = "src_lang" if task_type == "bitext" else "language"
    english = sum(d[language_key] == "English" for d in draws) / DRAWS
    assert 0.39 < english < 0.47
    assert len({d[language_key] for d in draws}) > 60


def test_the_papers_specific_value_sets():
    assert VALUE_SETS["bitext"]["low_score"] == ("1.5", "2", "2.5")
    assert VALUE_SETS["sts"]["low_score"] == ("2.5", "3", "3.5")
    assert VALUE_SETS["short-long"]["query_length"] == ("less than 5 words", "5 to 15 words", "at least 10 words")
    assert VALUE_SETS["long-short"]["num_words"][0] == "less than 10"
    assert VALUE_SETS["short-short"] == VALUE_SETS["long-long"] == {}


def test_bitext_pairs_two_different_languages():
    sampler = PlaceholderSampler(1, default_language_weights())
    pairs = [sampler.sample("bitext", str(i)) for i in range(500)]
    assert all(p["src_lang"] != p["tgt_lang"] for p in pairs)
    assert {p["tgt_lang"] for p in pairs} > {"English"}


def test_sampling_is_seeded_per_example():
    weights = default_language_weights()
    a, b, c = (PlaceholderSampler(s, weights) for s in (3, 3, 4))
    keys = [f"sts:{i}" for i in range(50)]
    assert [a.sample("sts", k) for k in keys] == [b.sample("sts", k) for k in keys]
    assert [a.sample("sts", k) for k in keys] != [c.sample("sts", k) for k in keys]
    assert a.sample("sts", "sts:9") == b.sample("sts", "sts:9")  # independent of what was drawn before


def test_language_weights_restrict_and_reweight():
    defaults = default_language_weights()
    assert abs(sum(defaults.values()) - 1) < 1e-9 and defaults["English"] == 0.43
    assert defaults["Russian"] > defaults["Dutch"] > defaults["Oromo"]
    restricted = parse_languages("en, German")
    assert set(restricted) == {"English", "German"}
    assert restricted["English"] / restricted["German"] == pytest.approx(defaults["English"] / defaults["German"])
    assert parse_languages("en:3,de:1") == {"English": 0.75, "German": 0.25}
    sampler = PlaceholderSampler(0, parse_languages("ja"))
    assert {sampler.sample("bitext", str(i))["src_lang"] for i in range(20)} == {"Japanese"}
    for bad in ("xx", "zh", "en:abc", "en:-1", "en:0"):
        with pytest.raises(EmbtoolsError):
            parse_languages(bad)


@pytest.mark.parametrize("content", [
    '{"S1": "a", "S2": "b", "S3": "c"}',
    '```json\n{"S1": "a", "S2": "b", "S3": "c"}\n```',
    'Sure! Here it is:\n{"S1": "a", "S2": "b", "S3": "c"}\nHope this helps.',
    '```\n{"S1": "a", "S2": "b", "S3": "c", "extra": 1}',
])
def test_json_objects_are_found_in_fences_and_prose(content):
    assert parse_json_object(content, ("S1", "S2", "S3"))["S2"] == "b"


@pytest.mark.parametrize(("content", "reason"), [
    (None, "empty_response"), ("  ", "empty_response"), ("no json here", "parse_error"),
    ('{"S1": "a", "S2": "b"', "parse_error"), ('["a"]', "not_an_object"),
    ('{"S1": "a", "S2": "b"}', "missing_key"), ('{"S1": "a", "S2": 5, "S3": "c"}', "not_a_string"),
    ('{"S1": "a", "S2": " ", "S3": "c"}', "empty_value"), ("{'S1': 'a', 'S2': 'b', 'S3': 'c'}", "parse_error"),
])
def test_bad_objects_are_rejected_with_a_reason(content, reason):
    with pytest.raises(OutputRejected) as caught:
        parse_json_object(content, ("S1", "S2", "S3"))
    assert caught.value.reason == reason


def test_truncated_output_is_named_as_such():
    with pytest.raises(OutputRejected) as caught:
        parse_json_object('{"S1": "a", "S2": "b', ("S1",), truncated=True)
    assert caught.value.reason == "truncated"


def test_string_lists_parse_as_json_or_python_literals_never_as_code(tmp_path):
    assert parse_string_list('["a", "b"]') == ["a", "b"]
    assert parse_string_list("Here:\n```python\n['a', \"it's\", '  ', 3]\n```") == ["a", "it's"]
    marker = tmp_path / "pwned"
    attack = f"[__import__('pathlib').Path({str(marker)!r}).touch()]"
    with pytest.raises(OutputRejected) as caught:
        parse_string_list(attack)
    assert caught.value.reason == "parse_error" and not marker.exists()
    for content, reason in (('{"a": 1}', "not_a_list"), ("[1, 2]", "empty_list"), ('["x", ', "parse_error")):
        with pytest.raises(OutputRejected) as caught:
            parse_string_list(content)
        assert caught.value.reason == reason, content


def test_content_hash_covers_model_messages_sampling_and_seed():
    base = ChatRequest("m", ({"role": "user", "content": "hi"},), seed=1)
    same = ChatRequest("m", ({"role": "user", "content": "hi"},), seed=1)
    assert base.content_hash() == same.content_hash()
    variants = [ChatRequest("m2", base.messages, seed=1), ChatRequest("m", ({"role": "user", "content": "ho"},),
                                                                      seed=1),
                ChatRequest("m", base.messages, seed=2), ChatRequest("m", base.messages, seed=1, temperature=0.5),
                ChatRequest("m", base.messages, seed=1, top_p=0.9), ChatRequest("m", base.messages, seed=1,
                                                                                max_tokens=9)]
    assert len({base.content_hash(), *(v.content_hash() for v in variants)}) == len(variants) + 1


def _write_many(folder, worker, count):
    cache = ResponseCache(folder)
    for i in range(count):
        request = ChatRequest("m", ({"role": "user", "content": f"{worker}-{i}"},))
        cache.put(request, ChatResult(f"answer {worker}-{i}", "stop", 3, 4, "m"))
    cache.close()


def test_cache_takes_concurrent_writers_from_several_processes(tmp_path):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_many, args=(tmp_path, w, 150)) for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    cache = ResponseCache(tmp_path)
    assert len(cache) == 450
    answer = cache.get(ChatRequest("m", ({"role": "user", "content": "2-149"},)))
    assert answer.content == "answer 2-149" and answer.cached and answer.completion_tokens == 4
    assert cache.get(ChatRequest("m", ({"role": "user", "content": "nope"},))) is None


def test_one_step_groups_have_fixed_instructions():
    assert FIELD_MAPPINGS["sts"].instruction == "Retrieve semantically similar text."
    assert FIELD_MAPPINGS["bitext"].instruction == "Retrieve parallel sentences."
    assert all(FIELD_MAPPINGS[t].instruction is None for t in TWO_STEP_TYPES)
    assert set(ONE_STEP_TYPES) == {"sts", "bitext"}


def test_generated_examples_pass_the_one_example_check_or_are_rejected():
    sampler, settings = PlaceholderSampler(0, parse_languages("en")), SamplingSettings("m")
    answer = ChatResult('{"input": "how tall is the tower", "positive_document": "The tower is 300 m tall."}', "stop")
    task = {"id": "t1", "task_type": "short-short", "task": "Given a question, retrieve its answer"}
    record = example_record(next(task_jobs([task], sampler, settings)), answer)
    assert example_problem(record) is None and example_problem(record, for_training=True) is None
    with pytest.raises(OutputRejected) as rejected:
        example_record(next(task_jobs([{**task, "id": 1.5}], sampler, settings)), answer)
    assert (rejected.value.reason, rejected.value.detail) == ("schema", 'field "id" must be a string or an integer')
