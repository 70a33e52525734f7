"""What went through emb-filter: distributions of the kept examples and the reject reasons, as a Markdown report.

Everything is counted while streaming (counters of values and of word lengths, never the texts), so a report of a
million examples costs what one of a thousand does. `--report FILE` writes FILE (Markdown) and, beside it,
FILE's stem + `-lengths.png`: a histogram of the word lengths of queries, positives and negatives (matplotlib, Agg).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from embtools.records.atomic import atomic_file
from embtools.records.examples import meta_of, text
from embtools.records.jsonl import Record
from embtools.records.word_count import word_count

LENGTH_FIELDS = ("query", "positive", "negative")
MAX_DISTINCT = 30  # placeholder values listed per placeholder; the rest are summed as "(other)"


class FilterStats:
    """Counts of the kept examples (task types, languages, placeholder values, word lengths) and notes."""

    def __init__(self) -> None:
        self.read = 0
        self.kept = 0
        self.task_types: Counter[str] = Counter()
        self.languages: Counter[str] = Counter()
        self.placeholders: dict[str, Counter[str]] = {}
        self.lengths: dict[str, Counter[int]] = {field: Counter() for field in LENGTH_FIELDS}
        self.notes: Counter[str] = Counter()  # "not checked: ..." and other counts that are not rejects

    def counted(self, records: Iterable[Record]) -> Iterator[Record]:
        """Pass the records through, counting each as kept."""
        for record in records:
            self.count_kept(record)
            yield record

    def count_kept(self, record: Record) -> None:
        self.kept += 1
        self.task_types[str(record.get("task_type"))] += 1
        self.languages[str(record.get("language"))] += 1
        placeholders = meta_of(record).get("placeholders")
        for name, value in (placeholders.items() if isinstance(placeholders, dict) else ()):
            self.placeholders.setdefault(name, Counter())[_value_text(value)] += 1
        for field in LENGTH_FIELDS:
            if record.get(field) is not None:
                self.lengths[field][word_count(text(record, field))] += 1


def summary_lines(stats: FilterStats, rejects: Counter, seconds: float) -> list[str]:
    """The stderr summary: what was read, kept and rejected (by reason), and what some checks could not judge."""
    reasons = ", ".join(f"{reason} {count}" for reason, count in rejects.most_common())
    lines = [f"{stats.read} examples read, {stats.kept} kept, {sum(rejects.values())} rejected"
             + (f" ({reasons})" if reasons else "") + f" in {seconds:.1f} s"]
    if stats.notes:
        lines.append("not checked: " + ", ".join(f"{k} {v}" for k, v in stats.notes.most_common()))
    return lines


def _value_text(value) -> str:
    shown = value if isinstance(value, str) else repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _table(title: str, counts: Counter, total: int | None = None) -> list[str]:
    total = total or sum(counts.values()) or 1
    rows = counts.most_common()
    shown, rest = rows[:MAX_DISTINCT], sum(n for _, n in rows[MAX_DISTINCT:])
    lines = [f"| {title} | count | share |", "|---|---:|---:|"]
    lines += [f"| {str(key).replace('|', '/')} | {n} | {n / total:.1%} |" for key, n in shown]
    if rest:
        lines.append(f"| (other) | {rest} | {rest / total:.1%} |")
    return lines + [""]


def _length_summary(stats: FilterStats) -> list[str]:
    lines = ["| field | texts | min | median | mean | max |", "|---|---:|---:|---:|---:|---:|"]
    for field, counts in stats.lengths.items():
        if not counts:
            continue
        values = sorted(counts.elements())
        lines.append(f"| {field} | {len(values)} | {values[0]} | {values[len(values) // 2]} | "
                     f"{sum(values) / len(values):.1f} | {values[-1]} |")
    return lines + [""]


def render_report(stats: FilterStats, rejects: Counter, image_name: str | None) -> str:
    """The Markdown report."""
    lines = ["# emb-filter report", "", f"Read {stats.read} examples; kept {stats.kept}; "
             f"rejected {sum(rejects.values())}.", "", "## Reject reasons", ""]
    lines += _table("reason", rejects) if rejects else ["None.", ""]
    if stats.notes:
        lines += ["## Not checked or noted (not rejects)", ""] + _table("note", stats.notes)
    lines += ["## Kept examples by task type", ""] + _table("task_type", stats.task_types)
    lines += ["## Kept examples by language", ""] + _table("language", stats.languages)
    for name, counts in sorted(stats.placeholders.items()):
        lines += [f"## Placeholder `{name}`", ""] + _table(name, counts)
    lines += ["## Text lengths (words) of the kept examples", ""] + _length_summary(stats)
    if image_name:
        lines += [f"![word lengths]({image_name})", ""]
    return "\n".join(lines)


def length_histogram(stats: FilterStats, path: Path) -> None:
    """A PNG histogram of word lengths, one series per field, log-spaced bins."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, axes = plt.subplots(figsize=(8, 4.5))
    longest = max((max(c) for c in stats.lengths.values() if c), default=1)
    bins = np.unique(np.geomspace(1, max(longest, 2) + 1, 40).astype(int))
    for field, counts in stats.lengths.items():
        if counts:
            axes.hist(list(counts), bins=bins, weights=list(counts.values()), histtype="step", label=field)
    axes.set_xscale("log")
    axes.set_xlabel("words")
    axes.set_ylabel("texts")
    axes.set_title(f"Word lengths of {stats.kept} kept examples")
    axes.legend()
    figure.tight_layout()
    with atomic_file(path) as stream:
        figure.savefig(stream, format="png", dpi=100)
    plt.close(figure)


def write_report(stats: FilterStats, rejects: Counter, path: Path) -> Path:
    """Write the Markdown report at `path` and the histogram beside it; return the image's path."""
    path = Path(path)
    image = path.with_name(path.stem + "-lengths.png")
    length_histogram(stats, image)
    with atomic_file(path) as stream:
        stream.write(render_report(stats, rejects, image.name).encode())
    return image
