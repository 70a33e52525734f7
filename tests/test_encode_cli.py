"""emb-encode driven through its real CLI: records, options, and the documented behaviour on bad input."""

from __future__ import annotations

import base64
import subprocess

import numpy as np
import pytest

from conftest import REPO, read_jsonl, run_cli, write_jsonl
from embtools.commands.encode import main as encode
from embtools.instructions import with_instruction
from embtools.records.embeddings import decode_vector

MINILM = ["--model", "minilm-l6"]


def run(args, input=None):
    """(exit code, embedding records, stderr lines) of emb-encode with minilm-l6."""
    return run_cli(encode, [*MINILM, *args], input)


def vectors(records: list[dict]) -> np.ndarray:
    return np.stack([decode_vector(r["embedding"]) for r in records])


def test_one_embedding_per_text_in_input_order_with_unknown_fields_kept(text_file):
    code, records, err = run([str(text_file)])
    assert code == 0
    assert [r["id"] for r in records] == [f"s{i}" for i in range(40)]
    assert records[3]["meta"] == read_jsonl(text_file)[3]["meta"]
    assert "text" not in records[0]
    assert np.allclose(np.linalg.norm(vectors(records), axis=1), 1.0, atol=1e-5)
    assert any("40 embeddings (384-d, mean pooling, float32)" in line for line in err)


def test_stdin_and_file_give_the_same_output(text_file):
    data = text_file.read_bytes()
    assert run([str(text_file)])[1] == run([], input=data)[1] == run(["-"], input=data)[1]


def test_base64_is_little_endian_float32_of_the_same_vectors(text_file):
    floats = vectors(run([str(text_file)])[1])
    records = run([str(text_file), "--encoding", "base64"])[1]
    raw = np.frombuffer(base64.b64decode(records[0]["embedding"]), dtype="<f4")
    assert np.array_equal(raw, floats[0])


def test_instruction_flag_and_record_field_are_the_same_query(tmp_path, text_file):
    instruction = "Retrieve semantically similar text."
    with_flag = vectors(run([str(text_file), "--instruction", instruction])[1])
    with_field = write_jsonl(tmp_path / "q.jsonl", [{**r, "instruction": instruction} for r in read_jsonl(text_file)])
    assert np.allclose(with_flag, vectors(run([str(with_field)])[1]), atol=1e-6)
    plain = vectors(run([str(text_file)])[1])
    assert not np.allclose(with_flag, plain, atol=1e-3)
    spelled_out = write_jsonl(tmp_path / "s.jsonl", [{"id": r["id"], "text": with_instruction(r["text"], instruction)}
                                                     for r in read_jsonl(text_file)])
    assert np.allclose(with_flag, vectors(run([str(spelled_out)])[1]), atol=1e-6)


def test_query_template_is_e5s():
    assert with_instruction("q", "Find it") == "Instruct: Find it\nQuery: q"
    assert with_instruction("q", None) == "q"


def test_title_is_joined_to_the_text_as_beir_does(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [{"id": 1, "title": "Aspirin", "text": "reduces fever."}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"id": 1, "text": "Aspirin reduces fever."}])
    assert np.allclose(vectors(run([str(a)])[1]), vectors(run([str(b)])[1]), atol=1e-6)


def test_id_field_reads_a_beir_corpus_as_it_is(tmp_path):
    from conftest import DATA

    beir = tmp_path / "corpus.jsonl"
    beir.write_bytes(b"".join(open(DATA / "scifact" / "corpus.jsonl", "rb").readlines()[:3]))
    plain = write_jsonl(tmp_path / "plain.jsonl", [{"id": r["_id"], "title": r["title"], "text": r["text"]}
                                                   for r in read_jsonl(beir)])
    code, records, _ = run(["--id-field", "_id", str(beir)])
    assert code == 0 and [r["id"] for r in records] == [r["_id"] for r in read_jsonl(beir)]
    assert "_id" not in records[0]
    assert np.allclose(vectors(records), vectors(run([str(plain)])[1]), atol=1e-6)
    code, _, err = run(["--id-field", "_id", str(plain)])
    assert code == 1 and err == ['emb-encode: error: line 1: field "_id" is missing']


def test_no_normalize_keeps_raw_norms(text_file):
    norms = np.linalg.norm(vectors(run([str(text_file), "--no-normalize"])[1]), axis=1)
    assert not np.allclose(norms, 1.0, atol=1e-2)


def test_output_file_is_written_whole(tmp_path, text_file):
    target = tmp_path / "emb.jsonl"
    code, out, _ = run([str(text_file), "-o", str(target)])
    assert code == 0 and out == [] and len(read_jsonl(target)) == 40


@pytest.mark.parametrize("content, error", [
    (b'{"id": 1, "text": "ok"}\n{"id": 2, "title": "t"}\n', 'emb-encode: error: line 2: field "text" is missing'),
    (b'{"id": 1, "text": "ok"}\n{"id": 2, "text": "x"\n', "emb-encode: error: line 2: not valid JSON"),
    (b'{"id": 1, "text": "caf\xe9"}\n', "emb-encode: error: line 1: not valid UTF-8"),
    (b'{"text": "no id"}\n', 'emb-encode: error: line 1: field "id" is missing'),
])
def test_bad_input_is_one_line_exit_1_and_no_output_file(tmp_path, content, error):
    source = tmp_path / "bad.jsonl"
    source.write_bytes(content)
    target = tmp_path / "out.jsonl"
    code, _, err = run([str(source), "-o", str(target)])
    assert code == 1
    assert len(err) == 1 and err[0].startswith(error)
    assert not target.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]


def test_empty_input_is_no_records_and_a_warning(tmp_path):
    code, out, err = run([], input=b"")
    assert code == 0 and out == []
    assert any("warning: no input records" in line for line in err)


def test_skip_invalid_counts_and_rejects_with_reasons(tmp_path, text_file):
    lines = text_file.read_bytes().splitlines()
    source = tmp_path / "mixed.jsonl"
    source.write_bytes(b"\n".join([lines[0], b'{"id": 9}', b"garbage", lines[1]]) + b"\n")
    rejects = tmp_path / "rejects.jsonl"
    code, out, err = run([str(source), "--rejects", str(rejects)])
    assert code == 0 and len(out) == 2
    assert any("2 skipped" in line for line in err)
    assert [r["line"] for r in read_jsonl(rejects)] == [2, 3]


def test_long_texts_are_truncated_and_counted(tmp_path, scifact_docs):
    source = write_jsonl(tmp_path / "docs.jsonl", [{"id": d["_id"], "text": d["text"]} for d in scifact_docs[:5]])
    code, out, err = run([str(source), "--max-length", "32"])
    assert code == 0 and len(out) == 5
    assert any("5 texts truncated to 32 tokens" in line for line in err)


def test_usage_errors_exit_2_with_one_line():
    code, _, err = run(["--pooling", "max"])
    assert code == 2
    assert len(err) == 1 and err[0].startswith("emb-encode: error: ")


def test_unknown_model_is_a_one_line_runtime_error(text_file, monkeypatch):
    monkeypatch.setenv("EMBTOOLS_OFFLINE", "1")  # no hub: the hub's answers are tested in test_hub_models.py
    code, _, err = run_cli(encode, ["--model", "no/such-model", text_file])
    assert code == 1 and len(err) == 1
    assert err[0].startswith("emb-encode: error: model 'no/such-model' is not a folder")


def test_verbose_shows_the_traceback():
    code, _, err = run(["-v"], input=b"nope\n")
    assert code == 1 and "Traceback (most recent call last):" in err and err[-1].startswith("emb-encode: error: ")


def test_head_closes_the_pipe_quietly(text_file):
    command = f"set -o pipefail; {REPO}/bin/emb-encode --model minilm-l6 {text_file} | head -1"
    done = subprocess.run(["bash", "-c", command], capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1
    assert b"Traceback" not in done.stderr and b"Broken pipe" not in done.stderr


def test_console_script_and_bin_wrapper_agree(text_file):
    script = REPO / ".venv" / "bin" / "emb-encode"
    if not script.exists():
        pytest.skip("console script not installed (make install)")
    outs = [subprocess.run([str(exe), *MINILM, str(text_file)], capture_output=True, timeout=300).stdout
            for exe in (script, REPO / "bin" / "emb-encode")]
    assert outs[0] == outs[1] and len(outs[0].splitlines()) == 40


def test_npy_and_parquet_hold_the_jsonl_vectors_bit_for_bit(tmp_path, text_file):
    from embtools.records.embedding_files import read_embedding_file

    records = run([str(text_file), "--encoding", "base64"])[1]
    for fmt in ("npy", "parquet"):
        out = tmp_path / f"e.{fmt}"
        code, stdout, err = run([str(text_file), "--format", fmt, "-o", str(out)])
        assert code == 0 and stdout == [], err
        _info, chunks = read_embedding_file(out)
        rows = [(record, row) for batch, matrix in chunks for record, row in zip(batch, matrix)]
        assert [{**r, "embedding": base64.b64encode(v.tobytes()).decode()} for r, v in rows] == records


def test_truncate_dim_keeps_the_first_dimensions_renormalized(text_file):
    full = vectors(run([str(text_file)])[1])
    code, records, err = run([str(text_file), "--truncate-dim", "64"])
    short = vectors(records)
    assert code == 0 and short.shape == (40, 64) and "(64-d, mean pooling" in err[-1]
    expected = full[:, :64] / np.linalg.norm(full[:, :64], axis=1, keepdims=True)
    assert np.allclose(short, expected, atol=1e-6)


@pytest.mark.parametrize("args, message", [
    (["--format", "npy"], "--format npy writes files: give -o OUT"),
    (["--format", "parquet", "-o", "-"], "--format parquet writes files: give -o OUT"),
    (["--precision", "int8"], "--precision int8 needs --format npy or parquet"),
    (["--precision", "ubinary", "-o", "x.jsonl"], "--precision ubinary needs --format npy or parquet"),
])
def test_binary_outputs_and_precisions_without_a_file_are_usage_errors(text_file, args, message):
    code, records, err = run([str(text_file), *args])
    assert code == 2 and records == [] and message in err[-1]
