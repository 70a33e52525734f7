"""emb-generate: the paper's second step, one example per task (or sts / bitext triples); example records out."""

from __future__ import annotations

from itertools import islice

import click

from embtools.cli import EmbtoolsCommand, ParsedBy, common_options, info
from embtools.command_runner import RecordRun, record_command
from embtools.commands.generation_options import generation_options
from embtools.generate.generation_run import (
    LOCAL_MAX_NEW_TOKENS,
    GeneratorSettings,
    dry_run_summary,
    model_name,
    open_cache,
    parse_shard,
    run_to_output,
    shard_share,
)
from embtools.generate.job_runner import Budget
from embtools.generate.jobs import SamplingSettings, example_records, symmetric_jobs, task_jobs, validate_task_record
from embtools.generate.placeholders import PlaceholderSampler, parse_languages
from embtools.instructions import ONE_STEP_TYPES
from embtools.records.jsonl import count_lines

EXAMPLE_COMPLETION_GUESS = 500  # a query and two documents of a few hundred words


@click.command(cls=EmbtoolsCommand, name="emb-generate")
@record_command(reads="file", rejects_flag="--input-rejects")
@click.option("-t", "--task-type", type=click.Choice(ONE_STEP_TYPES), default=None,
              help="Generate sts or bitext triples (no task records needed; give -n). Default: read task records.")
@click.option("-n", "--num-examples", type=click.IntRange(min=0), default=None,
              help="With --task-type: examples to generate (required). With task records: use only the first N "
                   "tasks (of this shard). Default: all tasks.")
@click.option("--languages", default=None, envvar="EMBTOOLS_LANGUAGES", metavar="LANG[:WEIGHT],...",
              type=ParsedBy(parse_languages, "languages"),
              help="Restrict {language} to these ISO codes or names (`en,de,ja`, default weights renormalized) or "
                   "reweight them (`en:3,de:1`). Default: all 100 XLM-R languages, English 43%, the others by "
                   "CC-100 size ** 0.7.")
@click.option("--shard", default=None, metavar="I/N", type=ParsedBy(parse_shard, "shard"),
              help="Take only every N-th task (or example) starting at I (0 <= I < N), stable across runs, so "
                   "N jobs split a run and their outputs concatenate. Default: all.")
@generation_options
@common_options
def main(run: RecordRun, task_type, num_examples, languages, shard, model, base_url, seed, temperature, top_p,
         max_new_tokens, json_mode, concurrency, timeout, max_retries, cache_dir, no_cache, max_requests,
         max_tokens, dry_run, answer_rejects):
    """Write one example per task record read from FILE or stdin, or -n sts / bitext triples with --task-type.

    Example records (`id`, `task_type`, `instruction`, `query`, `positive`, `negative`, `language`, `meta`) come out
    in input order; answers that are not the JSON the prompt asks for are counted by reason on stderr and written to
    --rejects. A bad task record stops the run; with --skip-invalid it is counted and skipped, and written to
    --input-rejects. A re-run answers from the cache and only calls for what is missing.
    """
    if task_type and num_examples is None:
        raise click.UsageError("--task-type needs -n/--num-examples")
    if task_type and run.source not in (None, "-"):
        raise click.UsageError("give either task records (FILE) or --task-type, not both")
    settings = GeneratorSettings(base_url, model, concurrency, timeout, max_retries)
    if max_new_tokens is None and not base_url:
        max_new_tokens = LOCAL_MAX_NEW_TOKENS
    sampling = SamplingSettings(model_name(settings), seed, temperature, top_p, max_new_tokens, json_mode)
    sampler = PlaceholderSampler(seed, languages or parse_languages(None))
    shard_index, shard_count = shard or parse_shard(None)
    cache = open_cache(cache_dir, not no_cache)
    if task_type:
        jobs = symmetric_jobs(task_type, range(shard_index, num_examples, shard_count), sampler, sampling)
    else:
        mine = islice(run.read(validate_task_record), shard_index, None, shard_count)
        jobs = task_jobs(mine if num_examples is None else islice(mine, num_examples), sampler, sampling)
    if dry_run:
        info(dry_run_summary(jobs, cache, max_new_tokens or EXAMPLE_COMPLETION_GUESS))
        return
    total = shard_share(num_examples, shard) if task_type else \
        (lambda: shard_share(count_lines(run.source), shard, num_examples))  # counted only if a bar is drawn
    run.summarize(run_to_output("examples", jobs, example_records, settings, sampling.model, cache=cache,
                                stream=run.stream, flush=run.streams_to_stdout, sink=run.open_rejects(answer_rejects),
                                budget=Budget(max_requests, max_tokens), total=total))

if __name__ == "__main__":
    main()
