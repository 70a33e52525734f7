"""emb-generate: the paper's second step, one example per task (or sts / bitext triples); example records out."""

from __future__ import annotations

from itertools import islice

import click

from embtools.cli import EmbtoolsCommand, common_options, info, input_options
from embtools.commands.generation_options import generation_options
from embtools.generate.generation_run import (
    LOCAL_MAX_NEW_TOKENS,
    GeneratorSettings,
    dry_run_summary,
    model_name,
    open_cache,
    parse_shard,
    run_to_output,
)
from embtools.generate.job_runner import Budget
from embtools.generate.jobs import SamplingSettings, example_records, symmetric_jobs, task_jobs, validate_task_record
from embtools.generate.placeholders import PlaceholderSampler, parse_languages
from embtools.instructions import ONE_STEP_TYPES
from embtools.records.jsonl import RejectSink, read_records, reject_sink

EXAMPLE_COMPLETION_GUESS = 500  # a query and two documents of a few hundred words


@click.command(cls=EmbtoolsCommand, name="emb-generate")
@click.argument("input_file", metavar="[FILE]", required=False, type=click.Path(allow_dash=True, dir_okay=False))
@click.option("-t", "--task-type", type=click.Choice(ONE_STEP_TYPES), default=None,
              help="Generate sts or bitext triples (no task records needed; give -n). Default: read task records.")
@click.option("-n", "--num-examples", type=click.IntRange(min=0), default=None,
              help="With --task-type: examples to generate (required). With task records: use only the first N "
                   "tasks (of this shard). Default: all tasks.")
@click.option("--languages", default=None, envvar="EMBTOOLS_LANGUAGES",
              help="Restrict {language} to these ISO codes or names (`en,de,ja`, default weights renormalized) or "
                   "reweight them (`en:3,de:1`). Default: all 100 XLM-R languages, English 43%, the others by "
                   "CC-100 size ** 0.7.")
@click.option("--shard", default=None, metavar="I/N",
              help="Take only every N-th task (or example) starting at I (0 <= I < N), stable across runs, so "
                   "N jobs split a run and their outputs concatenate. Default: all.")
@generation_options
@input_options
@common_options
def main(input_file, task_type, num_examples, languages, shard, model, base_url, seed, temperature, top_p,
         max_new_tokens, json_mode, concurrency, timeout, max_retries, cache_dir, no_cache, max_requests,
         max_tokens, dry_run, output, skip_invalid, rejects):
    """Write one example per task record read from FILE or stdin, or -n sts / bitext triples with --task-type.

    Example records (`id`, `task_type`, `instruction`, `query`, `positive`, `negative`, `language`, `meta`) come out
    in input order; answers that are not the JSON the prompt asks for are counted by reason on stderr and written to
    --rejects. A re-run answers from the cache and only calls for what is missing.
    """
    if task_type and num_examples is None:
        raise click.UsageError("--task-type needs -n/--num-examples")
    if task_type and input_file not in (None, "-"):
        raise click.UsageError("give either task records (FILE) or --task-type, not both")
    settings = GeneratorSettings(base_url, model, concurrency, timeout, max_retries)
    if max_new_tokens is None and not base_url:
        max_new_tokens = LOCAL_MAX_NEW_TOKENS
    sampling = SamplingSettings(model_name(settings), seed, temperature, top_p, max_new_tokens, json_mode)
    sampler = PlaceholderSampler(seed, parse_languages(languages))
    shard_index, shard_count = parse_shard(shard)
    cache = open_cache(cache_dir, not no_cache)
    with reject_sink(skip_invalid, rejects) as input_sink:
        if task_type:
            jobs = symmetric_jobs(task_type, range(shard_index, num_examples, shard_count), sampler, sampling)
        else:
            tasks = read_records(input_file, validate_task_record, rejects=input_sink)
            mine = islice(tasks, shard_index, None, shard_count)
            jobs = task_jobs(mine if num_examples is None else islice(mine, num_examples), sampler, sampling)
        if dry_run:
            info(dry_run_summary("emb-generate", jobs, cache, max_new_tokens or EXAMPLE_COMPLETION_GUESS))
            return
        writer = run_to_output("emb-generate", "examples", jobs, example_records, settings, sampling.model,
                               cache=cache, output=output, sink=input_sink or RejectSink(),
                               budget=Budget(max_requests, max_tokens))
    skipped = input_sink.counts - writer.stats.rejected if input_sink else None
    if skipped:
        info(f"emb-generate: {sum(skipped.values())} input records skipped ("
             + ", ".join(f"{k}: {v}" for k, v in skipped.items()) + ")")


if __name__ == "__main__":
    main()
