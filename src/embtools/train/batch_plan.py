"""The order of a run's batches: every global batch of every epoch, and each rank's share of it, from any step on
(so a resumed run continues where the checkpoint left off)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from embtools.distributed import rank, world_size
from embtools.errors import EmbtoolsError
from embtools.train.data import TrainingExample, epoch_batches

if TYPE_CHECKING:
    from embtools.train.loop import TrainConfig


class BatchPlan:
    """The global batches of the whole run, in order: epochs one after another, as long as the run lasts."""

    def __init__(self, pools: list[list[TrainingExample]], config: TrainConfig):
        self.pools, self.config = pools, config
        self.weights = [s.weight for s in config.sources]
        self._epochs: dict[int, list[list[TrainingExample]]] = {}
        per_epoch = len(self.epoch(0))
        if per_epoch == 0:
            examples = sum(len(p) for p in pools)
            raise EmbtoolsError(f"{examples} examples make no full batch of --batch-size {config.batch_size}")
        accumulation = config.gradient_accumulation_steps
        batches = config.max_steps * accumulation if config.max_steps else sum(
            len(self.epoch(e)) for e in range(config.epochs))
        self.total_steps = batches // accumulation  # optimizer steps
        if self.total_steps == 0:
            raise EmbtoolsError(f"{batches} batches make no step of --gradient-accumulation-steps {accumulation}")

    def epoch(self, number: int) -> list[list[TrainingExample]]:
        if number not in self._epochs:
            self._epochs = {number: epoch_batches(self.pools, self.weights, self.config.batch_size, self.config.seed,
                                                  number, self.config.same_task_batches)}
        return self._epochs[number]

    def steps_from(self, step: int):
        """(epoch, [this rank's share of each accumulated batch]) for optimizer steps step+1 ... total_steps."""
        batches = self._batches_from(step * self.config.gradient_accumulation_steps)
        for _ in range(self.total_steps - step):
            group = [next(batches) for _ in range(self.config.gradient_accumulation_steps)]
            yield group[-1][0], [share for _, share in group]

    def _batches_from(self, position: int):
        epoch, skip = 0, position
        while skip >= len(self.epoch(epoch)):
            skip -= len(self.epoch(epoch))
            epoch += 1
        share = self.config.batch_size // world_size()
        while True:
            batch = self.epoch(epoch)[skip]
            yield epoch, batch[rank() * share:(rank() + 1) * share]
            skip += 1
            if skip == len(self.epoch(epoch)):
                epoch, skip = epoch + 1, 0
