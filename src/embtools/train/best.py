"""`emb-train --keep-best TASK[:METRIC]`: the best evaluated step's weights become the output.

TASK is a task as emb-eval names it (`STSBenchmark`, `SciFact`, an mteb task); a sliced task
(`SciFact[1000 docs]`) answers to its bare name too. METRIC is one of its metrics as emb-eval writes them
(`ndcg_at_10`, `cosine_spearman`); without it, the task's main score. Higher is better (as for every metric emb-eval
writes). Each time a step beats the best so far, its trainable weights and its score are written atomically to
CHECKPOINT_DIR/best/ (trainable.safetensors, best.json), so a killed run that resumes keeps the best so far; at the
end those weights are loaded into the model before it is written, and the step and score go into the summary and
OUTPUT/best.json.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from embtools.errors import EmbtoolsError
from embtools.records.atomic import atomic_dir
from embtools.train.checkpoint import TRAINABLE, load_trainable, save_trainable

log = logging.getLogger("embtools")

_RECORD = "best.json"


@dataclass
class BestScore:
    task: str
    metric: str
    step: int
    value: float


def parse_keep_best(target: str, tasks: list[str]) -> tuple[str, str | None]:
    """`TASK[:METRIC]` -> (task, metric or None for the main score); TASK must be one of the evaluated `tasks`."""
    task, _, metric = target.partition(":")
    if task not in tasks:
        raise ValueError(f"{target}: {task!r} is not an evaluated task (--eval gives: {', '.join(tasks)})")
    return task, metric or None


def _bare(task: str) -> str:
    return task.split("[", 1)[0]


class KeepBest:
    """The best step so far of one metric, kept in `folder` (rank 0 only)."""

    def __init__(self, task: str, metric: str | None, folder: Path, resumed_step: int):
        self.task, self.metric, self.folder = task, metric, folder
        self.best = self._restored(resumed_step)

    def _restored(self, resumed_step: int) -> BestScore | None:
        """The best so far of the run being resumed; a fresh run (or another target) starts without one."""
        record = self.folder / _RECORD
        if resumed_step == 0 or not record.exists():
            shutil.rmtree(self.folder, ignore_errors=True)
            return None
        best = BestScore(**json.loads(record.read_text()))
        if _bare(best.task) != self.task or (self.metric and best.metric != self.metric):
            log.warning(f"--keep-best {self.task}: the kept best was of {best.task}:{best.metric}; starting over")
            shutil.rmtree(self.folder, ignore_errors=True)
            return None
        log.info(f"best so far: step {best.step}, {best.task} {best.metric} {best.value:.4f}")
        return best

    def score(self, metrics: dict[str, dict[str, float]], main_metrics: dict[str, str]) -> BestScore:
        """This evaluation's score of the target (its step is filled in by `offer`)."""
        task = next((name for name in metrics if name == self.task or _bare(name) == self.task), None)
        if task is None:
            raise EmbtoolsError(f"--keep-best {self.task}: no such task was evaluated ({', '.join(metrics)})")
        metric = self.metric or main_metrics[task]
        if metric not in metrics[task]:
            raise EmbtoolsError(f"--keep-best {self.task}:{metric}: no such metric (it has: "
                                f"{', '.join(metrics[task])})")
        return BestScore(task, metric, 0, metrics[task][metric])

    def offer(self, step: int, metrics: dict[str, dict[str, float]], main_metrics: dict[str, str],
              model: Any) -> bool:
        """Keep `model`'s trainable weights if this step's score beats the best so far; True if it did."""
        candidate = self.score(metrics, main_metrics)
        candidate.step = step
        if self.best is not None and candidate.value <= self.best.value:
            return False
        with atomic_dir(self.folder, overwrite=True) as tmp:
            save_trainable(model, tmp / TRAINABLE)
            (tmp / _RECORD).write_text(json.dumps(asdict(candidate)))
        self.best = candidate
        return True

    def restore(self, model: Any) -> BestScore | None:
        """Load the best step's weights into `model` (a plain module on rank 0); the score, or None if none."""
        if self.best is None:
            return None
        load_trainable(model, self.folder / TRAINABLE, f"cannot keep the best step from {self.folder}")
        log.info(f"kept step {self.best.step}: {self.best.task} {self.best.metric} {self.best.value:.4f}")
        return self.best

    def write_record(self, folder: Path) -> None:
        if self.best is not None:
            (folder / _RECORD).write_text(json.dumps(asdict(self.best), indent=2) + "\n")
