"""Experiment tracking (`emb-train --report-to tensorboard,wandb,mlflow,trackio`): each step's loss, learning rate,
throughput and gradient norm, and every evaluation's metrics, sent through accelerate's trackers.

accelerate already has a tracker for each of these tools (accelerate.tracking), each calling the tool's own library,
created on every rank but started and written on rank 0 only; emb-train owns an Accelerator anyway, so it passes
`log_with` to it instead of keeping adapters of its own. What accelerate does not do is handled here: it skips a
tracker whose library is missing with a debug message, so a missing library is refused up front in one line naming
the pip package; and names are made acceptable to every tool (mlflow refuses `[` in a metric name).

TensorBoard event files go to CHECKPOINT_DIR/runs/emb-train (`tensorboard --logdir OUTPUT.checkpoints/runs`); a
resumed run purges the events after the checkpoint's step so they are not doubled. wandb, mlflow and trackio log
where their own settings say (WANDB_MODE, MLFLOW_TRACKING_URI, ...), in project / experiment `emb-train` with the
output folder's name as the run name.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

from embtools.errors import EmbtoolsError

PROJECT = "emb-train"
TOOLS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "trackio": "trackio"}  # -> pip package
_STEP_KEYS = ("loss", "lr", "grad_norm", "tokens_per_s", "examples_per_s", "seconds")


def parse_report_to(values: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """`--report-to` values (repeated, comma- or space-separated) -> the tools in order; `none` alone means none."""
    names = [name for value in values for name in re.split(r"[,\s]+", value.strip().lower()) if name]
    unknown = [name for name in names if name not in TOOLS and name != "none"]
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not one of none, {', '.join(TOOLS)}")
    if "none" in names and len(set(names)) > 1:
        raise ValueError("none excludes the other tools")
    return tuple(dict.fromkeys(name for name in names if name != "none"))


def check_installed(tools: tuple[str, ...]) -> None:
    """One line naming the pip package of the first tool whose library is missing."""
    for tool in tools:
        if importlib.util.find_spec(tool) is None:
            raise EmbtoolsError(f"--report-to {tool} needs the {TOOLS[tool]} library: pip install {TOOLS[tool]}"
                                + (" (or embtools[track])" if tool == "tensorboard" else ""))


def accelerator_arguments(tools: tuple[str, ...], work_dir: Path) -> dict[str, Any]:
    """What the Accelerator needs to create the trackers."""
    if not tools:
        return {}
    return {"log_with": list(tools), "project_dir": str(work_dir / "runs")}


def start_tracking(accelerator, tools: tuple[str, ...], run_name: str, hyperparameters: dict[str, Any],
                   resumed_step: int) -> None:
    """Start every tracker (rank 0) with the run's settings as its hyperparameters."""
    if not tools:
        return
    init = {"wandb": {"name": run_name}, "mlflow": {"run_name": run_name}, "trackio": {"name": run_name},
            "tensorboard": {"purge_step": resumed_step + 1} if resumed_step else {}}
    accelerator.init_trackers(PROJECT, config=_scalars(hyperparameters), init_kwargs=init)


def _scalars(values: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters as the trackers take them: numbers, strings and booleans (anything else as its JSON text)."""
    import json

    return {key: value if isinstance(value, (int, float, str, bool)) else json.dumps(value, default=str)
            for key, value in values.items() if value is not None}


def step_values(row: dict[str, Any]) -> dict[str, float]:
    """A train_log.jsonl step row as tracker scalars: `train/loss`, `train/lr`, `train/grad_norm`, ..."""
    return {f"train/{key}": row[key] for key in _STEP_KEYS if row.get(key) is not None}


def eval_values(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """An evaluation's metrics ({task: {metric: value}}) as tracker scalars `eval/<task>/<metric>`."""
    return {f"eval/{tag_name(task)}/{metric}": value for task, scores in metrics.items()
            for metric, value in scores.items()}


def tag_name(task: str) -> str:
    """A task name every tool accepts (letters, digits, `_ - . /` and spaces): `STSBenchmark[64 pairs]` ->
    `STSBenchmark(64 pairs)` would still be refused by mlflow, so -> `STSBenchmark_64 pairs`."""
    return re.sub(r"[^A-Za-z0-9_\-. ]+", "_", task).strip("_")


def report(accelerator, tools: tuple[str, ...], values: dict[str, float], step: int) -> None:
    """Log to every tracker (accelerate writes on rank 0 only)."""
    if tools and values:
        accelerator.log(values, step=step)


def end_tracking(accelerator) -> None:
    """Close every tracker (flush TensorBoard, finish the wandb run). Not accelerator.end_training(), which also
    destroys the process group that the end of the run still waits on."""
    for tracker in accelerator.trackers:
        tracker.finish()
