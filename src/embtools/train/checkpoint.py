"""Checkpoints that let a killed run continue exactly: trainable weights, optimizer, scheduler, RNG states and the
data position (the step; the data order is a function of the seed), written atomically as
`CHECKPOINT_DIR/step_000420/` (a folder appears only when complete; older ones are pruned).

Under DeepSpeed the engine's own (per-rank, partitioned) state is saved with accelerate's save_state instead.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embtools.errors import EmbtoolsError
from embtools.records.atomic import atomic_dir

_PREFIX = "step_"
_KEPT = 2
TRAINABLE = "trainable.safetensors"


def checkpoint_name(step: int) -> str:
    return f"{_PREFIX}{step:06d}"


def latest_checkpoint(folder: Path) -> Path | None:
    """The complete checkpoint with the highest step in `folder`, or None."""
    if not folder.is_dir():
        return None
    done = sorted(p for p in folder.glob(f"{_PREFIX}*") if (p / "state.json").exists())
    return done[-1] if done else None


def rng_states() -> dict[str, Any]:
    """Every generator's state in types torch.load(weights_only=True) reads back (numpy's keys as a tensor)."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss),
                      float(cached_gaussian)],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    name, keys, position, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(states["torch"])
    if states.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def trainable_state(model: Any) -> dict[str, torch.Tensor]:
    return {name: p.detach().cpu().clone() for name, p in model.named_parameters() if p.requires_grad}


def save_trainable(model: Any, path: Path) -> None:
    from safetensors.torch import save_file

    save_file(trainable_state(model), str(path))


def load_trainable(model: Any, path: Path, failure: str) -> None:
    """Copy the weights of a trainable.safetensors into `model`'s trainable parameters (each onto its device);
    `failure` begins the error if they do not match."""
    from safetensors.torch import load_file

    weights = load_file(str(path))
    parameters = dict(model.named_parameters())
    missing = set(weights) ^ {n for n, p in parameters.items() if p.requires_grad}
    if missing:
        raise EmbtoolsError(f"{failure}: its weights do not match this model ({sorted(missing)[0]}...)")
    with torch.no_grad():
        for name, value in weights.items():
            parameters[name].copy_(value)


def save_checkpoint(folder: Path, step: int, model: Any, optimizer: Any, scheduler: Any, meta: dict[str, Any],
                    rng_by_rank: list[dict[str, Any]]) -> Path:
    """Write step `step`'s checkpoint atomically and prune older ones (rank 0; weights and optimizer state are the
    same on every rank, the RNG states are each rank's own)."""
    target = folder / checkpoint_name(step)
    with atomic_dir(target, overwrite=True) as tmp:
        save_trainable(model, tmp / TRAINABLE)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(rng_by_rank, tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, **meta}, indent=2))
    prune_checkpoints(folder)
    return target


def prune_checkpoints(folder: Path) -> None:
    done = sorted(p for p in folder.glob(f"{_PREFIX}*") if (p / "state.json").exists())
    for old in done[:-_KEPT]:
        shutil.rmtree(old, ignore_errors=True)


def read_state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / "state.json").read_text())


def check_compatible(state: dict[str, Any], meta: dict[str, Any]) -> None:
    """A resumed run must see the same data, batches and model, or 'continue exactly' means nothing."""
    for key, value in meta.items():
        if key in state and state[key] != value:
            raise EmbtoolsError(f"cannot resume: the checkpoint was made with {key}={state[key]!r}, this run has "
                                f"{value!r}")


def load_checkpoint(checkpoint: Path, model: Any, optimizer: Any, scheduler: Any, rank: int = 0) -> int:
    """Restore everything saved by save_checkpoint; returns the step it was taken after."""
    load_trainable(model, checkpoint / TRAINABLE, f"cannot resume from {checkpoint}")
    # Onto the CPU first: saved from rank 0's GPU, it would land on cuda:0 in every rank; load_state_dict then moves
    # each state to its parameter's device.
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", map_location="cpu", weights_only=True))
    scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=True))
    by_rank = torch.load(checkpoint / "rng.pt", weights_only=True)
    if rank >= len(by_rank):
        raise EmbtoolsError(f"cannot resume from {checkpoint}: it was written by {len(by_rank)} processes")
    set_rng_states(by_rank[rank])
    return int(read_state(checkpoint)["step"])


def save_engine_checkpoint(accelerator: Any, folder: Path, step: int, meta: dict[str, Any]) -> None:
    """DeepSpeed: every rank writes its partition into a temporary folder; rank 0 renames it into place."""
    target = folder / checkpoint_name(step)
    tmp = folder / f".{target.name}.partial"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / "state.json").write_text(json.dumps({"step": step, **meta}, indent=2))
        shutil.rmtree(target, ignore_errors=True)
        os.rename(tmp, target)
        prune_checkpoints(folder)
    accelerator.wait_for_everyone()


def load_engine_checkpoint(accelerator: Any, checkpoint: Path) -> int:
    accelerator.load_state(str(checkpoint))
    return int(read_state(checkpoint)["step"])
