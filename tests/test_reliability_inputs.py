"""Hostile input: the JSONL reader and every record validator, under arbitrary bytes, invalid UTF-8, 100 MB lines,
deep nesting, wrong types, NaN and infinities, empty input and duplicate ids. Each ends in a one-line error naming
the line (exit 1 on the command line) or, under --skip-invalid, a counted skip; never a traceback, never a hang."""

from __future__ import annotations

import base64
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import run_cli
from embtools.commands.index import main as emb_index
from embtools.encode.stream import text_record_validator, validate_text_record
from embtools.errors import EmbtoolsError, InputError
from embtools.generate.answer_parsing import OutputRejected, parse_json_object, parse_string_list
from embtools.generate.jobs import validate_task_record
from embtools.index.embedding_checks import EmbeddingChecker
from embtools.instructions import TASK_TYPES
from embtools.records.embeddings import decode_vector
from embtools.records.examples import schema_problem
from embtools.records.jsonl import MAX_NESTING, RejectSink, read_records
from embtools.train.data import validate_example

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_scalars = st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False,
                                                                                     allow_infinity=False) | st.text()
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=12)


def _read_all(path: Path, validate, skip: bool):
    """(records, sink or None, InputError or None) of reading `path` to the end."""
    sink = RejectSink() if skip else None
    try:
        return list(read_records(path, validate, rejects=sink)), sink, None
    except InputError as exc:
        return [], sink, exc


def _assert_one_line_error(exc: InputError, lines: int) -> None:
    text = str(exc)
    assert "\n" not in text and text.startswith("line ") and exc.line is not None and 1 <= exc.line <= lines


# --- the reader, byte level -------------------------------------------------------------------------------------

line_bytes = st.one_of(
    st.binary(max_size=60),
    st.builds(orjson.dumps, st.fixed_dictionaries({"id": st.integers(0, 9) | st.text(max_size=3),
                                                   "text": st.text(max_size=20)})),
    st.sampled_from([b"NaN", b'{"id": 1, "text": NaN}', b'{"id": 1, "text": Infinity}', b'{"id": 1e400}',
                     b'{"id": 1, "text": "\xff"}', b'{"id": 1, "text": "\\ud800"}', b"\xef\xbb\xbf{}", b"[]",
                     b'{"id": 1, "text": "a"', b"\x00", b"   ", b"{" * 3000]),
)


@FAST
@given(lines=st.lists(line_bytes, max_size=8), newline=st.sampled_from([b"\n", b"\r\n"]))
def test_any_bytes_end_in_records_or_a_line_numbered_error(tmp_path_factory, lines, newline):
    data = newline.join(lines)
    path = tmp_path_factory.mktemp("in") / "in.jsonl"
    path.write_bytes(data)
    pieces = data.split(b"\n")  # the reader splits at \n only
    count = len(pieces)
    records, _, error = _read_all(path, validate_text_record, skip=False)
    if error is not None:
        _assert_one_line_error(error, count)
    records, sink, error = _read_all(path, validate_text_record, skip=True)
    assert error is None
    bom = b"\xef\xbb\xbf"
    non_blank = sum(1 for i, line in enumerate(pieces)
                    if (line[3:] if i == 0 and line.startswith(bom) else line).strip())
    assert len(records) + sink.total == non_blank  # every line either read or counted, none silently dropped
    assert all(isinstance(r["text"], str) for r in records)


# --- the validators, value level --------------------------------------------------------------------------------

def _text_record_ok(record: dict) -> bool:
    """The contract's text record, written independently of the validator."""
    ident = record.get("id", ...)
    id_ok = (isinstance(ident, str) or isinstance(ident, int)) and not isinstance(ident, bool)
    optional_ok = all(record.get(f) is None or isinstance(record.get(f), str) for f in ("title", "instruction"))
    return id_ok and isinstance(record.get("text"), str) and optional_ok


text_records = st.dictionaries(st.sampled_from(["id", "text", "title", "instruction", "meta"]), json_values)


@FAST
@given(record=text_records)
def test_text_validator_accepts_exactly_the_contracts_records(record):
    try:
        validate_text_record(dict(record))
        accepted = True
    except InputError as exc:
        accepted = False
        assert "\n" not in str(exc) and str(exc).startswith("field ")
    assert accepted == _text_record_ok(record)


@FAST
@given(record=text_records, id_value=json_values)
def test_id_field_validator_moves_the_id_or_fails_in_one_line(record, id_value):
    record = {**record, "_id": id_value}
    expected = _text_record_ok({**{k: v for k, v in record.items() if k != "id"}, "id": id_value})
    try:
        result = text_record_validator("_id")(dict(record))
        assert expected and result["id"] == id_value and "_id" not in result
    except InputError as exc:
        assert not expected and "\n" not in str(exc)


finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
embedding_values = st.one_of(
    st.lists(finite32, max_size=6),
    st.lists(st.floats(), min_size=1, max_size=6),  # NaN, infinities, values beyond float32
    st.lists(st.integers(-10**6, 10**6), max_size=6),
    st.lists(json_values, max_size=4),
    st.builds(lambda b: base64.b64encode(b).decode(), st.binary(max_size=32)),
    st.text(max_size=12),
    json_scalars,
)


def _embedding_ok(value) -> bool:
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            return False
        return 0 < len(raw) and len(raw) % 4 == 0 and np.isfinite(np.frombuffer(raw, "<f4")).all()
    if not isinstance(value, list) or not value:
        return False
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    with np.errstate(over="ignore"):
        return numbers and all(math.isfinite(v) and np.isfinite(np.float32(v)) for v in value)


@FAST
@given(value=embedding_values)
def test_embedding_decoder_accepts_exactly_finite_vectors(value):
    try:
        vector = decode_vector(value)
    except InputError as exc:
        assert not _embedding_ok(value), value
        assert "\n" not in str(exc) and "embedding" in str(exc)
        return
    assert _embedding_ok(value), value
    assert vector.dtype == np.float32 and vector.ndim == 1 and np.isfinite(vector).all()
    if isinstance(value, list):
        assert np.array_equal(vector, np.asarray(value, dtype=np.float32))


@FAST
@given(ids=st.lists(st.integers(0, 6) | st.sampled_from(["a", "b", "0"]), min_size=1, max_size=12))
def test_duplicate_ids_in_an_index_build_are_an_error_or_a_counted_skip(tmp_path_factory, ids):
    path = tmp_path_factory.mktemp("in") / "e.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"id": i, "embedding": [1.0, 2.0]}) + b"\n" for i in ids))
    first_repeat = next((n for n, i in enumerate(ids, 1) if i in ids[:n - 1]), None)
    records, _, error = _read_all(path, EmbeddingChecker(), skip=False)
    if first_repeat is None:
        assert error is None and [r["id"] for r in records] == ids
    else:
        assert error is not None and error.line == first_repeat and "duplicate id" in str(error)
    records, sink, _ = _read_all(path, EmbeddingChecker(), skip=True)
    assert [r["id"] for r in records] == list(dict.fromkeys(ids))  # "0" and 0 are different ids, as in JSON
    assert sink.total == len(ids) - len(set(ids)) and set(sink.counts) <= {"duplicate id"}  # one reason, not one per id


# --- nesting, NaN, empty input --------------------------------------------------------------------------------

def _nested(depth: int) -> bytes:
    return b'{"id": 1, "text": "a", "meta": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}\n"


@pytest.mark.parametrize("depth, error", [(MAX_NESTING, None), (MAX_NESTING + 1, "nested deeper than"),
                                          (600, "nested deeper than"), (5000, "not valid JSON")])
def test_deep_nesting_is_refused_before_it_reaches_the_writer(tmp_path, depth, error):
    path = tmp_path / "deep.jsonl"
    path.write_bytes(b'{"id": 0, "text": "ok"}\n' + _nested(depth))
    records, _, exc = _read_all(path, validate_text_record, skip=False)
    if error is None:
        assert len(records) == 2 and orjson.dumps({"rejected": {"record": records[1]}})  # writable, with room
    else:
        assert exc.line == 2 and error in str(exc)


@pytest.mark.parametrize("content, message", [
    (b"", "no embeddings to index"),
    (b'{"id": 1, "embedding": [1.0, NaN]}\n', "line 1: not valid JSON"),
    (b'{"id": 1, "embedding": [1.0, 2.0]}\n{"id": 1, "embedding": [3.0, 4.0]}\n', "line 2: duplicate id 1"),
    (b'{"id": 1, "embedding": [1.0, 2.0]}\n{"id": 2, "embedding": [1.0]}\n',
     "line 2: id 2: dimension 2 expected, got 1"),
    (b'{"id": 1, "embedding": "AA=A"}\n', "line 1: field \"embedding\" is a string but not valid base64"),
    (b'\xff\xfe\x00garbage\n', "line 1: not valid UTF-8"),
])
def test_emb_index_build_bad_input_is_one_line_and_exit_1(tmp_path, content, message):
    code, _, err = run_cli(emb_index, ["build", "-o", tmp_path / "ix"], content)
    assert code == 1 and len(err) == 1 and err[0].startswith(f"emb-index: error: {message}"), err
    assert not (tmp_path / "ix").exists()


def test_a_value_beyond_float32_is_a_one_line_error(tmp_path):
    """In a fresh process: Python prints a warning once per place, so an earlier test in this one would hide it."""
    done = subprocess.run([str(Path(sys.executable).parent / "emb-index"), "build", "-o", str(tmp_path / "ix")],
                          input=b'{"id": 1, "embedding": [1.0, 2.0]}\n{"id": 2, "embedding": [1.0, 1e39]}\n',
                          capture_output=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr == b'emb-index: error: line 2: field "embedding" contains NaN or infinity\n'


def test_emb_index_build_skip_invalid_counts_every_skip(tmp_path):
    content = (b'{"id": 1, "embedding": [1.0, 2.0]}\n{"id": 1, "embedding": [3.0, 4.0]}\nnot json\n'
               b'{"id": 2, "embedding": [1.0, Infinity]}\n{"id": 3, "embedding": [0.5, 0.5]}\n')
    code, _, err = run_cli(emb_index, ["build", "-o", tmp_path / "ix", "--rejects", tmp_path / "rej.jsonl"], content)
    summary = "\n".join(err)
    assert code == 0 and "2 vectors" in summary and "3 skipped" in summary
    assert [orjson.loads(r)["line"] for r in (tmp_path / "rej.jsonl").read_bytes().splitlines()] == [2, 3, 4]


# --- a 100 MB line: memory bounded by the line, and no hang --------------------------------------------------------

_BIG_LINE_PROBE = """
import resource, sys
from embtools.records.jsonl import read_records, RejectSink
from embtools.encode.stream import validate_text_record
from embtools.errors import InputError
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
sink = RejectSink()
sizes = [len(r["text"]) for r in read_records(sys.argv[1], validate_text_record, rejects=sink)]
try:
    list(read_records(sys.argv[1], validate_text_record))
    error = ""
except InputError as exc:
    error = str(exc)
import json
print(json.dumps({"sizes": sizes, "skipped": sink.total, "error": error[:300],
                  "growth_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 - baseline}))
"""


@pytest.mark.slow
def test_a_100_mb_line_is_read_in_memory_bounded_by_the_line(tmp_path):
    size = 100 * 2**20
    path = tmp_path / "big.jsonl"
    with open(path, "wb") as out:
        out.write(b'{"id": 1, "text": "' + b"a" * size + b'"}\n')
        out.write(b'{"id": 2, "text": "' + b"b" * size + b"\n")  # unterminated: a 100 MB bad line
        out.write(b'{"id": 3, "text": "c"}\n')
    done = subprocess.run([sys.executable, "-c", _BIG_LINE_PROBE, str(path)], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-1000:]
    found = orjson.loads(done.stdout)
    assert found["sizes"] == [size, 1] and found["skipped"] == 1
    assert found["error"].startswith("line 2: not valid JSON") and len(found["error"]) < 200  # no 100 MB quote
    # the line's bytes, the buffered reader's join of its chunks, the parsed string: about 4x the line, not the file
    assert found["growth_mib"] < 5 * 100, f"peak RSS grew {found['growth_mib']} MiB for a 100 MiB line"


def test_endless_garbage_on_stdin_fails_fast_without_a_traceback():
    garbage = np.random.default_rng(0).integers(0, 256, 2_000_000, dtype=np.uint8).tobytes()
    done = subprocess.run([str(Path(sys.executable).parent / "emb-index"), "build", "-o", "/nonexistent/never"],
                          input=garbage, capture_output=True, timeout=60)
    err = done.stderr.decode()
    assert done.returncode == 1 and err.count("\n") == 1 and "Traceback" not in err and "line 1:" in err


# --- emb-eval's inputs ---------------------------------------------------------------------------------------------

@FAST
@given(data=st.binary(max_size=200) | st.lists(json_values, max_size=3).map(
    lambda vs: b"\n".join(orjson.dumps({"sentence1": "a", "sentence2": v, "score": 1}) for v in vs)))
def test_sts_files_load_or_fail_in_one_line(tmp_path_factory, data):
    from embtools.records.datasets import load_sts

    path = tmp_path_factory.mktemp("sts") / "sts.jsonl"
    path.write_bytes(data)
    try:
        load_sts(path)
    except EmbtoolsError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)


@FAST
@given(data=st.binary(max_size=80) | st.sampled_from([b"q\td\t1\n\xff\td\t1\n", b"q\td\t" + b"1" * 200_000 + b"\n"]))
def test_qrels_files_load_or_fail_in_one_line(tmp_path_factory, data):
    from embtools.records.datasets import load_qrels

    path = tmp_path_factory.mktemp("qrels") / "test.tsv"
    path.write_bytes(data)
    try:
        load_qrels(path)
    except EmbtoolsError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)


# --- the validators of emb-generate (task records), emb-filter (example schema) and emb-train (examples) -----------

_word = st.text(max_size=6) | st.sampled_from([" ", "\t\n", "a text"])
task_records = st.dictionaries(st.sampled_from(["id", "task_type", "task", "meta"]),
                               json_values | st.sampled_from(list(TASK_TYPES)) | _word)
example_records = st.dictionaries(
    st.sampled_from(["id", "task_type", "instruction", "query", "positive", "negative", "language", "meta"]),
    json_values | st.sampled_from(list(TASK_TYPES)) | _word)


def _id_ok(record: dict) -> bool:
    return isinstance(record.get("id"), (str, int)) and not isinstance(record.get("id"), bool)


def _filled(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


@FAST
@given(record=task_records)
def test_task_validator_accepts_exactly_brainstorm_task_records(record):
    expected = _id_ok(record) and record.get("task_type") in ("short-long", "long-short", "short-short", "long-long") \
        and _filled(record.get("task"))
    try:
        validate_task_record(dict(record))
        assert expected
    except InputError as exc:
        assert not expected and "\n" not in str(exc)


@FAST
@given(record=example_records)
def test_filter_schema_accepts_exactly_contract_examples(record):
    expected = (_id_ok(record) and record.get("task_type") in TASK_TYPES
                and all(_filled(record.get(f)) for f in ("instruction", "query", "positive"))
                and (record.get("negative") is None or _filled(record.get("negative")))
                and isinstance(record.get("language"), str) and isinstance(record.get("meta", {}), dict))
    problem = schema_problem(dict(record))
    assert (problem is None) == expected and (problem is None or "\n" not in problem)


@FAST
@given(record=example_records)
def test_train_validator_accepts_exactly_trainable_examples(record):
    expected = (_filled(record.get("query")) and _filled(record.get("positive"))
                and isinstance(record.get("instruction"), str)
                and (record.get("negative") is None or _filled(record.get("negative"))))
    try:
        validate_example(dict(record))
        assert expected
    except InputError as exc:
        assert not expected and "\n" not in str(exc)


# --- model output is data: the parsers of emb-generate and emb-brainstorm -------------------------------------------

_pieces = st.sampled_from(["```json\n", "```", "{", "}", "[", "]", '"user_query"', ": ", ", ", '"x"', "'y'", "1e999",
                           "NaN", "None", "\\", "\n", "__import__('os')", "lambda: 0", "1" * 5000])
model_answers = st.none() | st.text(max_size=80) | st.lists(_pieces | st.text(max_size=5), max_size=20).map("".join)


@FAST
@given(content=model_answers, truncated=st.booleans())
def test_model_output_parses_or_is_a_counted_reject(content, truncated):
    for parse in (lambda: parse_json_object(content, ("user_query",), truncated), lambda: parse_string_list(content)):
        try:
            value = parse()
        except OutputRejected as exc:
            assert exc.reason and "\n" not in exc.reason
            continue
        assert isinstance(value, (dict, list))


@pytest.mark.parametrize("content", ['{"user_query": ' + "[" * 50_000 + "]" * 50_000 + "}",
                                     "[" * 50_000 + "]" * 50_000])
def test_a_deeply_nested_model_answer_is_a_counted_reject(content):
    for parse in (lambda: parse_json_object(content, ("user_query",)), lambda: parse_string_list(content)):
        with pytest.raises(OutputRejected):
            parse()
