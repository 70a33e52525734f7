"""The optimizer and learning-rate schedule of emb-train: AdamW, linear warm-up from a non-zero first rate, linear
decay. Under DeepSpeed the engine wraps this optimizer and the loop steps this scheduler (see loop.optimizer_step)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from embtools.train.lora import trainable_parameters


def make_optimizer(model, config, total_steps: int):
    """AdamW with weight decay on matrices (not on biases and norms), warm-up then linear decay."""
    params = trainable_parameters(model)
    groups = [{"params": [p for _, p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
              {"params": [p for _, p in params if p.ndim < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr)
    schedule = WarmupLinear(min(config.warmup_steps, total_steps), total_steps)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


@dataclass(frozen=True)
class WarmupLinear:
    """The learning-rate factor of optimizer step s = index + 1 (1..total): s / W over the warm-up steps 1..W, then
    linear decay, (total - s + 1) / (total - W), to 1 / (total - W) at the last step. No step runs at rate 0
    (transformers' linear schedule runs its first step at 0, a step wasted and a test of nothing)."""

    warmup: int
    total: int

    def __call__(self, index: int) -> float:
        step = index + 1
        if step <= self.warmup:
            return step / self.warmup
        return max(0.0, (self.total - step + 1) / max(1, self.total - self.warmup))
