"""emb-train: contrastive fine-tuning (E5-mistral's recipe) of an embedding model on example records."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from embtools.cli import EmbtoolsCommand, ParsedBy, common_options, warning
from embtools.command_runner import RecordRun, record_command
from embtools.commands.model_options import offline_option, rope_options
from embtools.distributed import is_launched, is_main_process, launch_command, world_size
from embtools.errors import EmbtoolsError
from embtools.models.builtin import DEFAULT_MODEL
from embtools.models.hub_upload import parse_repo_id
from embtools.records.datasets import EVALUATION_SPLIT
from embtools.train import recipe
from embtools.train.data import parse_source
from embtools.train.deepspeed_configs import BUNDLED
from embtools.train.precision import MIXED_PRECISIONS


def _deepspeed_name(value: str) -> str:
    if value not in BUNDLED and not Path(value).is_file():
        raise EmbtoolsError(f"--deepspeed {value}: not {', '.join(BUNDLED)} or a JSON file")
    return value


@click.command(cls=EmbtoolsCommand, name="emb-train")
@record_command(reads="own", writes=False)
@click.argument("inputs", nargs=-1, metavar="[FILE[:WEIGHT]]...", type=ParsedBy(parse_source, "file[:weight]"))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              help="Model folder to write (appears when training is complete). Required unless --estimate-memory.")
@click.option("-m", "--model", envvar="EMBTOOLS_MODEL", default=DEFAULT_MODEL, show_default=True,
              help="Base model: built-in name, HF folder or hub id (downloaded on first use). Env: EMBTOOLS_MODEL.")
@click.option("--lora-rank", type=click.IntRange(min=1), default=recipe.LORA_RANK, show_default=True,
              help="LoRA rank (paper: 16).")
@click.option("--lora-alpha", type=float, default=recipe.LORA_ALPHA, show_default=True,
              help="LoRA alpha (e5-mistral's adapter).")
@click.option("--lora-dropout", type=click.FloatRange(0, 1), default=recipe.LORA_DROPOUT, show_default=True,
              help="LoRA dropout.")
@click.option("--no-lora", is_flag=True,
              help="Train every weight (for small encoders such as minilm-l6). Default: LoRA.")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=recipe.TEMPERATURE,
              show_default=True,
              help="InfoNCE temperature (paper: 0.02; scale 50 in sentence-transformers terms).")
@click.option("--batch-size", type=click.IntRange(min=2), default=recipe.BATCH_SIZE, show_default=True,
              help="Examples per contrastive batch, over all processes (paper: 2048).")
@click.option("--mini-batch-size", type=click.IntRange(min=1), default=recipe.MINI_BATCH_SIZE, show_default=True,
              help="Texts per forward pass (GradCache); bounds memory, not the batch.")
@click.option("--gradient-accumulation-steps", type=click.IntRange(min=1), default=1, show_default=True,
              help="Batches per optimizer step. Not a substitute for a larger --batch-size (no extra negatives).")
@click.option("--epochs", type=click.IntRange(min=1), default=1, show_default=True, help="Passes over the data.")
@click.option("--max-steps", type=click.IntRange(min=1), default=None,
              help="Stop after N optimizer steps (cycling over epochs if needed). Default: --epochs.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=recipe.LEARNING_RATE, show_default=True,
              help="Peak learning rate (paper: 1e-4 for 7B; small models want more, e.g. 1e-3 for smollm2-135m).")
@click.option("--warmup-steps", type=click.IntRange(min=0), default=recipe.WARMUP_STEPS, show_default=True,
              help="Linear warm-up steps (step s of W runs at s/W x lr), then linear decay.")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=recipe.WEIGHT_DECAY, show_default=True,
              help="AdamW weight decay.")
@click.option("--seed", type=int, default=recipe.SEED, show_default=True,
              help="Seed of LoRA init, data order and dropout.")
@click.option("--max-length", type=click.IntRange(min=4), default=recipe.MAX_LENGTH, show_default=True,
              help="Tokens per document (EOS included); longer ones are truncated.")
@click.option("--query-max-length", type=click.IntRange(min=4), default=None,
              help="Tokens per query with its instruction. Default: --max-length.")
@click.option("--mixed-precision", type=click.Choice(MIXED_PRECISIONS), default="auto", show_default=True,
              envvar="EMBTOOLS_MIXED_PRECISION",
              help="Autocast forward passes; weights stay fp32. auto: bf16 on GPUs that support it, else no "
                   "(fp32). Env: EMBTOOLS_MIXED_PRECISION.")
@click.option("--gradient-checkpointing", is_flag=True, help="Recompute activations in backward. Default: off.")
@click.option("--same-task-batches", is_flag=True,
              help="Each batch from one task (input file and task_type). Default: mixed batches.")
@click.option("--no-mask-false-negatives", is_flag=True,
              help="Keep identical positives/queries as each other's negatives. Default: mask them.")
@click.option("--negatives-per-example", type=click.IntRange(min=0), default=1, show_default=True, metavar="N",
              help="Hard negatives taken per example, the first N of a `negative` list (FlagEmbedding's train group "
                   "size - 1); examples with fewer use what they have; 0: in-batch negatives only.")
@click.option("--save-every", type=click.IntRange(min=1), default=None,
              help="Checkpoint every N steps into --checkpoint-dir. Default: no checkpoints.")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Checkpoints and train_log.jsonl while training. Default: OUTPUT.checkpoints next to OUTPUT.")
@click.option("--resume", is_flag=True, help="Continue from the latest checkpoint (same data and settings).")
@click.option("--num-processes", type=click.IntRange(min=1), default=1, envvar="EMBTOOLS_NUM_PROCESSES",
              show_default=True, help="Train with N processes under accelerate launch (GPUs, or CPU with gloo); "
                                      "negatives are gathered across processes.")
@click.option("--deepspeed", "deepspeed_name", default=None, metavar="zero2|zero3|PATH",
              type=ParsedBy(_deepspeed_name, "deepspeed"),
              help="DeepSpeed ZeRO with a bundled config or a JSON file. Default: none (plain DDP).")
@click.option("--merge", is_flag=True, help="Write merged full weights instead of the LoRA adapter.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT folder.")
@offline_option
@rope_options
@click.option("--trust-remote-code", is_flag=True, help="Allow a model folder's own Python code. Default: never.")
@click.option("--estimate-memory", is_flag=True,
              help="Print the per-GPU peak memory of these settings term by term (table on stderr, JSON record on "
                   "stdout) from the model's config.json, and exit without training.")
@click.option("--no-memory-check", is_flag=True, envvar="EMBTOOLS_NO_MEMORY_CHECK",
              help="Train even if the memory estimate exceeds the GPU's memory. Default: refuse before loading "
                   "(checked on GPUs only). Env: EMBTOOLS_NO_MEMORY_CHECK.")
@click.option("--report-to", "report_to", multiple=True, metavar="TOOL", envvar="EMBTOOLS_REPORT_TO",
              help="Log loss, lr, throughput, gradient norm and eval metrics to tensorboard, wandb, mlflow and/or "
                   "trackio (repeat or comma-separate; each needs its own library). TensorBoard writes to "
                   "CHECKPOINT_DIR/runs. Default: none. Env: EMBTOOLS_REPORT_TO.")
@click.option("--eval", "eval_data", multiple=True, metavar="DATA",
              help="Evaluate the model being trained on DATA as emb-eval does (STS file, BEIR or classification "
                   "folder, mteb:Task; repeatable) after the last step and every --eval-every steps; metrics go to "
                   "train_log.jsonl and the trackers. Default: none.")
@click.option("--eval-every", type=click.IntRange(min=1), default=None,
              help="Evaluate every N steps (needs --eval). Default: after the last step only.")
@click.option("--eval-split", default=EVALUATION_SPLIT, show_default=True,
              help="Split of --eval data (qrels/SPLIT.tsv, SPLIT.jsonl or the mteb split).")
@click.option("--eval-max-corpus", type=click.IntRange(min=1), default=None,
              help="--eval retrieval on N documents (every judged one and a seeded sample). Default: all.")
@click.option("--eval-max-queries", type=click.IntRange(min=1), default=None,
              help="--eval retrieval with a seeded sample of N queries. Default: all.")
@click.option("--eval-max-pairs", type=click.IntRange(min=2), default=None,
              help="--eval STS with a seeded sample of N pairs. Default: all.")
@click.option("--keep-best", default=None, metavar="TASK[:METRIC]",
              help="Write the weights of the evaluated step scoring highest on TASK's METRIC (emb-eval's names, e.g. "
                   "SciFact:ndcg_at_10; without METRIC the task's main score) instead of the last step's; needs "
                   "--eval. Default: the last step.")
@click.option("--card-eval", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="emb-eval metric records (JSONL) to put in the README.md model card, with each task's E5 prompt "
                   "in config_sentence_transformers.json. Default: a card without scores.")
@click.option("--push-to-hub", "push_to_hub", default=None, metavar="ORG/NAME", type=ParsedBy(parse_repo_id, "repo"),
              help="Upload the output folder to this hub repo (created if missing; HF_TOKEN, HF_ENDPOINT). "
                   "Default: no upload.")
@click.option("--private", is_flag=True, help="Create the --push-to-hub repo private. Default: public.")
@click.option("--card-only", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="Write or refresh the model card of an existing emb-train output DIR (and push it "
                                  "with --push-to-hub) without training.")
@common_options
def main(run: RecordRun, inputs, output, model, lora_rank, lora_alpha, lora_dropout, no_lora, temperature, batch_size,
         mini_batch_size, gradient_accumulation_steps, epochs, max_steps, lr, warmup_steps, weight_decay, seed,
         max_length, query_max_length, mixed_precision, gradient_checkpointing, same_task_batches,
         no_mask_false_negatives, negatives_per_example, save_every, checkpoint_dir, resume, num_processes,
         deepspeed_name, merge, overwrite, trust_remote_code, estimate_memory, no_memory_check,
         report_to, eval_data, eval_every, eval_split, eval_max_corpus, eval_max_queries, eval_max_pairs, keep_best,
         rope_theta, rope_scaling, card_eval, push_to_hub, private, card_only):
    """Fine-tune MODEL into an embedding model on example records (`instruction`, `query`, `positive`,
    `negative`: a string, a list or null) from FILEs or stdin; `FILE:0.5` samples half of a file per epoch,
    `FILE:2` repeats it.

    Writes OUTPUT (a PEFT adapter or merged weights, loadable by emb-encode and sentence-transformers) and one
    JSON summary line on stdout.
    """
    if estimate_memory:
        return _print_memory_estimate(locals())
    if private and not push_to_hub:
        raise click.UsageError("--private needs --push-to-hub")
    if card_eval:
        _read_card_eval(card_eval)  # a bad file fails now, not after training
    if card_only:
        if inputs or output:
            raise click.UsageError("--card-only DIR trains nothing: give no FILE and no --output")
        return click.echo(json.dumps({"output": str(card_only), **_publish(card_only, locals())}))
    if output is None:
        raise click.UsageError("Missing option '-o' / '--output'.")
    sources = list(inputs) or [parse_source("-")]
    monitoring = _monitoring(locals())
    if batch_size % num_processes:
        raise click.UsageError(f"--batch-size {batch_size} does not split over --num-processes {num_processes}")
    if (num_processes > 1 or deepspeed_name) and not is_launched():
        if any(s.path is None for s in sources):
            raise click.UsageError("--num-processes and --deepspeed need FILE inputs (every process reads them)")
        sys.exit(launch_command(num_processes, "embtools.commands.train", sys.argv[1:]))
    if not no_memory_check:
        _check_memory(locals())
    if gradient_accumulation_steps > 1:
        warning("gradient accumulation does not add in-batch negatives (each batch's InfoNCE sees only its own "
                "examples); raise --batch-size and bound memory with --mini-batch-size instead")
    summary = _train(_config(locals(), sources, monitoring), run.input_rejects)
    if is_main_process():  # the summary is rank 0's; the other ranks return an empty one
        best = summary.get("best")
        kept = f" (step {best['step']}: {best['task']} {best['metric']} {best['value']:.4f})" if best else ""
        run.summarize(f"{summary['steps']} steps, loss {summary['first_loss']} -> {summary['final_loss']}, "
                      f"{summary['seconds']} s; wrote {output}{kept}")
        if card_eval or push_to_hub:
            summary |= _publish(output, locals())
        click.echo(json.dumps(summary))


def _read_card_eval(path: Path) -> None:
    from embtools.train.model_card import read_metrics

    read_metrics(path)


def _publish(folder: Path, options: dict) -> dict:
    from embtools.train.model_card import publish

    return publish(folder, options["card_eval"], options["push_to_hub"], options["private"])


def _run_shape(options: dict):
    from embtools.train.memory_estimate import training_run_shape

    return training_run_shape(options, num_gpus=world_size() if is_launched() else options["num_processes"])


def _print_memory_estimate(options: dict) -> None:
    from embtools.train.memory_estimate import estimate_for_model

    estimate = estimate_for_model(options["model"], _run_shape(options))
    if is_main_process():
        click.echo(estimate.table(), err=True)
        click.echo(json.dumps({"model": options["model"], **estimate.record()}))


def _check_memory(options: dict) -> None:
    """In each training process (the launcher itself never touches CUDA), before anything loads."""
    from embtools.train.memory_estimate import check_model_fits, cuda_device_memory

    try:
        check_model_fits(options["model"], _run_shape(options), cuda_device_memory())
    except EmbtoolsError:
        if not is_main_process():
            sys.exit(1)  # every rank stops; rank 0 says why, once
        raise


def _monitoring(options: dict) -> dict:
    """--report-to and --eval, checked before anything loads: the trackers' names and libraries, the eval plan."""
    from embtools.evaluate.run import EvalOptions
    from embtools.train.best import parse_keep_best
    from embtools.train.evaluation import EvalPlan
    from embtools.train.tracking import check_installed, parse_report_to

    data = list(options["eval_data"])
    for name in ("eval_every", "eval_max_corpus", "eval_max_queries", "eval_max_pairs", "keep_best"):
        if options[name] is not None and not data:
            raise click.UsageError(f"--{name.replace('_', '-')} needs --eval")
    try:
        tools = parse_report_to(options["report_to"])
        plan = EvalPlan(data, options["eval_every"], EvalOptions(
            split=options["eval_split"], max_corpus=options["eval_max_corpus"],
            max_queries=options["eval_max_queries"], max_pairs=options["eval_max_pairs"]),
            keep_best=options["keep_best"]) if data else None
        if plan and plan.keep_best:
            parse_keep_best(plan.keep_best, plan.task_names())
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if plan and (plan.options.max_corpus or plan.options.max_queries) and any(d.startswith("mteb:") for d in data):
        raise click.UsageError("--eval-max-corpus and --eval-max-queries apply to local folders only, not mteb:")
    if plan and _zero_stage(options["deepspeed_name"]) == 3:
        raise click.UsageError("--eval runs on rank 0 alone, which ZeRO-3's partitioned weights cannot; use zero2")
    check_installed(tools)
    return {"report_to": tools, "evaluation": plan}


def _zero_stage(deepspeed_name: str | None) -> int | None:
    from embtools.train.deepspeed_configs import deepspeed_config

    return deepspeed_config(deepspeed_name, 1, "no").get("zero_optimization", {}).get("stage") if deepspeed_name \
        else None


def _config(options: dict, sources, monitoring: dict):
    from embtools.models.rope import RopeOverride
    from embtools.train.deepspeed_configs import deepspeed_config
    from embtools.train.loop import TrainConfig
    from embtools.train.lora import LoraSettings
    from embtools.train.precision import resolve_mixed_precision

    precision = resolve_mixed_precision(options["mixed_precision"])
    ds = None
    if options["deepspeed_name"]:
        ds = deepspeed_config(options["deepspeed_name"], options["batch_size"] // max(world_size(), 1), precision)
    lora = None if options["no_lora"] else LoraSettings(options["lora_rank"], options["lora_alpha"],
                                                       options["lora_dropout"])
    if options["merge"] and lora is None:
        raise click.UsageError("--merge needs LoRA (with --no-lora the full weights are written anyway)")
    return TrainConfig(
        output=options["output"], sources=sources, model=options["model"], lora=lora,
        temperature=options["temperature"], batch_size=options["batch_size"],
        mini_batch_size=options["mini_batch_size"], max_steps=options["max_steps"], epochs=options["epochs"],
        lr=options["lr"], warmup_steps=options["warmup_steps"], weight_decay=options["weight_decay"],
        seed=options["seed"], query_max_length=options["query_max_length"] or options["max_length"],
        document_max_length=options["max_length"], mixed_precision=precision,
        gradient_checkpointing=options["gradient_checkpointing"], same_task_batches=options["same_task_batches"],
        mask_false_negatives=not options["no_mask_false_negatives"],
        negatives_per_example=options["negatives_per_example"],
        gradient_accumulation_steps=options["gradient_accumulation_steps"], save_every=options["save_every"],
        checkpoint_dir=options["checkpoint_dir"], resume=options["resume"], deepspeed=ds, merge=options["merge"],
        overwrite=options["overwrite"], trust_remote_code=options["trust_remote_code"],
        rope=RopeOverride(options["rope_theta"], options["rope_scaling"]).to_json(), **monitoring)


def _train(config, sink):
    from embtools.train.loop import train

    return train(config, sink)


if __name__ == "__main__":
    main()
