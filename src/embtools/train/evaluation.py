"""Evaluation during training (`emb-train --eval DATA... --eval-every N`): emb-eval's own evaluation of the model
being trained, every N steps and after the last one.

It is the call emb-eval makes (evaluate/run.py `evaluate_source`, with its EvalOptions: `--eval-max-corpus` and the
other slices), on rank 0, through an Encoder around the live model (LoRA adapter unmerged, in eval mode, under
inference_mode, then back to train mode) and without the embedding cache (the weights change every step). The model
is described as the output folder will describe it (prompts built from the training instruction, normalized vectors,
texts cut at the training --max-length), so a step's score is the one `emb-eval --dtype float32 OUTPUT` gives once
that step's weights are written. The RNG states are restored afterwards, so a run with evaluation trains exactly as
one without. The other ranks wait at a barrier.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from embtools.evaluate.run import EvalOptions
from embtools.train.best import BestScore, KeepBest, parse_keep_best

log = logging.getLogger("embtools")


@dataclass
class EvalPlan:
    """What to evaluate and when; `every` None: after the last step only. `keep_best`: `TASK[:METRIC]`."""

    data: list[str]
    every: int | None = None
    options: EvalOptions = field(default_factory=EvalOptions)
    max_length: int = 512
    batch_tokens: int | None = None  # None: the device's default (encode/batching.py)
    keep_best: str | None = None

    def due(self, step: int, total_steps: int) -> bool:
        return step == total_steps or bool(self.every) and step % self.every == 0

    def task_names(self) -> list[str]:
        from embtools.records.datasets import detect

        return [detect(argument).name for argument in self.data]


@dataclass
class Evaluation:
    """One evaluation's metrics, {task: {metric: value}} in emb-eval's names, and each task's main metric."""

    step: int
    metrics: dict[str, dict[str, float]]
    main_metrics: dict[str, str]
    seconds: float

    def log_row(self) -> dict[str, Any]:
        return {"step": self.step, "eval": self.metrics, "eval_seconds": round(self.seconds, 3)}


class TrainingEvaluator:
    """Evaluates the live model on rank 0 and keeps the best step (`--keep-best`) in CHECKPOINT_DIR/best."""

    def __init__(self, plan: EvalPlan, spec, instruction: str | None, max_length: int, work_dir: Path,
                 resumed_step: int):
        from embtools.records.datasets import detect
        from embtools.train.export import prompts

        self.plan = plan
        self.sources = [detect(argument) for argument in plan.data]
        self.spec = replace(spec, normalize=True, prompts=prompts(instruction), max_length=max_length)
        self.keeper = None
        if plan.keep_best:
            task, metric = parse_keep_best(plan.keep_best, [s.name for s in self.sources])
            self.keeper = KeepBest(task, metric, work_dir / "best", resumed_step)

    def evaluate(self, step: int, model, tokenizer) -> Evaluation:
        """Score `model` (a plain module) on every DATA; keep its weights if it is the best step so far."""
        from embtools.evaluate.results import metric_records
        from embtools.evaluate.run import evaluate_source
        from embtools.train.checkpoint import rng_states, set_rng_states

        started, saved, was_training = time.perf_counter(), rng_states(), model.training
        encoder = self._encoder(model, tokenizer)
        model.eval()
        try:
            outcomes = [evaluate_source(source, encoder, self.plan.options) for source in self.sources]
        finally:
            model.train(was_training)
            set_rng_states(saved)
        metrics = {o.task: {r["metric"]: r["value"] for r in metric_records(o.task, o.split, o.scores,
                                                                             o.main_metric, "")}
                   for o in outcomes}
        evaluation = Evaluation(step, metrics, {o.task: o.main_metric for o in outcomes},
                                time.perf_counter() - started)
        self._report(evaluation, model)
        return evaluation

    def _encoder(self, model, tokenizer):
        from embtools.encode.cached_encoder import CachedEncoder
        from embtools.encode.encoder import Encoder, EncodeSettings

        device = str(next(model.parameters()).device)
        settings = EncodeSettings(max_length=self.plan.max_length, max_tokens=self.plan.batch_tokens, device=device)
        live = Encoder(self.spec, settings, loaded=(model, tokenizer))
        return CachedEncoder(self.spec, settings, cache=None, encoder=live)

    def _report(self, evaluation: Evaluation, model) -> None:
        kept = self.keeper.offer(evaluation.step, evaluation.metrics, evaluation.main_metrics, model) \
            if self.keeper else False
        scores = ", ".join(f"{task} {evaluation.main_metrics[task]} {values[evaluation.main_metrics[task]]:.4f}"
                           for task, values in evaluation.metrics.items())
        log.info(f"step {evaluation.step}: eval {scores} in {evaluation.seconds:.1f} s"
                 + (" (best so far, kept)" if kept else ""))

    def restore_best(self, model) -> BestScore | None:
        """Load the best step's weights into `model` (rank 0, before export); None without --keep-best."""
        return self.keeper.restore(model) if self.keeper else None

    def write_record(self, folder: Path) -> None:
        if self.keeper:
            self.keeper.write_record(folder)
