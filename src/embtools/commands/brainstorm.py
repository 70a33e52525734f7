"""emb-brainstorm: the paper's first step, an LLM lists embedding tasks; task records out."""

from __future__ import annotations

import click

from embtools.cli import EmbtoolsCommand, common_options, info
from embtools.command_runner import RecordRun, record_command
from embtools.commands.generation_options import generation_options
from embtools.generate.generation_run import (
    LOCAL_MAX_NEW_TOKENS,
    GeneratorSettings,
    dry_run_summary,
    model_name,
    open_cache,
    run_to_output,
)
from embtools.generate.job_runner import Budget
from embtools.generate.jobs import SamplingSettings, brainstorm_jobs, task_records
from embtools.instructions import TWO_STEP_TYPES

BRAINSTORM_COMPLETION_GUESS = 600  # about 20 one-sentence tasks


@click.command(cls=EmbtoolsCommand, name="emb-brainstorm")
@record_command(reads=None)
@click.option("-t", "--task-type", type=click.Choice(TWO_STEP_TYPES), required=True,
              help="The group to brainstorm tasks for (sts and bitext have no brainstorm step).")
@click.option("-n", "--num-lists", type=click.IntRange(min=1), default=1, show_default=True,
              help="Brainstorm calls; each asks for a list of about 20 tasks.")
@generation_options
@common_options
def main(run: RecordRun, task_type, num_lists, model, base_url, seed, temperature, top_p, max_new_tokens, json_mode,
         concurrency, timeout, max_retries, cache_dir, no_cache, max_requests, max_tokens, dry_run, answer_rejects):
    """Ask the LLM NUM_LISTS times for a list of tasks of TASK_TYPE (the paper's brainstorm prompt, Tables 8-11).

    Writes one task record (`id`, `task_type`, `task`, `meta`) per listed task, exact duplicates dropped, in call
    order. Answers are parsed as JSON or a Python list literal (never evaluated as code).
    """
    settings = GeneratorSettings(base_url, model, concurrency, timeout, max_retries)
    if max_new_tokens is None and not base_url:
        max_new_tokens = 3 * LOCAL_MAX_NEW_TOKENS
    sampling = SamplingSettings(model_name(settings), seed, temperature, top_p, max_new_tokens, json_mode)
    cache = open_cache(cache_dir, not no_cache)
    jobs = brainstorm_jobs(task_type, num_lists, sampling)
    if dry_run:
        info(dry_run_summary(jobs, cache, max_new_tokens or BRAINSTORM_COMPLETION_GUESS))
        return
    run.summarize(run_to_output("tasks", jobs, task_records, settings, sampling.model, cache=cache, stream=run.stream,
                                flush=run.streams_to_stdout, sink=run.open_rejects(answer_rejects),
                                budget=Budget(max_requests, max_tokens), dedup_field="task", total=num_lists))


if __name__ == "__main__":
    main()
