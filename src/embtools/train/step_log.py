"""What emb-train records of each optimizer step: a row of OUTPUT.checkpoints/train_log.jsonl, a line on stderr, and
the progress bar (step of total, loss, lr, examples/s, ETA); and the summary of the run. Only rank 0 has a log file
and draws the bar."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embtools.distributed import world_size
from embtools.progress import NO_BAR, Bar

log = logging.getLogger("embtools")


@dataclass
class RunState:
    """The run so far: the last step done, each step's loss, and the totals the summary reports."""

    step: int = 0
    losses: list[float] = field(default_factory=list)
    tokens: int = 0
    examples: int = 0
    seconds: float = 0.0
    bar: Bar = field(default=NO_BAR, repr=False)

    def show_progress(self, total_steps: int) -> None:
        """A bar of optimizer steps, starting at the resumed step; closed by `end_progress`."""
        self.bar = Bar("train", total_steps, unit="step", initial=self.step)

    def end_progress(self) -> None:
        self.bar.close()


def log_step(log_path: Path | None, state: RunState, loss: float, lr: float, tokens: int, examples: int,
             seconds: float, epoch: int, grad_norm: float | None = None) -> dict[str, Any]:
    state.losses.append(loss)
    state.tokens += tokens
    state.examples += examples
    state.seconds += seconds
    row = {"step": state.step, "epoch": epoch, "loss": round(loss, 6), "lr": lr,
           "tokens_per_s": round(tokens / seconds, 1), "examples_per_s": round(examples / seconds, 2),
           "seconds": round(seconds, 3), "grad_norm": None if grad_norm is None else round(grad_norm, 6)}
    if log_path is not None:
        append_row(log_path, row)
        log.info(f"step {state.step}: loss {loss:.4f} lr {lr:.2e} {row['tokens_per_s']:.0f} tok/s")
    state.bar.update(1, loss=loss, lr=lr, **{"examples/s": row["examples_per_s"]})
    return row


def append_row(log_path: Path, row: dict[str, Any]) -> None:
    with open(log_path, "a") as stream:
        stream.write(json.dumps(row) + "\n")


def truncate_log(log_path: Path, step: int) -> None:
    """Keep the log lines of the steps before a resumed step only (the rest are repeated)."""
    if log_path.exists():
        kept = [line for line in log_path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        log_path.write_text("".join(line + "\n" for line in kept))


def summarize(config, state: RunState, started: float) -> dict[str, Any]:
    """The JSON summary line of a finished run (`config`: its TrainConfig)."""
    tail = state.losses[-10:]
    return {"output": str(config.output), "steps": state.step, "examples": state.examples,
            "first_loss": round(state.losses[0], 4) if state.losses else None,
            "final_loss": round(sum(tail) / len(tail), 4) if tail else None,
            "examples_per_s": round(state.examples / state.seconds, 3) if state.seconds else None,
            "tokens_per_s": round(state.tokens / state.seconds, 1) if state.seconds else None,
            "seconds": round(time.perf_counter() - started, 1), "world_size": world_size()}
