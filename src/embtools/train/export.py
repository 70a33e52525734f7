"""The output folder of emb-train: one that emb-encode, emb-eval and sentence-transformers all load the same way.

- the PEFT adapter (`adapter_config.json`, `adapter_model.safetensors`), its base named portably
  (models.loading.portable_base_name: a hub id or built-in name as given, a local folder relative to the output), or
  full weights with `--merge` / `--no-lora`;
- the tokenizer, with the EOS rule baked into its post-processor (every text ends with EOS, as E5 pools it);
- sentence-transformers files: modules.json, sentence_bert_config.json, 1_Pooling (last token for decoders),
  2_Normalize, config_sentence_transformers.json with `prompts` built from the instruction template;
- train_log.jsonl (written during training), training_args.json (with the example counts of each source) and
  loss.png; the README.md model card is written once the folder is in place (train.model_card).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from embtools.instructions import QUERY_TEMPLATE, task_instruction
from embtools.records.atomic import atomic_file

_POOLING_FLAGS = {"last": "pooling_mode_lasttoken", "mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token"}


def query_prompt(instruction: str) -> str:
    """`Instruct: {instruction}\\nQuery: ` - the template with the query left off, as sentence-transformers
    prepends it."""
    return QUERY_TEMPLATE.format(instruction=instruction, text="")


def prompts(instruction: str | None) -> dict[str, str]:
    """The sentence-transformers prompts of a model trained with `instruction` (none without one)."""
    return {"query": query_prompt(instruction), "document": ""} if instruction else {}


def task_prompts(tasks: dict[str, str | None]) -> dict[str, str]:
    """sentence-transformers prompts under the names mteb looks up first (`{task}-query`, `{task}-document`,
    `{task}`), so that mteb run on SentenceTransformer(DIR) embeds each task (name -> mteb type) as emb-eval does:
    E5's instruction of the task (instructions.task_instruction) on every text but retrieval documents; plain texts
    where no instruction is known (not the training `query` prompt mteb would fall back to)."""
    entries = {}
    for task, task_type in tasks.items():
        instruction = task_instruction(task, task_type)
        prompt = query_prompt(instruction) if instruction else ""
        entries |= {f"{task}-query": prompt, f"{task}-document": "" if task_type == "Retrieval" else prompt,
                    task: prompt}
    return entries


def add_task_prompts(folder: Path, tasks: dict[str, str | None]) -> None:
    """Add task_prompts(tasks) to the prompts of `folder`/config_sentence_transformers.json."""
    path = folder / "config_sentence_transformers.json"
    config = json.loads(path.read_text())
    config["prompts"] = {**(config.get("prompts") or {}), **task_prompts(tasks)}
    _write_json(path, config)


def save_weights(model: Any, folder: Path, merge: bool, base_name: str) -> None:
    """Adapter only (its base named `base_name`), or merged full weights (a PEFT model merged; a fully trained model
    as it is)."""
    if hasattr(model, "peft_config") and not merge:
        model.save_pretrained(folder)
        config_path = folder / "adapter_config.json"
        config = json.loads(config_path.read_text())
        config["base_model_name_or_path"] = base_name
        config_path.write_text(json.dumps(config, indent=2))
        return
    if hasattr(model, "peft_config"):
        model = model.merge_and_unload()
    model.save_pretrained(folder, safe_serialization=True)


def bake_eos(tokenizer: Any) -> None:
    """Make the tokenizer itself end every text with EOS (sentence-transformers calls it with special tokens on),
    keeping the BOS it puts first, if any (Mistral's `<s>`; without it the model embeds other texts than in
    training)."""
    from tokenizers.processors import TemplateProcessing

    ids = tokenizer("hello", add_special_tokens=True)["input_ids"]
    eos, eos_id = tokenizer.eos_token, tokenizer.eos_token_id
    if ids and ids[-1] == eos_id:
        return
    bos_id = tokenizer.bos_token_id
    lead = [(tokenizer.bos_token, bos_id)] if ids and bos_id is not None and ids[0] == bos_id else []
    prefix = "".join(f"{token} " for token, _ in lead)
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    backend.post_processor = TemplateProcessing(single=f"{prefix}$A {eos}", pair=f"{prefix}$A {eos} $B {eos}",
                                                special_tokens=[*lead, (eos, eos_id)])


def save_sentence_transformers_files(folder: Path, dim: int, pooling: str, max_length: int,
                                     instruction: str | None) -> None:
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
    _write_json(folder / "modules.json", modules)
    _write_json(folder / "sentence_bert_config.json", {"max_seq_length": max_length, "do_lower_case": False})
    pooling_config = {"word_embedding_dimension": dim, "pooling_mode_cls_token": False,
                      "pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": False,
                      "pooling_mode_mean_sqrt_len_tokens": False, "pooling_mode_weightedmean_tokens": False,
                      "pooling_mode_lasttoken": False, "include_prompt": True}
    pooling_config[_POOLING_FLAGS[pooling]] = True
    (folder / "1_Pooling").mkdir(exist_ok=True)
    _write_json(folder / "1_Pooling" / "config.json", pooling_config)
    (folder / "2_Normalize").mkdir(exist_ok=True)
    _write_json(folder / "config_sentence_transformers.json",
                {"prompts": prompts(instruction), "default_prompt_name": None, "similarity_fn_name": "cosine",
                 "model_type": "SentenceTransformer"})


def plot_loss(log_path: Path, png_path: Path) -> None:
    """loss.png: the training loss per step (matplotlib, headless Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    rows = [row for row in rows if "loss" in row]  # evaluation rows carry metrics, not the loss
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot([r["step"] for r in rows], [r["loss"] for r in rows], linewidth=1.2)
    axis.set_xlabel("step")
    axis.set_ylabel("InfoNCE loss")
    axis.set_title("emb-train")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)


def export_model(folder: Path, model: Any, tokenizer: Any, base_name: str, merge: bool, pooling: str,
                 max_length: int, instruction: str | None, arguments: dict[str, Any]) -> None:
    """Write everything but the training log into `folder` (a temporary folder the caller renames into place)."""
    save_weights(model, folder, merge, base_name)
    if pooling == "last":
        bake_eos(tokenizer)
    tokenizer.save_pretrained(folder)
    dim = int(model.config.hidden_size) if hasattr(model, "config") else None
    save_sentence_transformers_files(folder, dim, pooling, max_length, instruction)
    _write_json(folder / "training_args.json", arguments)
    if (folder / "train_log.jsonl").exists():
        plot_loss(folder / "train_log.jsonl", folder / "loss.png")


def _write_json(path: Path, value: Any) -> None:
    with atomic_file(path) as stream:  # add_task_prompts rewrites a file of a finished folder
        stream.write((json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode())
