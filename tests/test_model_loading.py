"""The model layer: built-in names, local folders, cached hub ids, PEFT adapters, and the once-only conversion
(downloads from the hub: test_hub_models.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from embtools.encode.encoder import Encoder, EncodeSettings
from embtools.errors import EmbtoolsError
from embtools.models.loading import inspect_model, resolve_model_path
from test_train import tiny_llama  # noqa: F401 - fixture: a tiny random llama folder


def test_builtin_names_resolve_to_offline_folders():
    minilm = inspect_model("minilm-l6")
    assert (minilm.path / "model.safetensors").exists()
    assert (minilm.pooling, minilm.normalize, minilm.max_length, minilm.is_decoder) == ("mean", True, 256, False)
    smollm = inspect_model("smollm2-135m")
    assert smollm.is_decoder and smollm.pooling == "last"
    assert (smollm.path / "model.safetensors").exists() and (smollm.path / "tokenizer.json").exists()


def test_models_load_with_the_layers_transformers_ships(tiny_llama):  # noqa: F811
    """transformers 5.25 swaps layers for code downloaded from the Hub by default (`use_kernels`), which `.train()`
    and `.eval()` re-apply; every embtools load, for encoding and for training, keeps the layers transformers ships."""
    from embtools.models.loading import load_model
    from embtools.train.lora import load_base_model

    spec = inspect_model(str(tiny_llama))
    for model in (load_model(spec)[0], load_base_model(spec)[0]):
        assert model.use_kernels is False
        assert model.train().use_kernels is False and model.eval().use_kernels is False


def test_unknown_model_names_the_accepted_forms(monkeypatch):
    monkeypatch.setenv("EMBTOOLS_OFFLINE", "1")  # the hub's answers are tested in test_hub_models.py
    with pytest.raises(EmbtoolsError, match="built-in name"):
        resolve_model_path("nobody/nothing-here")


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(EmbtoolsError, match="no config.json"):
        inspect_model(str(tmp_path))


def _fake_hub_cache(root, repo_id, files_dir):
    """The Hugging Face cache layout (models--org--name/refs/main + snapshots/<rev>/), as a download leaves it."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    model_dir = root / ("models--" + repo_id.replace("/", "--"))
    snapshot = model_dir / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (model_dir / "refs").mkdir()
    (model_dir / "refs" / "main").write_text(revision)
    for item in files_dir.iterdir():
        (snapshot / item.name).symlink_to(item)
    return snapshot


def test_hub_id_in_the_local_cache_loads_offline(tmp_path, text_file):
    """huggingface_hub reads HF_HUB_CACHE when imported, so the cached id is used from a fresh process."""
    minilm_dir = resolve_model_path("minilm-l6")
    _fake_hub_cache(tmp_path / "hub", "sentence-transformers/all-MiniLM-L6-v2", minilm_dir)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    outputs = [subprocess.run([str(REPO / "bin" / "emb-encode"), "--model", model, str(text_file)],
                              capture_output=True, env=env, timeout=300)
               for model in ("sentence-transformers/all-MiniLM-L6-v2", "minilm-l6")]
    assert [o.returncode for o in outputs] == [0, 0], outputs[0].stderr
    assert outputs[0].stdout == outputs[1].stdout and len(outputs[0].stdout.splitlines()) == 40


def test_peft_adapter_folder_loads_base_plus_adapter(tmp_path, minilm, sts_dev_sentences):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    torch.manual_seed(0)
    base = AutoModel.from_pretrained(minilm.spec.path)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"],
                                                 init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    config = (tmp_path / "adapter" / "adapter_config.json")
    config.write_text(config.read_text().replace(str(minilm.spec.path), "minilm-l6"))
    adapted = Encoder(str(tmp_path / "adapter"), EncodeSettings(dtype="float32"))
    texts = sts_dev_sentences[:8]
    with torch.inference_mode():
        batch = adapted.tokenizer(texts, padding=True, return_tensors="pt")
        hidden = peft_model.eval()(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    assert adapted.pooling == "mean" and adapted.normalize
    assert np.abs(adapted.encode(texts) - expected).max() < 1e-5
    assert not np.allclose(adapted.encode(texts), minilm.encode(texts), atol=1e-3)


@pytest.mark.slow
def test_two_processes_racing_convert_smollm_once(tmp_path):
    code = ("import logging; logging.basicConfig(level=logging.INFO)\n"
            "from embtools.models.builtin import builtin_model_path; print(builtin_model_path('smollm2-135m'))")
    env = {**os.environ, "EMBTOOLS_HOME": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    paths = {out.decode().strip().splitlines()[-1] for out, _ in outputs}
    assert paths == {str(tmp_path / "models" / "smollm2-135m")}
    converting = [err for _, err in outputs if b"converting smollm2-135m" in err]
    assert len(converting) == 1
    assert sorted(os.listdir(tmp_path / "models")) == ["smollm2-135m", "smollm2-135m.lock"]
