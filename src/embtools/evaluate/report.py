"""A run report: the paper's Table 1 (a row per model: the mean main score per task type and over all tasks), the
main score of every task for every model, and a PNG bar chart beside it.

emb-eval writes one with `--report FILE.md` from the metric records of its own run plus any earlier runs given with
`--compare METRICS.jsonl` (for a before/after table: the untrained model, a reference model). A task's score is the
mean of its subsets' main scores, as mteb scores a multilingual task. The chart is `FILE.png`; both are written
atomically.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from embtools.errors import InputError
from embtools.records.atomic import atomic_file
from embtools.records.jsonl import Record, read_records, require_string

Row = tuple[str, str, str]  # task, split, metric
# The paper's Table 1 columns: mteb's task types in its order, with its abbreviations; other types follow.
TABLE1_COLUMNS = {"Classification": "Class.", "Clustering": "Clust.", "PairClassification": "PairClass.",
                  "Reranking": "Rerank", "Retrieval": "Retr.", "STS": "STS", "Summarization": "Summ."}
AVERAGE = "Avg"
UNTYPED = "untyped"


def _metric_record(record: Record) -> Record:
    for field in ("task", "split", "metric", "model"):
        require_string(record, field)
    value = record.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError('field "value" must be a number')
    return record


def read_metric_records(path: str | Path) -> list[Record]:
    """The metric records of an earlier emb-eval run (its stdout saved to a file)."""
    return list(read_records(path, _metric_record))


def main_scores(records: Iterable[Record]) -> tuple[dict[Row, dict[str, float]], list[str]]:
    """(task, split, metric) -> {model: value} of the records marked main (the mean over a task's subsets), and the
    models in order of appearance."""
    values: dict[Row, dict[str, list[float]]] = {}
    models: list[str] = []
    for record in records:
        if not record.get("main"):
            continue
        if record["model"] not in models:
            models.append(record["model"])
        row = (record["task"], record["split"], record["metric"])
        values.setdefault(row, {}).setdefault(record["model"], []).append(record["value"])
    return {row: {m: sum(v) / len(v) for m, v in by_model.items()} for row, by_model in values.items()}, models


def task_types(records: Iterable[Record]) -> dict[str, str]:
    """Task -> its mteb type (`type` of its records; `untyped` for records of runs that did not write it)."""
    return {record["task"]: record.get("type") or UNTYPED for record in records}


def type_means(table: dict[Row, dict[str, float]], types: dict[str, str],
               model: str) -> dict[str, tuple[float, int]]:
    """Type (and `Avg`, over all tasks) -> (the model's mean main score, how many tasks it is over)."""
    scores: dict[str, list[float]] = {}
    for (task, _, _), values in table.items():
        if model in values:
            scores.setdefault(types.get(task, UNTYPED), []).append(values[model])
            scores.setdefault(AVERAGE, []).append(values[model])
    return {column: (sum(v) / len(v), len(v)) for column, v in scores.items()}


def type_table(table: dict[Row, dict[str, float]], types: dict[str, str], models: list[str]) -> str:
    """Table 1's layout: a row per model, a column per task type (with its task count) and the average over all
    tasks, scores x100; a `*` marks a mean over fewer tasks than the column has."""
    means = {model: type_means(table, types, model) for model in models}
    present = set(types[task] for task, _, _ in table)
    columns = [t for t in TABLE1_COLUMNS if t in present] + sorted(present - set(TABLE1_COLUMNS)) + [AVERAGE]
    counts = {c: sum(1 for task, _, _ in table if c in (AVERAGE, types[task])) for c in columns}
    lines = ["| model | " + " | ".join(f"{TABLE1_COLUMNS.get(c, c)} ({counts[c]})" for c in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for model in models:
        cells = [_mean_cell(means[model].get(c), counts[c]) for c in columns]
        lines.append(f"| `{model}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean_cell(mean: tuple[float, int] | None, count: int) -> str:
    if mean is None:
        return "-"
    return f"{100 * mean[0]:.2f}" + ("*" if mean[1] < count else "")


def markdown_table(table: dict[Row, dict[str, float]], models: list[str]) -> str:
    """One row per task, one column per model; `-` where a model was not run on a task."""
    lines = ["| task | split | metric | " + " | ".join(f"`{m}`" for m in models) + " |",
             "|---|---|---|" + "---:|" * len(models)]
    for (task, split, metric), values in table.items():
        cells = [f"{values[m]:.4f}" if m in values else "-" for m in models]
        lines.append(f"| {task} | {split} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bar_chart(table: dict[Row, dict[str, float]], models: list[str], target: Path) -> None:
    """Grouped horizontal bars: a group per task, a bar per model, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(table)
    height = 0.8 / max(len(models), 1)
    figure, axes = plt.subplots(figsize=(8, 1.2 + 0.5 * len(rows) * max(len(models), 1)))
    for i, model in enumerate(models):
        positions = [r + i * height for r in range(len(rows))]
        axes.barh(positions, [table[row].get(model, 0.0) for row in rows], height, label=model)
    axes.set_yticks([r + height * (len(models) - 1) / 2 for r in range(len(rows))],
                    [f"{task}\n{metric}" for task, _, metric in rows])
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.set_xlabel("main score")
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    with atomic_file(target) as stream:
        figure.savefig(stream, format="png", dpi=100)
    plt.close(figure)


def write_report(records: Iterable[Record], target: Path) -> dict[str, Any]:
    """The Markdown report at `target` and its chart at `target` with `.png`; returns what was written."""
    records = list(records)
    table, models = main_scores(records)
    chart = target.with_suffix(".png")
    if table:
        bar_chart(table, models, chart)
    text = ["# Evaluation report", "", "Mean main score per task type and over all tasks (x100; a task's score is the "
            "mean over its subsets; `*`: over fewer tasks than the column counts):", "",
            type_table(table, task_types(records), models), "", "## Tasks", "", markdown_table(table, models), ""]
    if table:
        text += ["", f"![main score per task and model]({chart.name})"]
    with atomic_file(target) as stream:
        stream.write(("\n".join(text) + "\n").encode())
    return {"report": str(target), "chart": str(chart) if table else None, "tasks": len(table), "models": models}
