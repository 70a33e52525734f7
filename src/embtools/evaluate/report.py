"""A run report: the main score of every task for every model, as a Markdown table and a PNG bar chart beside it.

emb-eval writes one with `--report FILE.md` from the metric records of its own run plus any earlier runs given with
`--compare METRICS.jsonl` (for a before/after table: the untrained model, a reference model). The chart is
`FILE.png`; both are written atomically.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from embtools.errors import InputError
from embtools.records.atomic import atomic_file
from embtools.records.jsonl import Record, read_records, require_string

Row = tuple[str, str, str]  # task, split, metric


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
    """(task, split, metric) -> {model: value} of the records marked main, and the models in order of appearance."""
    table: dict[Row, dict[str, float]] = {}
    models: list[str] = []
    for record in records:
        if not record.get("main"):
            continue
        if record["model"] not in models:
            models.append(record["model"])
        table.setdefault((record["task"], record["split"], record["metric"]), {})[record["model"]] = record["value"]
    return table, models


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
    table, models = main_scores(records)
    chart = target.with_suffix(".png")
    if table:
        bar_chart(table, models, chart)
    text = ["# Evaluation report", "", markdown_table(table, models), ""]
    if table:
        text += ["", f"![main score per task and model]({chart.name})"]
    with atomic_file(target) as stream:
        stream.write(("\n".join(text) + "\n").encode())
    return {"report": str(target), "chart": str(chart) if table else None, "tasks": len(table), "models": models}
