"""Hub ids download on first use, through huggingface_hub, from a real loopback server that speaks the hub's file API
(tests/hub_server.py, pointed at with HF_ENDPOINT), into a fresh HF_HOME per test; every failure is one line.

Each run is a fresh `bin/emb-encode` process: huggingface_hub reads HF_HOME, HF_ENDPOINT and HF_HUB_OFFLINE when it is
first imported, as it does for a user."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from conftest import REPO, run_cli, write_jsonl
from hub_server import HubServer

REPO_ID = "org/tiny-decoder"
_HF_VARIABLES = ("HF_HOME", "HF_HUB_CACHE", "HF_ENDPOINT", "HF_TOKEN", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
                 "TRANSFORMERS_OFFLINE", "EMBTOOLS_OFFLINE")


def encode(model: str, text_file, home, endpoint: str, *flags: str, **env: str) -> subprocess.CompletedProcess:
    """emb-encode of `text_file` with `model`, HF_HOME=`home`, HF_ENDPOINT=`endpoint`, and nothing else of the
    Hugging Face environment of the machine running the tests."""
    base = {k: v for k, v in os.environ.items() if k not in _HF_VARIABLES}
    return subprocess.run([str(REPO / "bin" / "emb-encode"), "--model", model, *flags, str(text_file)],
                          capture_output=True, env={**base, "HF_HOME": str(home), "HF_ENDPOINT": endpoint, **env},
                          timeout=300)


def error_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 1 and result.stdout == b"" and len(lines) == 1, result.stderr.decode()
    assert lines[0].startswith("emb-encode: error: ")
    return lines[0]


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def hub(tiny_decoder):
    with HubServer({REPO_ID: tiny_decoder}, gated={"org/gated": "hf_right"}) as server:
        server.repos["org/gated"] = server.repos[REPO_ID]
        yield server


def test_first_run_downloads_second_is_a_cache_hit_with_the_server_stopped(hub, tiny_decoder, text_file, tmp_path):
    home = tmp_path / "hf"
    first = encode(REPO_ID, text_file, home, hub.url)
    assert first.returncode == 0, first.stderr.decode()
    files = sorted(p.name for p in tiny_decoder.iterdir())
    assert sorted(hub.downloads()) == files and "model.safetensors" in files
    [snapshot] = (home / "hub" / "models--org--tiny-decoder" / "snapshots").iterdir()
    assert sorted(p.name for p in snapshot.iterdir()) == files
    assert b"downloaded org/tiny-decoder from " + hub.url.encode() in first.stderr
    direct = encode(str(tiny_decoder), text_file, home, hub.url)
    assert direct.returncode == 0 and len(direct.stdout.splitlines()) == 40
    assert first.stdout == direct.stdout  # the same vectors as loading the folder itself
    hub.close()
    for flags in ((), ("--offline",)):
        again = encode(REPO_ID, text_file, home, hub.url, *flags)
        assert again.returncode == 0, again.stderr.decode()
        assert again.stdout == first.stdout and b"downloaded" not in again.stderr


@pytest.mark.parametrize("flags, env, switch", [
    (("--offline",), {}, "--offline (EMBTOOLS_OFFLINE)"),
    ((), {"EMBTOOLS_OFFLINE": "1"}, "--offline (EMBTOOLS_OFFLINE)"),
    ((), {"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE"),
])
def test_offline_with_an_empty_cache_names_what_is_missing(hub, text_file, tmp_path, flags, env, switch):
    line = error_line(encode(REPO_ID, text_file, tmp_path / "hf", hub.url, *flags, **env))
    assert f"model '{REPO_ID}' is not a folder, a built-in name" in line
    assert f"in the Hugging Face cache ({tmp_path / 'hf' / 'hub'})" in line and f"{switch} forbids" in line
    assert hub.log == []  # not one request


def test_builtin_models_never_ask_the_hub(hub, text_file, tmp_path):
    result = encode("minilm-l6", text_file, tmp_path / "hf", hub.url)
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 40
    assert [path for _, path, _ in hub.log if "agent-harnesses" not in path] == []


@pytest.mark.parametrize("model, token, expected", [
    ("org/missing", None, "model 'org/missing' is not a folder, a built-in name (smollm2-135m, minilm-l6) or a "
                          "repository on {url} (if it is private, set HF_TOKEN"),
    ("org/gated", None, "model 'org/gated' is gated on {url}: accept its conditions on {url}/org/gated and set "
                        "HF_TOKEN"),
    ("org/gated", "hf_wrong", "model 'org/gated' is gated on {url}"),
])
def test_missing_and_gated_repos_are_one_line(hub, text_file, tmp_path, model, token, expected):
    env = {"HF_TOKEN": token} if token else {}
    line = error_line(encode(model, text_file, tmp_path / "hf", hub.url, **env))
    assert expected.format(url=hub.url) in line
    if model == "org/gated":  # the files were asked for with the token the user gave, and none was sent
        asked = [(method, auth) for method, path, auth in hub.log if "/resolve/" in path]
        assert asked and set(asked) == {("HEAD", f"Bearer {token}" if token else None)}


def test_hf_token_opens_a_gated_repo(hub, text_file, tmp_path):
    result = encode("org/gated", text_file, tmp_path / "hf", hub.url, HF_TOKEN="hf_right")
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 40, result.stderr.decode()


def test_unreachable_hub_is_one_line(text_file, tmp_path):
    url = closed_port_url()
    line = error_line(encode(REPO_ID, text_file, tmp_path / "hf", url))
    assert line.startswith(f"emb-encode: error: model '{REPO_ID}' is not a folder, a built-in name")
    assert "in the Hugging Face cache" in line and f"the hub at {url} cannot be reached (ConnectError" in line


@pytest.mark.parametrize("command", ["emb-encode", "emb-eval", "emb-train", "emb-filter"])
def test_every_command_that_loads_a_model_takes_offline(hub, text_file, tmp_path, sts_dev, command):
    examples = write_jsonl(tmp_path / "examples.jsonl", [
        {"id": f"e{i}", "task_type": "short-long", "instruction": "Retrieve the matching sentence",
         "query": p["sentence1"], "positive": p["sentence2"], "negative": None, "language": "English", "meta": {}}
        for i, p in enumerate(sts_dev[:8])])
    arguments = {"emb-encode": [text_file], "emb-eval": [write_jsonl(tmp_path / "sts.jsonl", sts_dev[:20])],
                 "emb-train": ["-o", tmp_path / "out", examples],
                 "emb-filter": ["--mine-negatives", "--no-language-check", examples]}[command]
    base = {k: v for k, v in os.environ.items() if k not in _HF_VARIABLES}
    result = subprocess.run([str(REPO / "bin" / command), "--model", REPO_ID, "--offline", *map(str, arguments)],
                            capture_output=True, text=True, timeout=300,
                            env={**base, "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": hub.url})
    lines = result.stderr.splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{command}: error: model '{REPO_ID}' is not a folder")
    assert "--offline (EMBTOOLS_OFFLINE) forbids" in lines[0] and hub.log == []


def test_offline_lasts_for_the_run_only(hub, text_file, monkeypatch):
    """An in-process run (a test, a script) gets its environment back: the flag does not leak into the next run."""
    from embtools.commands.encode import main as emb_encode

    for name in _HF_VARIABLES[4:]:
        monkeypatch.delenv(name, raising=False)
    code, records, err = run_cli(emb_encode, ["--model", "org/not-cached-anywhere", "--offline", text_file])
    assert code == 1 and records == [] and "forbids downloading" in err[-1]
    assert [name for name in _HF_VARIABLES[4:] if name in os.environ] == []
