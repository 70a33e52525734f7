"""The model card of an emb-train output folder (README.md): the facts, read from the folder itself.

- the base model, as adapter_config.json names it (models.loading.portable_base_name), or training_args.json's
  `model` for full weights;
- the data: each source with its example count and task types (`data` in training_args.json, written by emb-train);
- every hyperparameter (training_args.json), the loss curve (train_log.jsonl, loss.png);
- emb-eval's scores when a metric JSONL file is given (`--card-eval FILE`); each evaluated task's E5 prompt is also
  written into config_sentence_transformers.json (export.add_task_prompts), so that mteb run on
  `SentenceTransformer(DIR)` embeds each task as emb-eval did.

The text itself is model_card_text's.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embtools.errors import EmbtoolsError, InputError
from embtools.evaluate.retrieval import MAIN_SCORE as RETRIEVAL_MAIN_SCORE
from embtools.evaluate.sts import MAIN_SCORE as STS_MAIN_SCORE
from embtools.models.builtin import BUILTIN_MODELS
from embtools.models.loading import TRAINING_RECORD
from embtools.records.atomic import atomic_file
from embtools.records.jsonl import Record, read_records
from embtools.train.export import add_task_prompts

log = logging.getLogger("embtools")

CARD = "README.md"
# The mteb task type of a task emb-eval scored, by its main metric (the metric records do not carry the type).
_TYPE_BY_MAIN_METRIC = {RETRIEVAL_MAIN_SCORE: "Retrieval", STS_MAIN_SCORE: "STS", "accuracy": "Classification"}


@dataclass
class CardFacts:
    """What the card says about one output folder."""

    name: str
    base: str | None
    base_kind: str  # "hub", "built-in" or "local"
    adapter: bool
    arguments: dict[str, Any]
    losses: list[tuple[int, float]]
    loss_plot: bool
    prompts: dict[str, str]
    metrics: list[Record] = field(default_factory=list)
    repo_id: str | None = None  # where it is pushed, for the loading examples

    @property
    def data(self) -> list[dict[str, Any]]:
        return self.arguments.get("data") or [dict(s, examples=None) for s in self.arguments.get("sources", [])]

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return {k: v for k, v in self.arguments.items() if k not in {"data", "sources"}}


def data_counts(sources: list[Any], pools: list[list[Any]]) -> list[dict[str, Any]]:
    """Each training source (train.data.DataSource) with its example count and count per task_type."""
    return [{"path": source.path or "-", "weight": source.weight, "examples": len(pool),
             "task_types": dict(Counter(example.task.split(":", 1)[1] or "unknown" for example in pool))}
            for source, pool in zip(sources, pools)]


def _metric(record: Record) -> Record:
    missing = [name for name in ("task", "metric", "value") if name not in record]
    if missing:
        raise InputError(f'field "{missing[0]}" is missing (expected emb-eval metric records)')
    return record


def read_metrics(path: Path) -> list[Record]:
    """emb-eval's metric records from a JSONL file; bad records fail with their line number."""
    try:
        return list(read_records(str(path), _metric))
    except InputError as exc:
        raise EmbtoolsError(f"--card-eval {path}: {exc}") from None


def task_types(metrics: list[Record]) -> dict[str, str | None]:
    """Each evaluated task (without a slice note such as `[100 queries]`) and its mteb type: the records' `type`
    (emb-eval writes it), else guessed from the main metric (records of older runs)."""
    types: dict[str, str | None] = {}
    for record in metrics:
        name = record["task"].split("[", 1)[0]
        types.setdefault(name, None)
        if record.get("main"):
            types[name] = types[name] or record.get("type") or _TYPE_BY_MAIN_METRIC.get(record["metric"])
    return types


def loss_curve(folder: Path) -> list[tuple[int, float]]:
    """(step, loss) of each training step in train_log.jsonl (evaluation rows carry no loss)."""
    log = folder / "train_log.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    return [(row["step"], row["loss"]) for row in rows if "loss" in row]


def base_model(folder: Path, arguments: dict[str, Any]) -> tuple[str | None, str, bool]:
    """(the base's name as the folder names it, its kind, whether the folder is an adapter)."""
    adapter = folder / "adapter_config.json"
    base = _read_json(adapter).get("base_model_name_or_path") if adapter.exists() else arguments.get("model")
    if base in BUILTIN_MODELS:
        kind = "built-in"
    elif base and (Path(base).is_absolute() or base.startswith(".") or (folder / base).is_dir()):
        kind = "local"
    else:
        kind = "hub"
    return base, kind, adapter.exists()


def collect_facts(folder: Path, metrics: list[Record] | None = None, repo_id: str | None = None) -> CardFacts:
    """The card's facts from an emb-train output `folder` and emb-eval's `metrics` (None: none given)."""
    if not (folder / TRAINING_RECORD).exists():
        raise EmbtoolsError(f"{folder} is not an emb-train output folder (no {TRAINING_RECORD})")
    arguments = _read_json(folder / TRAINING_RECORD)
    base, kind, adapter = base_model(folder, arguments)
    st_config = folder / "config_sentence_transformers.json"
    prompts = _read_json(st_config).get("prompts") or {} if st_config.exists() else {}
    return CardFacts(name=folder.resolve().name, base=base, base_kind=kind, adapter=adapter, arguments=arguments,
                     losses=loss_curve(folder), loss_plot=(folder / "loss.png").exists(), prompts=prompts,
                     metrics=metrics or [], repo_id=repo_id)


def write_model_card(folder: Path, eval_file: Path | None = None, repo_id: str | None = None) -> Path:
    """Write (or refresh) `folder`/README.md; with `eval_file` (emb-eval metric JSONL) add its scores, and the E5
    prompt of each evaluated task to config_sentence_transformers.json. Returns the card's path."""
    from embtools.train.model_card_text import render_card

    metrics = read_metrics(eval_file) if eval_file else []
    if metrics:
        add_task_prompts(folder, task_types(metrics))
    text = render_card(collect_facts(folder, metrics, repo_id))
    with atomic_file(folder / CARD) as stream:
        stream.write(text.encode())
    return folder / CARD


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EmbtoolsError(f"cannot read {path}: {exc}") from None


def publish(folder: Path, eval_file: Path | None = None, repo_id: str | None = None,
            private: bool = False) -> dict[str, str]:
    """Refresh `folder`'s card (with `eval_file`'s scores; its examples naming `repo_id`) and, with `repo_id`, push
    the folder there (models.hub_upload). Returns what was done: {"card": path, "pushed": url}."""
    from embtools.models.hub_upload import push_folder

    card = write_model_card(folder, eval_file, repo_id)
    if not repo_id:
        return {"card": str(card)}
    base, kind, adapter = base_model(folder, _read_json(folder / TRAINING_RECORD))
    if adapter and kind != "hub":
        log.warning(f"the adapter's base {base} is a {kind} model, not a hub id: others cannot load it from "
                    f"{repo_id}; train with --merge for weights that load on their own")
    return {"card": str(card), "pushed": push_folder(folder, repo_id, private)}
