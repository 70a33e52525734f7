"""The markdown of a model card (train.model_card collects the facts): the Hugging Face metadata header (library,
tags, base model, model-index with the evaluation results), then base, data, hyperparameters, loss, scores and how
to load the model with sentence-transformers, mteb and emb-encode."""

from __future__ import annotations

import json
from typing import Any

from embtools.models.builtin import BUILTIN_MODELS
from embtools.train.model_card import CardFacts, task_types

_LOSS_ROWS = 10  # steps shown in the loss table (the whole curve is loss.png and train_log.jsonl)


def render_card(facts: CardFacts) -> str:
    """README.md for the facts: YAML metadata header, then the sections."""
    sections = (_title, _base_section, _data_section, _hyperparameter_section, _loss_section, _eval_section,
                _usage_section)
    body = "\n".join(section(facts) for section in sections)
    return f"---\n{metadata(facts).to_yaml()}\n---\n\n{body}"


def metadata(facts: CardFacts):
    """The card's metadata (huggingface_hub's ModelCardData): the hub reads library, tags, base model and scores."""
    from huggingface_hub import EvalResult, ModelCardData

    results = [EvalResult(task_type=_task_type(facts, r), dataset_type=_task(r), dataset_name=_task(r),
                          dataset_split=r.get("split"), metric_type=r["metric"], metric_value=r["value"])
               for r in main_metrics(facts.metrics) if r["value"] is not None]
    return ModelCardData(library_name="sentence-transformers", base_model=_hub_base(facts),
                         tags=["sentence-transformers", "sentence-similarity", "feature-extraction", "embtools",
                               "e5"] + (["peft", "lora"] if facts.adapter else []),
                         pipeline_tag="sentence-similarity", model_name=facts.name,
                         eval_results=results or None)


def main_metrics(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The main score of each task (every record when none is marked main)."""
    main = [r for r in metrics if r.get("main")]
    return main or metrics


def _task(record: dict[str, Any]) -> str:
    return record["task"]


def _task_type(facts: CardFacts, record: dict[str, Any]) -> str:
    return task_types(facts.metrics).get(record["task"].split("[", 1)[0]) or "embedding"


def _hub_base(facts: CardFacts) -> str | None:
    """The base as a hub id for the metadata: a hub base as it is, a built-in by the hub model it comes from."""
    if facts.base_kind == "built-in":
        return BUILTIN_MODELS[facts.base].hub_id
    return facts.base if facts.base_kind == "hub" else None


def _title(facts: CardFacts) -> str:
    kind = "a LoRA adapter (PEFT) on" if facts.adapter else "full weights fine-tuned from"
    return (f"# {facts.name}\n\nA text-embedding model trained with embtools `emb-train` (E5-mistral's recipe: "
            f"InfoNCE over in-batch and hard negatives, instructions on queries, last-token or mean pooling): "
            f"{kind} `{facts.base}`.\n")


def _base_section(facts: CardFacts) -> str:
    if facts.base_kind == "built-in":
        note = (f"The embtools built-in `{facts.base}`, made offline from a PyPI package "
                f"({_builtin_origin(facts.base)}); embtools resolves the name. Other libraries cannot: train with "
                "`--merge` for a folder that loads anywhere on its own.")
    elif facts.base_kind == "local":
        note = (f"The local folder `{facts.base}`, relative to this folder: move the two together. embtools "
                "resolves it against this folder; transformers and sentence-transformers against the working "
                "directory.")
    else:
        note = f"The hub model `{facts.base}`, downloaded on first use."
    return f"## Base model\n\n{note}\n"


def _builtin_origin(name: str) -> str:
    model = BUILTIN_MODELS[name]
    return f"{model.hub_id}, from `{model.install_hint}`"


def _data_section(facts: CardFacts) -> str:
    rows = [f"| `{d['path']}` | {d['weight']} | {_missing(d.get('examples'))} | "
            f"{', '.join(f'{k} {v}' for k, v in sorted((d.get('task_types') or {}).items())) or '-'} |"
            for d in facts.data]
    total = sum(d.get("examples") or 0 for d in facts.data)
    return ("## Training data\n\n| source | weight | examples | task types |\n|---|---|---|---|\n"
            + "\n".join(rows) + f"\n\n{total} examples in all (a weight samples or repeats a source per epoch).\n")


def _hyperparameter_section(facts: CardFacts) -> str:
    rows = [f"| `{name}` | `{json.dumps(value)}` |" for name, value in sorted(facts.hyperparameters.items())]
    return ("## Hyperparameters\n\nEvery setting of the run, as `training_args.json` records it.\n\n"
            "| setting | value |\n|---|---|\n" + "\n".join(rows) + "\n")


def _loss_section(facts: CardFacts) -> str:
    if not facts.losses:
        return "## Training loss\n\nNo training log in this folder.\n"
    plot = "![training loss per step](loss.png)\n\n" if facts.loss_plot else ""
    every = max(1, -(-len(facts.losses) // _LOSS_ROWS))
    shown = facts.losses[::every] + ([facts.losses[-1]] if (len(facts.losses) - 1) % every else [])
    rows = "\n".join(f"| {step} | {loss:.4f} |" for step, loss in shown)
    return (f"## Training loss\n\n{plot}InfoNCE loss of {len(facts.losses)} steps (all in `train_log.jsonl`):\n\n"
            f"| step | loss |\n|---|---|\n{rows}\n")


def _eval_section(facts: CardFacts) -> str:
    if not facts.metrics:
        return ""
    rows = "\n".join(f"| {r['task']} | {r.get('split', '-')} | {r['metric']} | {_score(r['value'])} |"
                     for r in main_metrics(facts.metrics))
    return ("## Evaluation\n\nemb-eval's scores (main metric of each task; the metric records have them all):\n\n"
            f"| task | split | metric | score |\n|---|---|---|---|\n{rows}\n")


def _usage_section(facts: CardFacts) -> str:
    where = facts.repo_id or f"path/to/{facts.name}"
    query = facts.prompts.get("query")
    instruction = query.removeprefix("Instruct: ").removesuffix("\nQuery: ") if query else None
    return "\n".join([
        "## Usage\n", "With sentence-transformers (queries take the `query` prompt, documents none):\n",
        "```python", "from sentence_transformers import SentenceTransformer", "",
        f'model = SentenceTransformer("{where}")',
        'queries = model.encode(["how do vaccines work?"], prompt_name="query")',
        'documents = model.encode(["Vaccines train the immune system ..."])', "```\n",
        *_mteb_usage(facts, where),
        "With embtools:\n", "```sh",
        f"emb-encode --model {where} "
        + (f"--instruction {json.dumps(instruction)} " if instruction else "") + "queries.jsonl > queries.emb.jsonl",
        f"emb-encode --model {where} documents.jsonl > documents.emb.jsonl", "```\n"])


def _mteb_usage(facts: CardFacts, where: str) -> list[str]:
    tasks = sorted({r["task"].split("[", 1)[0] for r in facts.metrics})
    if not tasks:
        return []
    return ["Each evaluated task has its E5 prompt in `config_sentence_transformers.json` (`TASK-query`, "
            "`TASK-document`, `TASK`), so mteb embeds it as emb-eval did:\n", "```python", "import mteb", "",
            f"tasks = mteb.get_tasks(tasks={json.dumps(tasks)})",
            "results = mteb.evaluate(model, tasks)", "```\n"]


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"  # emb-eval writes null for an undefined score (NaN)


def _missing(value: Any) -> str:
    return "-" if value is None else str(value)
