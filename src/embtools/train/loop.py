"""emb-train's training loop, top to bottom: load -> wrap with LoRA -> batches -> GradCache InfoNCE steps -> export.

The paper's recipe by default (E5-mistral, App. A): AdamW, lr 1e-4, 100 warm-up steps then linear decay, weight decay
0.1, one epoch, temperature 0.02, LoRA r16 on all linear layers. accelerate runs it on one CPU, several processes
(DDP, gloo on CPUs) or DeepSpeed ZeRO-2/3. Only rank 0 logs, checkpoints and writes the output folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embtools.distributed import gather_everywhere, leave_process_group, rank, world_size
from embtools.errors import EmbtoolsError
from embtools.models.builtin import DEFAULT_MODEL
from embtools.models.loading import inspect_model, portable_base_name
from embtools.records.atomic import atomic_dir, check_output_dir
from embtools.records.jsonl import RejectSink
from embtools.train import recipe
from embtools.train.batch_plan import BatchPlan
from embtools.train.checkpoint import (
    check_compatible,
    latest_checkpoint,
    load_checkpoint,
    load_engine_checkpoint,
    read_state,
    rng_states,
    save_checkpoint,
    save_engine_checkpoint,
)
from embtools.train.data import DataSource, load_examples, most_common_instruction
from embtools.train.evaluation import EvalPlan, TrainingEvaluator
from embtools.train.export import export_model
from embtools.train.infonce_loss import InfoNCELoss
from embtools.train.lora import (
    LoraSettings,
    add_lora,
    describe_parameters,
    enable_gradient_checkpointing,
    load_base_model,
    trainable_parameters,
)
from embtools.train.model_card import data_counts, write_model_card
from embtools.train.optimizer import make_optimizer
from embtools.train.precision import resolve_mixed_precision
from embtools.train.step import train_step
from embtools.train.step_log import RunState, append_row, log_step, summarize, truncate_log
from embtools.train.text_batches import TextBatcher
from embtools.train.tracking import (
    accelerator_arguments,
    end_tracking,
    eval_values,
    report,
    start_tracking,
    step_values,
)

log = logging.getLogger("embtools")

_CRASH_ENV = "EMBTOOLS_TRAIN_KILL_AFTER_CHECKPOINT"  # fault injection for tests: SIGKILL after saving this step


@dataclass
class TrainConfig:
    output: Path
    sources: list[DataSource]
    model: str = DEFAULT_MODEL
    lora: LoraSettings | None = field(default_factory=LoraSettings)
    temperature: float = recipe.TEMPERATURE
    batch_size: int = recipe.BATCH_SIZE
    mini_batch_size: int = recipe.MINI_BATCH_SIZE
    max_steps: int | None = None
    epochs: int = 1
    lr: float = recipe.LEARNING_RATE
    warmup_steps: int = recipe.WARMUP_STEPS
    weight_decay: float = recipe.WEIGHT_DECAY
    seed: int = recipe.SEED
    query_max_length: int = recipe.MAX_LENGTH
    document_max_length: int = recipe.MAX_LENGTH
    mixed_precision: str = "auto"  # resolved on construction (train/precision.py): no, fp16 or bf16
    gradient_checkpointing: bool = False
    same_task_batches: bool = False
    mask_false_negatives: bool = True
    negatives_per_example: int = 1  # hard negatives taken per example (train/data.py)
    gradient_accumulation_steps: int = 1
    save_every: int | None = None
    checkpoint_dir: Path | None = None
    resume: bool = False
    deepspeed: dict[str, Any] | None = None
    merge: bool = False
    overwrite: bool = False
    trust_remote_code: bool = False
    rope: dict | None = None  # RopeOverride.to_json(): --rope-theta / --rope-scaling, kept in training_args.json
    report_to: tuple[str, ...] = ()  # experiment trackers (train/tracking.py)
    evaluation: EvalPlan | None = None  # evaluation during training (train/evaluation.py)

    def __post_init__(self) -> None:
        self.mixed_precision = resolve_mixed_precision(self.mixed_precision)

    def data_meta(self) -> dict[str, Any]:
        """What a resumed run must share with the run that wrote the checkpoint."""
        return {"model": self.model, "sources": [asdict(s) for s in self.sources], "batch_size": self.batch_size,
                "seed": self.seed, "epochs": self.epochs, "max_steps": self.max_steps,
                "same_task_batches": self.same_task_batches, "world_size": world_size(),
                "lora": asdict(self.lora) if self.lora else None, "negatives_per_example": self.negatives_per_example}


def make_accelerator(config: TrainConfig, work_dir: Path):
    """An Accelerator for this process: gloo on CPUs (else each CPU rank thinks it is alone), DeepSpeed if asked."""
    from accelerate import Accelerator
    from accelerate.utils import DeepSpeedPlugin, InitProcessGroupKwargs

    handlers = [InitProcessGroupKwargs(backend="gloo")] if world_size() > 1 and not torch.cuda.is_available() else []
    if config.deepspeed and not torch.cuda.is_available():
        skip_shared_memory_comm()
    plugin = DeepSpeedPlugin(hf_ds_config=config.deepspeed, zero3_init_flag=False) if config.deepspeed else None
    # On CPUs, plain multi-process training needs cpu=True (else accelerate sees DistributedType.NO and wraps no
    # DDP); DeepSpeed needs cpu=False (cpu=True silently drops the plugin) and does its own gradient reduction.
    cpu = not torch.cuda.is_available() and plugin is None
    return Accelerator(cpu=cpu, mixed_precision=config.mixed_precision, deepspeed_plugin=plugin,
                       kwargs_handlers=handlers, **accelerator_arguments(config.report_to, work_dir))


def skip_shared_memory_comm() -> None:
    """DeepSpeed on CPUs JIT-compiles its shared-memory all-reduce (`deepspeed_shm_comm`, used only by inference
    all-reduce) when it starts its comm backend. Both ranks wait on the compile's lock file in TORCH_EXTENSIONS_DIR:
    minutes on a busy machine, and forever once a compile was killed and left its lock behind (seen here after a
    timed-out test run). Training never uses the op, so it is marked loaded as absent; DeepSpeed then
    falls back to torch.distributed, as it does wherever the op cannot be built."""
    from deepspeed.ops.op_builder.builder import OpBuilder

    OpBuilder._loaded_ops.setdefault("deepspeed_shm_comm", None)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_model(config: TrainConfig, spec):
    """The base model, gradient checkpointing if asked, and LoRA (seeded: every rank starts from the same weights)."""
    model, tokenizer = load_base_model(spec, config.trust_remote_code, config.rope)
    if config.gradient_checkpointing:
        zero3 = bool(config.deepspeed) and config.deepspeed.get("zero_optimization", {}).get("stage") == 3
        enable_gradient_checkpointing(model, reentrant=zero3 and config.lora is not None)
    seed_everything(config.seed)
    if config.lora is not None:
        model = add_lora(model, config.lora)
    return model, tokenizer


def step_totals(losses: list[torch.Tensor], tokens: int) -> tuple[float, int]:
    """This step's loss averaged over ranks and its tokens summed over ranks. They travel as Python numbers in an
    object collective, which runs on the collective device itself: no tensor of ours can be on the wrong one."""
    by_rank = gather_everywhere((torch.stack(losses).mean().item(), tokens))
    return sum(loss for loss, _ in by_rank) / len(by_rank), sum(count for _, count in by_rank)


def resume_from(config: TrainConfig, work_dir: Path, model, optimizer, scheduler, accelerator) -> int:
    """The step to continue after (0 for a fresh run); restores weights, optimizer, scheduler and RNG states."""
    checkpoint = latest_checkpoint(work_dir) if config.resume else None
    if checkpoint is None:
        if config.resume:
            log.info(f"no checkpoint in {work_dir}; starting from step 0")
        return 0
    check_compatible(read_state(checkpoint), config.data_meta())
    if config.deepspeed:
        step = load_engine_checkpoint(accelerator, checkpoint)
        scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=True))
    else:
        step = load_checkpoint(checkpoint, accelerator.unwrap_model(model), optimizer, scheduler, rank())
    log.info(f"resumed from {checkpoint} (step {step})")
    return step


def save_step(config: TrainConfig, work_dir: Path, step: int, model, optimizer, scheduler, accelerator) -> None:
    from embtools.distributed import gather_to_main

    if config.deepspeed:
        save_engine_checkpoint(accelerator, work_dir, step, config.data_meta())
        if accelerator.is_main_process:
            torch.save(scheduler.state_dict(), work_dir / f"step_{step:06d}" / "scheduler.pt")
    else:
        by_rank = gather_to_main(rng_states())
        if accelerator.is_main_process:
            save_checkpoint(work_dir, step, accelerator.unwrap_model(model), optimizer, scheduler,
                            config.data_meta(), by_rank)
    accelerator.wait_for_everyone()
    if os.environ.get(_CRASH_ENV) == str(step) and accelerator.is_main_process:
        os.kill(os.getpid(), signal.SIGKILL)


def evaluate_step(evaluator: TrainingEvaluator | None, step: int, accelerator, model, tokenizer,
                  log_path: Path | None, config: TrainConfig) -> None:
    """--eval: rank 0 (the only one with an evaluator) evaluates the model being trained; the others wait."""
    if evaluator is not None:
        evaluation = evaluator.evaluate(step, accelerator.unwrap_model(model), tokenizer)
        append_row(log_path, evaluation.log_row())
        report(accelerator, config.report_to, eval_values(evaluation.metrics), step)
    accelerator.wait_for_everyone()


def train(config: TrainConfig, sink: RejectSink | None = None) -> dict[str, Any]:
    """Run the whole training and write the output folder (rank 0); returns the summary."""
    started = time.perf_counter()
    work_dir = config.checkpoint_dir or config.output.with_name(config.output.name + ".checkpoints")
    with contextlib.redirect_stdout(sys.stderr):  # DeepSpeed print()s build notices; stdout is the summary's
        accelerator = make_accelerator(config, work_dir)
    main = accelerator.is_main_process
    if main and not config.resume:
        check_output_dir(config.output, config.overwrite)
    if config.batch_size % world_size():
        raise EmbtoolsError(f"--batch-size {config.batch_size} does not split over {world_size()} processes")
    spec = inspect_model(config.model)
    pools = load_examples(config.sources, sink, config.negatives_per_example)
    plan = BatchPlan(pools, config)
    model, tokenizer = build_model(config, spec)
    parameters = describe_parameters(model)
    batcher = TextBatcher(tokenizer, spec.pooling, config.query_max_length, config.document_max_length)
    optimizer, scheduler = make_optimizer(model, config, plan.total_steps)
    with contextlib.redirect_stdout(sys.stderr):
        model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    if main:
        work_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"{sum(map(len, pools))} examples, {plan.total_steps} steps of {config.batch_size} "
                 f"on {world_size()} process(es), mixed precision {config.mixed_precision}; {parameters}")
    state = RunState(step=resume_from(config, work_dir, model, optimizer, scheduler, accelerator))
    state.show_progress(plan.total_steps)
    if state.step == 0:
        torch.manual_seed(config.seed + 1000 * (rank() + 1))  # dropout masks differ across ranks
    log_path = work_dir / "train_log.jsonl" if main else None
    if main:
        truncate_log(log_path, state.step)
    start_tracking(accelerator, config.report_to, config.output.name, run_arguments(config), state.step)
    evaluator = TrainingEvaluator(config.evaluation, spec, most_common_instruction(pools), output_max_length(config),
                                  work_dir, state.step) if config.evaluation and main else None
    loss_fn = InfoNCELoss(config.temperature, config.mask_false_negatives)
    accumulation = config.gradient_accumulation_steps
    for epoch, shares in plan.steps_from(state.step):
        tick = time.perf_counter()
        losses, tokens = [], 0
        for index, share in enumerate(shares):
            loss, used = train_step(model, batcher, loss_fn, share, config, accelerator, scale=1 / accumulation,
                                    final=index == len(shares) - 1)
            losses.append(loss)
            tokens += used
        lr = scheduler.get_last_lr()[0]  # the rate this step used
        grad_norm = optimizer_step(config, model, optimizer, accelerator)
        scheduler.step()
        loss, tokens = step_totals(losses, tokens)
        state.step += 1
        row = log_step(log_path, state, loss, lr, tokens, config.batch_size * accumulation,
                       time.perf_counter() - tick, epoch, grad_norm)
        report(accelerator, config.report_to, step_values(row), state.step)
        if config.evaluation and config.evaluation.due(state.step, plan.total_steps):
            evaluate_step(evaluator, state.step, accelerator, model, tokenizer, log_path, config)
        if config.save_every and state.step % config.save_every == 0 and state.step < plan.total_steps:
            save_step(config, work_dir, state.step, model, optimizer, scheduler, accelerator)
    return finish(config, accelerator, model, tokenizer, spec, pools, state, work_dir, started, evaluator)


def optimizer_step(config: TrainConfig, model, optimizer, accelerator) -> float | None:
    """One optimizer step, then zero gradients; returns the gradient norm (of all trainable weights, unscaled, as
    if clipped at infinity: nothing is clipped). Under DeepSpeed `model` is the engine: its step() runs the ZeRO
    optimizer on the gradients reduced by every backward since the last step (accelerate's optimizer wrapper is a
    no-op there) and reports the norm it computed. The learning rate is the torch scheduler's, which sets the
    param_groups the engine's optimizer reads, so the schedule is the same as without DeepSpeed."""
    if config.deepspeed:
        model.step()
        norm = model.get_global_grad_norm()
    else:
        norm = accelerator.clip_grad_norm_(model.parameters(), float("inf"))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    norm = None if norm is None else float(norm)
    return norm if norm is not None and math.isfinite(norm) else None  # fp16 overflow (a skipped step): null


@contextlib.contextmanager
def without_zero3_init():
    """transformers partitions every model it loads while a ZeRO-3 config is registered; this load is local."""
    from transformers.integrations import deepspeed as hf_deepspeed

    saved = getattr(hf_deepspeed, "_hf_deepspeed_config_weak_ref", None)
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = saved


def final_model(config: TrainConfig, accelerator, model, spec):
    """The trained model as one plain (unsharded) module on rank 0; None elsewhere."""
    if not config.deepspeed:
        return accelerator.unwrap_model(model) if accelerator.is_main_process else None
    weights = accelerator.get_state_dict(model)  # ZeRO-3: every rank takes part in gathering the shards
    if not accelerator.is_main_process:
        return None
    plain = TrainConfig(**{**config.__dict__, "deepspeed": None, "gradient_checkpointing": False})
    with without_zero3_init():  # rank 0 alone: a ZeRO-3 partitioned load would wait for the other ranks forever
        fresh, _ = build_model(plain, spec)
    missing = {n for n, _ in trainable_parameters(fresh)} - set(weights)
    if missing:
        raise EmbtoolsError(f"DeepSpeed returned no weights for {sorted(missing)[0]}...")
    fresh.load_state_dict(weights, strict=False)
    return fresh


def output_max_length(config: TrainConfig) -> int:
    """The longest text the output model takes (its sentence-transformers max_seq_length)."""
    return max(config.query_max_length, config.document_max_length)


def run_arguments(config: TrainConfig) -> dict[str, Any]:
    """The run's settings as JSON values (training_args.json, the trackers' hyperparameters)."""
    arguments = {**{k: v for k, v in config.__dict__.items() if k not in {"lora", "sources", "output",
                                                                           "checkpoint_dir", "evaluation"}},
                 "lora": asdict(config.lora) if config.lora else None,
                 "sources": [asdict(s) for s in config.sources], "world_size": world_size(),
                 "evaluation": asdict(config.evaluation) if config.evaluation else None}
    return json.loads(json.dumps(arguments, default=str))


def finish(config: TrainConfig, accelerator, model, tokenizer, spec, pools, state: RunState, work_dir: Path,
           started: float, evaluator: TrainingEvaluator | None = None) -> dict[str, Any]:
    state.end_progress()
    accelerator.wait_for_everyone()
    trained = final_model(config, accelerator, model, spec)
    summary = {}
    if accelerator.is_main_process:
        best = evaluator.restore_best(trained) if evaluator else None
        with atomic_dir(config.output, overwrite=config.overwrite or config.resume) as folder:
            log_file = work_dir / "train_log.jsonl"
            if log_file.exists():
                (folder / "train_log.jsonl").write_text(log_file.read_text())
            if evaluator:
                evaluator.write_record(folder)
            export_model(folder, trained, tokenizer, portable_base_name(config.model, config.output), config.merge,
                         spec.pooling, output_max_length(config), most_common_instruction(pools),
                         {**run_arguments(config), "data": data_counts(config.sources, pools)})
        write_model_card(config.output)  # in place: it names the folder and checks the base beside it
        summary = summarize(config, state, started)
        if best:
            summary["best"] = asdict(best)
    end_tracking(accelerator)
    leave_process_group()
    return summary
