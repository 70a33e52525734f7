"""Hostile models, files and environments: model output and model files are only ever data, remote code only on
request, outputs never silently replaced, corrupt or foreign index folders and caches refused in one line, and an API
key in the environment never reaches any artifact of a run."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from importlib.metadata import entry_points
from pathlib import Path

import click
import numpy as np
import orjson
import pytest
from click.testing import CliRunner

from conftest import REPO, run_cli, write_jsonl
from embtools.commands.index import main as emb_index
from embtools.encode.embedding_cache import FORMAT_VERSION, EmbeddingCache
from embtools.errors import EmbtoolsError
from embtools.index.vector_index import build_index
from embtools.models.loading import resolve_model_path

SRC = REPO / "src" / "embtools"
CANARY = "sk-embtools-canary-7f3a9c2e5b1d4086"

# --- the source: no code from data -------------------------------------------------------------------------------

FORBIDDEN = {
    r"(?<![.\w])eval\(": "eval() of a string",
    r"(?<![.\w])exec\(": "exec() of a string",
    r"\bimport (c?pickle|dill|cloudpickle|marshal|shelve)\b|\bfrom (c?pickle|dill|cloudpickle) import":
        "a pickle module",
    r"\bjoblib\.load\(": "joblib.load (pickle)",
    r"allow_pickle\s*=\s*True": "numpy allow_pickle",
    r"trust_remote_code\s*=\s*True": "remote code by default",
    r"\byaml\.(unsafe_)?load\((?![^)]*SafeLoader)": "yaml.load without SafeLoader",
    r"shell\s*=\s*True": "a shell command line",
    r"\bos\.system\(": "os.system",
    r"\bliteral_eval\(": "literal_eval (allowed only where model output is parsed as data: see below)",
}
# ast.literal_eval parses Python literals without running code; generate/answer_parsing.py uses it for list-shaped
# answers.
LITERAL_EVAL_ALLOWED = {"generate/answer_parsing.py"}


def _source_files() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_no_source_file_turns_data_into_code():
    found = []
    for path in _source_files():
        text = path.read_text()
        for pattern, what in FORBIDDEN.items():
            if what.startswith("literal_eval") and path.relative_to(SRC).as_posix() in LITERAL_EVAL_ALLOWED:
                continue
            found += [f"{path.relative_to(REPO)}:{text[:m.start()].count(chr(10)) + 1}: {what}"
                      for m in re.finditer(pattern, text)]
    assert not found, "\n".join(found)


_TORCH_LOAD = re.compile(r"torch\.load\(([^()]|\([^()]*\))*\)")
TORCH_LOADERS = {"train/checkpoint.py", "train/loop.py"}  # resuming reads optimizer, scheduler and RNG state


def _torch_load_calls() -> dict[str, list[str]]:
    """Each source file that calls torch.load (path under src/embtools) and its calls, as written."""
    found = {p.relative_to(SRC).as_posix(): [m.group(0) for m in _TORCH_LOAD.finditer(p.read_text())]
             for p in _source_files()}
    return {name: calls for name, calls in found.items() if calls}


def test_every_torch_load_is_weights_only():
    calls = _torch_load_calls()
    assert calls, "no torch.load call found: the pattern no longer matches how the source calls it"
    assert not [f"{name}: {call}" for name, found in calls.items() for call in found if "weights_only=True" not in call]


def test_no_other_file_calls_torch_load():
    assert set(_torch_load_calls()) <= TORCH_LOADERS


def _commands() -> dict[str, click.Command]:
    return {ep.name: ep.load() for ep in entry_points(group="console_scripts") if ep.value.startswith("embtools.")}


def _walk(command: click.Command, path: str):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _walk(sub, f"{path} {name}")


def test_remote_code_is_an_off_by_default_flag_wherever_it_exists():
    seen = []
    for name, command in _commands().items():
        for path, sub in _walk(command, name):
            for param in sub.params:
                if "trust" in param.name and "remote" in param.name:
                    seen.append(path)
                    default = param.get_default(click.Context(sub))
                    assert param.is_flag and default is False, path
                    assert param.envvar is None and not param.secondary_opts, path
    assert "emb-encode" in seen


def _model_copy(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    shutil.copytree(resolve_model_path("minilm-l6"), folder)
    return folder


def test_a_model_folders_own_code_never_runs_without_the_flag(tmp_path):
    from embtools.encode.encoder import Encoder, EncodeSettings

    folder = _model_copy(tmp_path, "custom-code")
    marker = tmp_path / "code-ran"
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
                                    "from transformers import BertConfig as EvilConfig, BertModel as EvilModel\n")
    vectors = Encoder(str(folder), EncodeSettings(dtype="float32", max_length=16)).encode(["a text"])
    assert vectors.shape == (1, 384) and not marker.exists()


class _Payload:
    """Unpickling this writes a file: what a hostile pytorch_model.bin would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "ran"))


def test_a_pickled_checkpoint_is_not_unpickled(tmp_path):
    import torch

    from embtools.commands.encode import main as encode

    folder = _model_copy(tmp_path, "pickled")
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "pickle-ran"
    torch.save({"embeddings.word_embeddings.weight": _Payload(marker)}, folder / "pytorch_model.bin")
    code, _, err = run_cli(encode, ["-m", folder, "--dtype", "float32"], input=b'{"id": 1, "text": "a"}\n')
    assert code == 1 and not marker.exists()
    assert len(err) == 1 and "Weights only load failed" in err[0]
    assert err[0].startswith("emb-encode: error: cannot load model ")


# --- outputs are never silently replaced --------------------------------------------------------------------------

def _vectors(n: int = 30, dim: int = 8, seed: int = 0) -> list[dict]:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return [{"id": f"d{i}", "embedding": row.tolist()} for i, row in enumerate(rows)]


def test_emb_index_build_never_replaces_an_existing_folder_without_overwrite(tmp_path):
    vectors = write_jsonl(tmp_path / "v.jsonl", _vectors())
    target = tmp_path / "ix"
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    code, _, err = run_cli(emb_index, ["build", vectors, "-o", target])
    assert code == 1 and err == [f"emb-index: error: {target} exists; pass --overwrite to replace it"]
    assert (target / "precious.txt").read_text() == "keep me"
    code, _, _ = run_cli(emb_index, ["build", vectors, "-o", target, "--overwrite"])
    assert code == 0 and sorted(p.name for p in target.iterdir()) == ["ids.jsonl", "index.faiss", "index.json"]


# --- corrupt or foreign index folders and caches --------------------------------------------------------------------

@pytest.fixture
def index_dir(tmp_path) -> Path:
    build_index(iter(_vectors(60)), tmp_path / "ix")
    return tmp_path / "ix"


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def _edit_meta(folder: Path, **changes) -> None:
    meta = orjson.loads((folder / "index.json").read_bytes())
    (folder / "index.json").write_bytes(orjson.dumps({**meta, **changes}))


DAMAGE = {
    "vector bytes flipped": (lambda d: _flip_byte(d / "index.faiss", -20), "index.faiss is corrupt: its crc32"),
    "index truncated": (lambda d: (d / "index.faiss").write_bytes((d / "index.faiss").read_bytes()[:500]),
                        "index.faiss is corrupt: 500 bytes"),
    "an id edited": (lambda d: (d / "ids.jsonl").write_bytes((d / "ids.jsonl").read_bytes().replace(b"d7", b"d8")),
                     "ids.jsonl is corrupt: its crc32"),
    "ids missing": (lambda d: (d / "ids.jsonl").unlink(), "ids.jsonl is missing"),
    "meta not JSON": (lambda d: (d / "index.json").write_bytes(b"{\x00"), "index.json is corrupt (not valid JSON)"),
    "a newer format": (lambda d: _edit_meta(d, format_version=99),
                       "has format version 99; this embtools reads version 1"),
    "another program's folder": (lambda d: _edit_meta(d, format="other-tool"), "does not describe an emb-index folder"),
    "digests stripped of a size": (lambda d: _edit_meta(d, files={"index.faiss": {}}), "no size and checksum recorded"),
    "no digests at all": (lambda d: _edit_meta(d, files=None), "no size and checksum recorded for index.faiss"),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
@pytest.mark.parametrize("subcommand", ["search", "add"])
def test_a_damaged_or_foreign_index_folder_is_refused_in_one_line(tmp_path, index_dir, damage, subcommand):
    queries = write_jsonl(tmp_path / "q.jsonl", _vectors(3, seed=1) if subcommand == "search" else
                          [{**r, "id": f"new{i}"} for i, r in enumerate(_vectors(3, seed=1))])
    before = {p.name: p.read_bytes() for p in index_dir.iterdir()}
    damage_it, message = DAMAGE[damage]
    damage_it(index_dir)
    damaged = {p.name: p.read_bytes() for p in index_dir.iterdir()}
    code, out, err = run_cli(emb_index, [subcommand, queries, "--index", index_dir])
    assert code == 1 and out == [] and len(err) == 1 and message in err[0], err
    assert {p.name: p.read_bytes() for p in index_dir.iterdir()} == damaged != before  # refused, not "repaired"


_VECTORS_TABLE = "CREATE TABLE vectors (key BLOB PRIMARY KEY, dim INTEGER NOT NULL, vector BLOB NOT NULL)"


@pytest.mark.parametrize("prepare, message", [
    (lambda p: p.write_bytes(b"not a database at all" * 100), "is corrupt (file is not a database)"),
    (lambda p: sqlite3.connect(p).execute("CREATE TABLE other (x)").connection.commit(),
     "is not an embtools embedding cache (tables: other)"),
    (lambda p: sqlite3.connect(p).execute("PRAGMA user_version = 7"), "has format version 7; this embtools uses "
                                                                     f"version {FORMAT_VERSION}"),
    (lambda p: sqlite3.connect(p).execute(_VECTORS_TABLE).connection.commit(),  # right layout, never stamped by us
     "is not an embtools embedding cache (tables: vectors)"),
])
def test_a_corrupt_or_foreign_cache_is_refused_with_how_to_rebuild(tmp_path, prepare, message):
    path = tmp_path / "embeddings.sqlite"
    prepare(path)
    with pytest.raises(EmbtoolsError) as info:
        EmbeddingCache(path)
    assert message in str(info.value) and "delete it to rebuild, or run with --no-cache" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_new_cache_is_stamped_with_its_format_version(tmp_path):
    EmbeddingCache(tmp_path / "embeddings.sqlite").close()
    version = sqlite3.connect(tmp_path / "embeddings.sqlite").execute("PRAGMA user_version").fetchone()[0]
    assert version == FORMAT_VERSION


# --- an API key never reaches an artifact ------------------------------------------------------------------------

def _leaks(roots: list[Path], texts: dict[str, bytes]) -> list[str]:
    """Where the canary key (or its last 12 characters, as masked keys show) appears: files under roots, or texts."""
    needles = [CANARY.encode(), CANARY[-12:].encode()]
    found = [name for name, data in texts.items() if any(n in data for n in needles)]
    for root in roots:
        found += [str(p) for p in root.rglob("*") if p.is_file() and any(n in p.read_bytes() for n in needles)]
    return found


def test_the_api_key_reaches_no_artifact_of_encode_index_and_eval(tmp_path, monkeypatch, sts_dev):
    from embtools.commands.encode import main as encode
    from embtools.commands.eval import main as evaluate

    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    monkeypatch.setenv("EMBTOOLS_HOME", str(home))
    texts = write_jsonl(work / "texts.jsonl", [{"id": i, "text": p["sentence1"]} for i, p in enumerate(sts_dev[:12])])
    sts = write_jsonl(work / "sts.jsonl", sts_dev[:12])
    (work / "results").mkdir()
    (work / "results" / "earlier.json").write_text("an earlier result")  # a results folder accumulates
    streams: dict[str, bytes] = {}
    runs = [
        ("encode", encode, ["-v", "-m", "minilm-l6", "--dtype", "float32", str(texts), "-o", str(work / "e.jsonl")]),
        ("build", emb_index, ["build", "-v", str(work / "e.jsonl"), "-o", str(work / "ix")]),
        ("search", emb_index, ["search", "-v", str(work / "e.jsonl"), "--index", str(work / "ix"), "-k", "3"]),
        ("eval", evaluate, ["-v", str(sts), "-m", "minilm-l6", "--dtype", "float32", "--output-folder",
                            str(work / "results")]),
        ("bad input", emb_index, ["build", "-v", str(texts), "-o", str(work / "never")]),
    ]
    for name, command, args in runs:
        result = CliRunner().invoke(command, args)
        assert result.exit_code == (1 if name == "bad input" else 0), (name, result.stderr[-500:])
        streams[f"{name} stdout"], streams[f"{name} stderr"] = result.stdout_bytes, result.stderr_bytes
    results = [p.name for p in (work / "results").rglob("*.json")]
    assert len(results) == 3 and list(home.rglob("*.sqlite"))  # earlier.json, the task's result, model_meta.json
    assert (work / "results" / "earlier.json").read_text() == "an earlier result"
    assert _leaks([home, work], streams) == []


def test_the_api_key_reaches_no_artifact_of_brainstorm_generate_and_filter(tmp_path, monkeypatch):
    """A full synthetic-data run against a real local endpoint, then one whose endpoint answers 401 and echoes the
    Authorization header (as careless servers do), under -v: the key is sent, and never written anywhere."""
    from chat_server import ChatServer
    from embtools.commands.brainstorm import main as brainstorm
    from embtools.commands.filter import main as emb_filter
    from embtools.commands.generate import main as generate

    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    monkeypatch.setenv("EMBTOOLS_HOME", str(home))
    streams: dict[str, bytes] = {}
    with ChatServer() as server:
        runs = [
            ("brainstorm", brainstorm, ["-v", "--base-url", server.url, "--task-type", "short-long", "-n", "2",
                                        "-o", str(work / "tasks.jsonl")], 0),
            ("generate", generate, ["-v", "--base-url", server.url, str(work / "tasks.jsonl"), "-o",
                                    str(work / "examples.jsonl"), "--rejects", str(work / "rejects.jsonl")], 0),
            ("filter", emb_filter, ["-v", str(work / "examples.jsonl"), "-o", str(work / "kept.jsonl"),
                                    "--report", str(work / "report.md"), "--no-language-check", "--no-guidelines"], 0),
        ]
        for name, command, args, code in runs:
            result = CliRunner().invoke(command, args)
            assert result.exit_code == code, (name, result.stderr[-800:])
            streams[f"{name} stdout"], streams[f"{name} stderr"] = result.stdout_bytes, result.stderr_bytes
        server.fault = lambda body, seen: "401"
        result = CliRunner().invoke(generate, ["-v", "--no-cache", "--base-url", server.url, str(work / "tasks.jsonl"),
                                               "-o", str(work / "never.jsonl"), "--rejects", str(work / "r401.jsonl")])
        assert result.exit_code == 1 and "401" in result.stderr
        streams["401 stdout"], streams["401 stderr"] = result.stdout_bytes, result.stderr_bytes
        assert {auth for _, _, auth in server.log if auth} == {f"Bearer {CANARY}"}  # the key was really sent
    assert (work / "kept.jsonl").stat().st_size > 0 and list((home).rglob("*.sqlite*"))
    assert _leaks([home, work], streams) == []


def test_emb_train_never_replaces_an_existing_folder_without_overwrite(tmp_path):
    from embtools.commands.train import main as train

    examples = write_jsonl(tmp_path / "ex.jsonl", [{"id": 1, "task_type": "short-long", "instruction": "i",
                                                   "query": "q", "positive": "p", "negative": None}])
    target = tmp_path / "model"
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    code, _, err = run_cli(train, [examples, "-o", target, "-m", "minilm-l6"])
    assert code == 1 and err == [f"emb-train: error: {target} exists; pass --overwrite to replace it"]
    assert [p.name for p in target.iterdir()] == ["precious.txt"]


def _generate_with_cache(tmp_path: Path, prepare) -> tuple[int, list[str]]:
    from chat_server import ChatServer
    from embtools.commands.generate import main as generate

    tasks = write_jsonl(tmp_path / "tasks.jsonl", [{"id": 1, "task_type": "short-long", "task": "Find papers"}])
    (tmp_path / "cache").mkdir()
    prepare(tmp_path / "cache" / "responses.sqlite")
    with ChatServer() as server:
        code, _, err = run_cli(generate, ["--base-url", server.url, "--cache", tmp_path / "cache", tasks])
    return code, err


def test_a_corrupt_response_cache_is_refused_in_one_line(tmp_path):
    code, err = _generate_with_cache(tmp_path, lambda p: p.write_bytes(b"garbage" * 200))
    assert code == 1 and len(err) == 1 and "response cache" in err[0] and "not a database" in err[0]


def test_a_response_cache_of_another_format_is_refused_in_one_line(tmp_path):
    def foreign(path: Path) -> None:
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, answer TEXT)")
        db.commit()

    code, err = _generate_with_cache(tmp_path, foreign)
    assert code == 1 and len(err) == 1 and "response cache" in err[0] and "unexpected" not in err[0]
