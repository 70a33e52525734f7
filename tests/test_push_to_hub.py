"""emb-train --push-to-hub ORG/NAME (and --card-only DIR --push-to-hub): the output folder uploaded with
huggingface_hub to a real loopback server that speaks the hub's API (tests/hub_server.py, HF_ENDPOINT), then loaded
back from it by emb-encode and SentenceTransformer in a fresh Hugging Face cache; failures are one line.

The base model is itself a hub id on that server, so the adapter names it as given and loads anywhere. Each run is a
fresh process: huggingface_hub reads HF_ENDPOINT, HF_HOME and HF_TOKEN when it is first imported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from hub_server import HubServer
from test_hub_models import _HF_VARIABLES, closed_port_url
from test_model_card import TRAIN_ARGS, card_of, trained  # noqa: F401 (fixture)
from test_train import examples  # noqa: F401 (fixture)
from test_train_tracking import one_thread  # noqa: F401 (fixture)

BASE = "org/tiny-decoder"
PUSHED = "org/tuned"
TOKEN = "hf_write"
TEXTS = ["A man is playing a guitar.", "Vitamin D deficiency is linked to bone loss."]


def run(command: str, *args, home: Path, endpoint: str, token: str | None = TOKEN) -> subprocess.CompletedProcess:
    """bin/COMMAND in a fresh process with only these Hugging Face settings (the machine's own are left out)."""
    env = {k: v for k, v in os.environ.items() if k not in _HF_VARIABLES}
    env |= {"HF_HOME": str(home), "HF_ENDPOINT": endpoint, "OMP_NUM_THREADS": "1"} | ({"HF_TOKEN": token} if token
                                                                                     else {})
    return subprocess.run([str(REPO / "bin" / command), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.fixture(scope="module")
def hub(tiny_decoder):
    with HubServer({BASE: tiny_decoder}, write_token=TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def pushed(hub, examples, tmp_path_factory) -> tuple[Path, dict]:  # noqa: F811
    root = tmp_path_factory.mktemp("push")
    result = run("emb-train", examples, "--model", BASE, "-o", root / "model", *TRAIN_ARGS, "--push-to-hub", PUSHED,
                 "--private", home=root / "hf", endpoint=hub.url)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "model", json.loads(result.stdout)


@pytest.mark.slow  # 31-57 s measured on 2 shared cores: a fresh emb-train process downloads its base, trains
def test_training_pushes_the_output_folder_to_a_new_private_repo(pushed, hub):
    out, summary = pushed
    assert summary["pushed"] == f"{hub.url}/{PUSHED}" and hub.created == {PUSHED: "private"}
    local = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert hub.repos[PUSHED].files == dict(sorted(local.items()))  # every file, byte for byte
    assert {"adapter_model.safetensors", "README.md", "1_Pooling/config.json", "loss.png"} <= set(local)
    assert json.loads(local["adapter_config.json"])["base_model_name_or_path"] == BASE  # the hub id as given
    meta, body = card_of(out)
    assert meta["base_model"] == BASE and f'SentenceTransformer("{PUSHED}")' in body
    assert f"The hub model `{BASE}`, downloaded on first use." in body


@pytest.mark.slow  # and 24-36 s to load it three ways in a fresh process
def test_the_pushed_model_loads_from_the_hub_anywhere(pushed, hub, tmp_path):
    """From the hub into an empty cache, SentenceTransformer and emb-encode's Encoder embed as the local folder."""
    out, _ = pushed
    script = ("import json, sys; from sentence_transformers import SentenceTransformer; "
              "from embtools.encode.encoder import Encoder, EncodeSettings; texts = json.loads(sys.argv[3]); "
              "encode = lambda m: Encoder(m, EncodeSettings(dtype='float32')).encode(texts).tolist(); "
              "print(json.dumps([SentenceTransformer(sys.argv[1], device='cpu').encode(texts).tolist(), "
              "encode(sys.argv[1]), encode(sys.argv[2])]))")
    env = {k: v for k, v in os.environ.items() if k not in _HF_VARIABLES}
    result = subprocess.run([sys.executable, "-c", script, PUSHED, str(out), json.dumps(TEXTS)], capture_output=True,
                            text=True, timeout=300, env=env | {"HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": TOKEN,
                                                               "HF_ENDPOINT": hub.url, "OMP_NUM_THREADS": "1",
                                                               "PYTHONPATH": str(REPO / "src")})
    assert result.returncode == 0, result.stderr[-3000:]
    theirs, ours, local = map(np.array, json.loads(result.stdout.splitlines()[-1]))
    np.testing.assert_allclose(theirs, ours, atol=1e-5)
    np.testing.assert_allclose(ours, local, atol=1e-6)
    assert (tmp_path / "hf" / "hub" / "models--org--tuned").is_dir()  # it did come from the hub


def test_card_only_pushes_an_existing_folder(trained, hub, tmp_path):  # noqa: F811
    out = tmp_path / "runs" / "model"  # as deep as `trained`: its relative base still resolves
    shutil.copytree(trained, out)
    result = run("emb-train", "--card-only", out, "--push-to-hub", "org/again", home=tmp_path / "hf",
                 endpoint=hub.url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"output": str(out), "card": str(out / "README.md"),
                                         "pushed": f"{hub.url}/org/again"}
    assert hub.created["org/again"] == "public"
    assert b'SentenceTransformer("org/again")' in hub.repos["org/again"].files["README.md"]
    assert "emb-train: warning: the adapter's base ../../../tiny-decoder0 is a local model, not a hub id: others " \
           "cannot load it from org/again; train with --merge" in result.stderr


@pytest.mark.parametrize("token, endpoint, reason", [
    ("hf_wrong", None, "the hub answered 401 (set HF_TOKEN, or run `hf auth login`, with a token that may write"),
    (TOKEN, "closed", "the hub cannot be reached (ConnectError"),
])
def test_push_failures_are_one_line(trained, hub, tmp_path, token, endpoint, reason):  # noqa: F811
    out = trained
    endpoint = closed_port_url() if endpoint == "closed" else hub.url
    result = run("emb-train", "--card-only", out, "--push-to-hub", "org/refused", home=tmp_path / "hf",
                 endpoint=endpoint, token=token)
    lines = [line for line in result.stderr.splitlines() if ": warning: " not in line]  # the local base's
    assert result.returncode == 1 and result.stdout == "" and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"emb-train: error: cannot push {out} to org/refused on {endpoint}: {reason}")
    assert "org/refused" not in hub.repos
