"""The click options emb-brainstorm and emb-generate share (endpoint, sampling, cache, budgets, answer rejects),
defined once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from embtools.generate.generation_run import LOCAL_MAX_NEW_TOKENS, LOCAL_MODEL

_OPTIONS = [
    click.option("-m", "--model", envvar="EMBTOOLS_GENERATOR_MODEL", default=None,
                 help=f"The LLM. Default: {LOCAL_MODEL} (the embedded local generator) without an endpoint; with "
                      "one, the first model its /models lists. Env: EMBTOOLS_GENERATOR_MODEL."),
    click.option("--base-url", envvar="OPENAI_BASE_URL", default=None,
                 help="An OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (vLLM). The key comes from "
                      "OPENAI_API_KEY. Default: none, generate locally. Env: OPENAI_BASE_URL."),
    click.option("--seed", type=int, default=0, envvar="EMBTOOLS_SEED", show_default=True,
                 help="Seeds the placeholders and each request's `seed`: the same seed, the same run."),
    click.option("--temperature", type=click.FloatRange(min=0), default=1.0, show_default=True,
                 help="Sampling temperature (the paper's 1.0)."),
    click.option("--top-p", type=click.FloatRange(min=0, max=1, min_open=True), default=1.0, show_default=True,
                 help="Nucleus sampling (the paper's 1.0)."),
    click.option("--max-new-tokens", type=click.IntRange(min=1), default=None,
                 help=f"Tokens a call may write (sent as max_tokens). Default: {LOCAL_MAX_NEW_TOKENS} locally "
                      "(x3 for brainstorm lists), the server's own limit for an endpoint."),
    click.option("--json-mode", is_flag=True,
                 help="Send response_format json_object (dropped if the server refuses it). Default: off."),
    click.option("-c", "--concurrency", type=click.IntRange(min=1), default=8, envvar="EMBTOOLS_CONCURRENCY",
                 show_default=True, help="Requests in flight at once (an endpoint); sequences per batch (local)."),
    click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=120.0, show_default=True,
                 help="Seconds one request may take before it is retried."),
    click.option("--max-retries", type=click.IntRange(min=0), default=5, show_default=True,
                 help="Retries of a request after 408/409/429/5xx, timeouts or dropped connections."),
    click.option("--cache", "cache_dir", type=click.Path(file_okay=False), envvar="EMBTOOLS_GENERATE_CACHE",
                 default=None, help="Folder of the response cache (SQLite). Default: EMBTOOLS_HOME/generate-cache. "
                                    "Env: EMBTOOLS_GENERATE_CACHE."),
    click.option("--no-cache", is_flag=True, help="Neither read nor write the response cache. Default: use it."),
    click.option("--max-requests", type=click.IntRange(min=0), default=None,
                 help="Stop making new calls after this many (cached answers are free). Default: no limit."),
    click.option("--max-tokens", type=click.IntRange(min=0), default=None,
                 help="Stop making new calls once this many tokens (prompt + completion) are used. Default: no "
                      "limit."),
    click.option("--dry-run", is_flag=True,
                 help="Print how many calls and about how many tokens the run would make; call nothing."),
    click.option("--rejects", "answer_rejects", type=click.Path(dir_okay=False), default=None,
                 help="Write each answer that makes no record (unparsable, off-format, failed request), with its "
                      "reason, to FILE (JSONL). Default: only counted on stderr."),
]


def generation_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_OPTIONS):
        func = option(func)
    return func
