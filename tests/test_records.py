"""The shared record I/O: streaming JSONL, line-numbered errors, skipping with reasons, atomic outputs."""

from __future__ import annotations

import os
import threading

import orjson
import pytest

from embtools.errors import EmbtoolsError, InputError
from embtools.records.atomic import atomic_dir, atomic_file, remove_stale_temporaries
from embtools.records.jsonl import RejectSink, read_records, require_id, require_string


def _validate(record):
    require_id(record)
    require_string(record, "text")
    return record


def _read(tmp_path, content: bytes, **kwargs):
    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    return list(read_records(path, _validate, **kwargs))


def test_skips_blank_lines_and_keeps_unknown_fields(tmp_path):
    records = _read(tmp_path, b'{"id": 1, "text": "a"}\n\n   \n{"id": "x", "text": "b", "extra": [1]}\n')
    assert records == [{"id": 1, "text": "a"}, {"id": "x", "text": "b", "extra": [1]}]


def test_reads_records_lazily(tmp_path):
    """The first record comes out of a pipe while the writer still holds back the second line."""
    pipe = tmp_path / "in.fifo"
    os.mkfifo(pipe)
    first_read, second_written = threading.Event(), threading.Event()

    def writer():
        with open(pipe, "wb") as out:
            out.write(b'{"id": 1, "text": "a"}\n')
            out.flush()
            first_read.wait(timeout=5)  # a reader that wants the whole input first gets it only after 5 s
            second_written.set()
            out.write(b'{"id": 2, "text": "b"}\n')

    thread = threading.Thread(target=writer)
    thread.start()
    records = read_records(pipe, _validate)
    assert next(records) == {"id": 1, "text": "a"} and not second_written.is_set()
    first_read.set()
    assert list(records) == [{"id": 2, "text": "b"}]
    thread.join()


@pytest.mark.parametrize("content, message", [
    (b'{"id": 1, "text": "a"}\n{"id": 2}\n', 'line 2: field "text" is missing'),
    (b'{"id": 1, "text": "a"}\nnot json\n', "line 2: not valid JSON"),
    (b'{"id": 1, "text": "\xff\xfe"}\n', "line 1: not valid UTF-8"),
    (b'[1, 2]\n', "line 1: expected a JSON object, got list"),
    (b'{"id": 1.5, "text": "a"}\n', 'line 1: field "id" must be a string or an integer, got float'),
    (b'{"id": true, "text": "a"}\n', 'line 1: field "id" must be a string or an integer, got bool'),
    (b'{"id": 1, "text": 7}\n', 'line 1: field "text" must be a string, got int'),
    (b'{"id": 1, "text": NaN}\n', "line 1: not valid JSON"),
    (b'{"id": 1, "text": "a"', "line 1: not valid JSON"),
    (b"[" * 5000 + b"]" * 5000 + b"\n", "line 1: not valid JSON"),
])
def test_bad_lines_raise_with_their_line_number(tmp_path, content, message):
    with pytest.raises(InputError) as info:
        _read(tmp_path, content)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_empty_input_yields_nothing(tmp_path):
    assert _read(tmp_path, b"") == []


def test_skip_invalid_counts_and_writes_every_reject(tmp_path):
    rejects_path = tmp_path / "rejects.jsonl"
    with open(rejects_path, "wb") as stream:
        sink = RejectSink(stream)
        records = _read(tmp_path, b'{"id": 1, "text": "a"}\n{"id": 2}\nnope\n{"id": 3, "text": "c"}\n', rejects=sink)
    assert [r["id"] for r in records] == [1, 3]
    assert sink.total == 2
    rejects = [orjson.loads(line) for line in rejects_path.read_bytes().splitlines()]
    assert [r["line"] for r in rejects] == [2, 3]
    assert rejects[0]["record"] == {"id": 2} and "text" in rejects[0]["reason"]
    assert rejects[1]["raw"].startswith("nope")


def test_missing_input_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        list(read_records(tmp_path / "absent.jsonl"))


def test_atomic_file_appears_only_when_complete(tmp_path):
    target = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        with atomic_file(target) as stream:
            stream.write(b"partial\n")
            raise RuntimeError("killed")
    assert not target.exists() and os.listdir(tmp_path) == []
    with atomic_file(target) as stream:
        stream.write(b"whole\n")
    assert target.read_bytes() == b"whole\n" and os.listdir(tmp_path) == ["out.jsonl"]


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    target = tmp_path / "out.jsonl"
    dead = tmp_path / ".out.jsonl.embtools-tmp-999999999"
    alive = tmp_path / f".out.jsonl.embtools-tmp-{os.getpid()}"
    dead.write_text("left by kill -9")
    alive.write_text("still being written")
    remove_stale_temporaries(target)
    assert not dead.exists() and alive.exists()


def test_atomic_dir_refuses_to_overwrite_without_permission(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as work:
        (work / "a").write_text("1")
    with pytest.raises(EmbtoolsError, match="--overwrite"):
        with atomic_dir(target):
            pass
    with atomic_dir(target, overwrite=True) as work:
        (work / "b").write_text("2")
    assert sorted(os.listdir(target)) == ["b"]
    assert sorted(os.listdir(tmp_path)) == ["model"]
