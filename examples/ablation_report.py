"""The ablation's report (examples/ablation.mk, issue 18.1).

    python examples/ablation_report.py cost DIR          # generation cost and filter pass rate, from DIR's logs
    python examples/ablation_report.py table OUT.md EVAL.jsonl...   # emb-eval's report (and OUT.png) of them all

`cost` reads each step's log (`emb-brainstorm`/`emb-generate` end with their calls, tokens and seconds; the recipe
adds its wall seconds) and counts records: per task group, tasks brainstormed, examples generated, examples that
passed emb-filter (DIR/synthetic.jsonl), and the pass rate.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

from embtools.evaluate.report import read_metric_records, write_report

GROUPS = ("short-long", "long-short", "short-short", "long-long", "sts", "bitext")
CALLS = re.compile(r"(\d+) calls \((\d+) from the cache")
TOKENS = re.compile(r"tokens: (\d+) prompt \+ (\d+) completion")
SECONDS = re.compile(r"^seconds: (\d+)", re.MULTILINE)


def nonblank_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def step_cost(log: Path) -> tuple[int, int, int, int]:
    """(calls, prompt tokens, completion tokens, wall seconds) of one logged step; zeros where it is absent."""
    text = log.read_text() if log.exists() else ""
    calls, tokens, seconds = CALLS.search(text), TOKENS.search(text), SECONDS.search(text)
    return (int(calls.group(1)) if calls else 0, int(tokens.group(1)) if tokens else 0,
            int(tokens.group(2)) if tokens else 0, int(seconds.group(1)) if seconds else 0)


def cost(folder: Path) -> str:
    kept = Counter(json.loads(line)["task_type"] for line in nonblank_lines(folder / "synthetic.jsonl"))
    rows, total = [], [0] * 7
    for group in GROUPS:
        steps = [step_cost(folder / f"{name}-{group}.jsonl.log") for name in ("tasks", "examples")]
        calls, prompt, completion, seconds = (sum(column) for column in zip(*steps))
        counts = (len(nonblank_lines(folder / f"tasks-{group}.jsonl")),
                  len(nonblank_lines(folder / f"examples-{group}.jsonl")), kept[group])
        row = (calls, prompt, completion, seconds, *counts)
        total = [a + b for a, b in zip(total, row)]
        rows.append((group, row))
    rows.append(("all", tuple(total)))
    text = ["", "## Synthetic data: generation cost and filter pass rate", "",
            "| group | calls | prompt tokens | completion tokens | s | tasks | examples | kept | kept/examples |",
            "|---|" + "---:|" * 8]
    for group, (calls, prompt, completion, seconds, tasks, examples, passed) in rows:
        rate = f"{passed / examples:.2f}" if examples else "-"
        text.append(f"| {group} | {calls} | {prompt} | {completion} | {seconds} | {tasks or '-'} | {examples} | "
                    f"{passed} | {rate} |")
    return "\n".join(text) + "\n"


def main(argv: list[str]) -> None:
    if argv[:1] == ["cost"] and len(argv) == 2:
        sys.stdout.write(cost(Path(argv[1])))
    elif argv[:1] == ["table"] and len(argv) > 2:
        write_report([r for path in argv[2:] for r in read_metric_records(path)], Path(argv[1]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
