"""Find and load an embedding model: built-in name, local folder, hub id (downloaded once), or PEFT adapter folder.

A sentence-transformers folder brings its own pooling, normalization and maximum length; a decoder-only model
defaults to last-token pooling (E5), any other encoder to mean pooling (sentence-transformers' default). The spec also
says which evaluation protocol the model follows: E5's own (`e5_protocol`), or its sentence-transformers pipeline's.
Weights load from safetensors; `trust_remote_code` only when the user passes it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embtools.errors import EmbtoolsError
from embtools.models.builtin import BUILTIN_MODELS, builtin_model_path
from embtools.models.hub import download_model
from embtools.models.rope import RopeOverride, apply_rope

log = logging.getLogger("embtools")

POOLINGS = ("last", "mean", "cls")
DTYPES = ("auto", "float32", "bfloat16", "float16")  # torch dtypes by name; auto chooses per device
# The E5 family by model name, as unilm's e5/model_config.py keys it: e5-base-v2, multilingual-e5-large-instruct,
# e5-mistral-7b-instruct, ...
_E5_FAMILY = re.compile(r"(multilingual-)?e5-")
# from_pretrained's kernel choice, for every model embtools loads: the layer code transformers ships. transformers
# 5.25 turned Hub kernels on by default (layers swapped for code downloaded from kernels-community at load time, e.g.
# Liger's RMSNorm on CUDA); embtools keeps them off so that offline nodes load the same model, the numerics are the
# ones its tests check, and no Hub code runs unasked.
SHIPPED_LAYERS = {"use_kernels": False}
TRAINING_RECORD = "training_args.json"  # written by emb-train into every model folder it outputs


@dataclass
class ModelSpec:
    """What a model folder says about how to embed with it, before any weights are loaded."""

    name: str
    path: Path
    base_path: Path | None = None  # set when `path` is a PEFT adapter
    is_decoder: bool = False
    pooling: str = "mean"
    normalize: bool = True
    max_length: int | None = None
    prompts: dict[str, str] = field(default_factory=dict)
    normalize_module: bool = False  # its sentence-transformers modules include Normalize
    e5_protocol: bool = False  # evaluated as E5's own code evaluates (see follows_e5_protocol)
    rope: RopeOverride = field(default_factory=RopeOverride)  # the RoPE override emb-train trained it with


def resolve_model_path(name: str) -> Path:
    """A local folder for a model name: an existing folder, a built-in name (always offline), or a hub id, downloaded
    into the Hugging Face cache on first use (models.hub)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if name in BUILTIN_MODELS:
        return builtin_model_path(name)
    return download_model(name, accepted=f"a folder, a built-in name ({', '.join(BUILTIN_MODELS)})")


def portable_base_name(name: str, output: Path) -> str:
    """How an adapter written to `output` names its base model `name` so that it loads on another machine: a hub id
    or a built-in name as given, a local folder as a path relative to `output` (see resolve_base)."""
    if Path(name).expanduser().is_dir():
        return os.path.relpath(Path(name).expanduser().resolve(), Path(output).resolve())
    return name


def resolve_base(base_name: str, adapter_dir: Path) -> Path:
    """The folder of an adapter's base: a relative path against the adapter folder (emb-train writes it so; an
    output moved together with its base still loads), else as resolve_model_path finds a model name."""
    beside = adapter_dir / base_name
    if not Path(base_name).is_absolute() and (beside / "config.json").exists():
        return beside
    if base_name.startswith((".", "/")) and not Path(base_name).is_dir():
        raise EmbtoolsError(f"{adapter_dir}: its base model {base_name} is missing (a path relative to the adapter "
                            "folder: move or copy the two together)")
    return resolve_model_path(base_name)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EmbtoolsError(f"cannot read {path}: {exc}") from None


def _is_decoder(config: dict[str, Any]) -> bool:
    architectures = config.get("architectures") or []
    return any(a.endswith("ForCausalLM") for a in architectures) or config.get("model_type") in {
        "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "gpt2", "gpt_neox"}


def _sentence_transformers_settings(path: Path, spec: ModelSpec) -> None:
    """Read pooling, normalization, max length and prompts from a sentence-transformers folder."""
    modules = json.loads((path / "modules.json").read_text())
    for module in modules:
        kind = module.get("type", "")
        if kind.endswith("Pooling"):
            pooling = _read_json(path / module["path"] / "config.json")
            for key, value in (("pooling_mode_lasttoken", "last"), ("pooling_mode_cls_token", "cls"),
                               ("pooling_mode_mean_tokens", "mean")):
                if pooling.get(key):
                    spec.pooling = value
                    break
    spec.normalize = spec.normalize_module = any(m.get("type", "").endswith("Normalize") for m in modules)
    st_config = path / "sentence_bert_config.json"
    if st_config.exists():
        spec.max_length = _read_json(st_config).get("max_seq_length")
    prompts_config = path / "config_sentence_transformers.json"
    if prompts_config.exists():
        spec.prompts = _read_json(prompts_config).get("prompts") or {}


def inspect_model(name: str) -> ModelSpec:
    """Resolve `name` and read how to embed with it, without loading weights."""
    path = resolve_model_path(name)
    spec = ModelSpec(name=name, path=path, rope=recorded_rope(path))
    config_dir = path
    if (path / "adapter_config.json").exists():
        base_name = _read_json(path / "adapter_config.json").get("base_model_name_or_path")
        if not base_name:
            raise EmbtoolsError(f"{path}/adapter_config.json names no base model")
        spec.base_path = config_dir = resolve_base(base_name, path)
    if not (config_dir / "config.json").exists():
        raise EmbtoolsError(f"{config_dir} is not a Hugging Face model folder (no config.json)")
    spec.is_decoder = _is_decoder(_read_json(config_dir / "config.json"))
    spec.pooling = "last" if spec.is_decoder else "mean"
    st_dir = path if (path / "modules.json").exists() else config_dir  # an adapter keeps its base's settings
    if (st_dir / "modules.json").exists():
        _sentence_transformers_settings(st_dir, spec)
    spec.e5_protocol = follows_e5_protocol(spec, has_sentence_transformers_files=(st_dir / "modules.json").exists())
    return spec


def recorded_rope(path: Path) -> RopeOverride:
    """The RoPE override an emb-train output was trained with (training_args.json `rope`), else none."""
    record = path / TRAINING_RECORD
    return RopeOverride.from_json(_read_json(record).get("rope")) if record.exists() else RopeOverride()


def follows_e5_protocol(spec: ModelSpec, has_sentence_transformers_files: bool) -> bool:
    """Whether the model is evaluated as E5's own code evaluates (L2-normalized except for classification): emb-train
    output (it writes training_args.json), the E5 family by folder or hub name (as unilm's evaluation scripts key
    their settings), and a decoder without sentence-transformers files (we embed it the E5 way: last token,
    instructions). Any other model is evaluated as its own sentence-transformers pipeline runs."""
    return ((spec.path / TRAINING_RECORD).exists() or bool(_E5_FAMILY.match(Path(spec.name).name.lower()))
            or (spec.is_decoder and not has_sentence_transformers_files))


@contextlib.contextmanager
def peft_wrapping():
    """peft reads `model.is_gradient_checkpointing` when it wraps a model, which transformers deprecates with a
    FutureWarning on every load of an adapter; that is peft's to change, not the user's to see."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def torch_dtype(name: str):
    """The torch dtype of a resolved DTYPES name (`bfloat16` -> torch.bfloat16); `auto` is resolved before."""
    import torch

    if name == "auto" or name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}: expected one of {', '.join(DTYPES[1:])}")
    return getattr(torch, name)


def load_model(spec: ModelSpec, dtype: str = "float32", device: str = "cpu", trust_remote_code: bool = False,
               rope: RopeOverride = RopeOverride()):
    """Load (model, tokenizer) for a spec: the bare transformer (no LM head), in eval mode, on `device`, with
    `rope` (over the spec's recorded one) applied to its rotary positions."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if not log.isEnabledFor(logging.DEBUG):
        hf_logging.disable_progress_bar()
    weights_dtype = torch_dtype(dtype)
    weights_path = spec.base_path or spec.path
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.path if _has_tokenizer(spec.path) else weights_path,
                                                  trust_remote_code=trust_remote_code)
        model = AutoModel.from_pretrained(weights_path, dtype=weights_dtype, trust_remote_code=trust_remote_code,
                                          use_safetensors=_has_safetensors(weights_path) or None, **SHIPPED_LAYERS,
                                          **config_with_rope(weights_path, rope.over(spec.rope), spec.name,
                                                             trust_remote_code))
        if spec.base_path is not None:
            from peft import PeftModel

            with peft_wrapping():
                model = PeftModel.from_pretrained(model, spec.path).merge_and_unload()
    except Exception as exc:  # noqa: BLE001 - only the load failures below become one line
        if not isinstance(exc, (OSError, ValueError)) and type(exc).__name__ != "UnpicklingError":
            raise  # weights-only loading raises pickle's UnpicklingError on a pickled checkpoint with code
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise EmbtoolsError(f"cannot load model {spec.name}: {first_line}") from None
    return model.to(device).eval(), tokenizer


def config_with_rope(path: Path, rope: RopeOverride, name: str, trust_remote_code: bool) -> dict[str, Any]:
    """from_pretrained's `config=` argument when `rope` overrides the rotary positions; nothing otherwise."""
    if not rope:
        return {}
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    return {"config": apply_rope(config, rope, name)}


def _has_tokenizer(path: Path) -> bool:
    return (path / "tokenizer_config.json").exists() or (path / "tokenizer.json").exists()


def _has_safetensors(path: Path) -> bool:
    return any(path.glob("*.safetensors"))
