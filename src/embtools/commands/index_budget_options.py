"""emb-index build's --max-memory options (index/budgeted_build.py): the budget, the goal, the tuning sizes."""

from __future__ import annotations

import click

from embtools.cli import ParsedBy
from embtools.index.defaults import DEFAULT_MIN_RECALL, DEFAULT_TUNE_QUERIES, DEFAULT_TUNE_SAMPLE
from embtools.index.index_choice import parse_memory


def budget_options(func):
    """--max-memory and what it takes: the goal (--min-recall or --max-query-ms) and the tuning sizes."""
    for option in reversed([
        click.option("--max-memory", type=ParsedBy(parse_memory, "size"), envvar="EMBTOOLS_MAX_MEMORY",
                     help="Choose the index for this memory budget (2G, 512M) instead of --factory: the candidates "
                          "that fit are measured against exact search and the best for the goal is built. "
                          "Env: EMBTOOLS_MAX_MEMORY. Default: no budget, --factory."),
        click.option("--min-recall", type=click.FloatRange(0, 1), default=DEFAULT_MIN_RECALL, show_default=True,
                     help="With --max-memory: the fastest index and setting whose recall@10 reaches this."),
        click.option("--max-query-ms", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="With --max-memory: instead of --min-recall, the most accurate index and setting that "
                          "searches within this many milliseconds a query. Default: none."),
        click.option("--tune-sample", type=click.IntRange(min=1), default=DEFAULT_TUNE_SAMPLE, show_default=True,
                     help="With --max-memory: input vectors (drawn at random) each candidate is built on."),
        click.option("--tune-queries", type=click.IntRange(min=1), default=DEFAULT_TUNE_QUERIES,
                     show_default=True, help="With --max-memory: held-out input vectors recall is measured on."),
    ]):
        func = option(func)
    return func


def budget_from_options(ctx: click.Context, max_memory, min_recall, max_query_ms, tune_sample, tune_queries, gpu):
    """The Budget that --max-memory asks for (None without it); usage errors for options it excludes."""
    source = ctx.get_parameter_source
    if max_memory is None:
        if max_query_ms is not None or source("min_recall") == click.core.ParameterSource.COMMANDLINE:
            raise click.UsageError("--min-recall and --max-query-ms apply with --max-memory")
        return None
    if source("factory") == click.core.ParameterSource.COMMANDLINE or gpu:
        raise click.UsageError("--max-memory chooses the index: not with --factory or --gpu")
    if max_query_ms is not None and source("min_recall") == click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("give --min-recall or --max-query-ms, not both")
    from embtools.index.budgeted_build import Budget
    from embtools.index.index_tuning import Goal

    return Budget(max_memory, Goal(min_recall, max_query_ms), tune_sample, tune_queries)
