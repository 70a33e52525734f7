"""What emb-brainstorm and emb-generate share: choosing the generator, writing outcomes, dry runs and summaries."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from embtools.errors import EmbtoolsError
from embtools.generate.answer_parsing import OutputRejected
from embtools.generate.chat_request import ChatResult, Generator
from embtools.generate.job_runner import Budget, Outcome, RunStats, run_jobs
from embtools.generate.jobs import Job
from embtools.generate.response_cache import ResponseCache, default_cache_dir
from embtools.models.builtin import DEFAULT_MODEL
from embtools.progress import Bar
from embtools.records.jsonl import Record, RejectSink, dump_record

LOCAL_MODEL = DEFAULT_MODEL  # the embedded generator, used when no --base-url / OPENAI_BASE_URL is given
LOCAL_MAX_NEW_TOKENS = 192


@dataclass(frozen=True)
class GeneratorSettings:
    """Where answers come from: an endpoint (`base_url`) or, without one, the local model."""

    base_url: str | None
    model: str | None
    concurrency: int = 8
    timeout: float = 120.0
    max_retries: int = 5


def model_name(settings: GeneratorSettings) -> str:
    """The model requests name: --model, else the local default, else the endpoint's (GET /models)."""
    if settings.model:
        return settings.model
    if not settings.base_url:
        return LOCAL_MODEL
    from embtools.generate.chat_client import discover_model

    return discover_model(settings.base_url, os.environ.get("OPENAI_API_KEY"), settings.timeout)


def open_generator(settings: GeneratorSettings, model: str) -> Generator:
    """The HTTP client for an endpoint, else the local model. The API key comes from OPENAI_API_KEY only."""
    if not settings.base_url:
        from embtools.generate.local_generator import LocalGenerator

        return LocalGenerator(model, batch_size=settings.concurrency)
    from embtools.generate.chat_client import ChatClient

    return ChatClient(settings.base_url, os.environ.get("OPENAI_API_KEY"), concurrency=settings.concurrency,
                      timeout=settings.timeout, max_retries=settings.max_retries)


def open_cache(folder: str | None, enabled: bool = True) -> ResponseCache | None:
    return ResponseCache(Path(folder) if folder else default_cache_dir()) if enabled else None


Converter = Callable[[Job, ChatResult], list[Record]]


class OutcomeWriter:
    """Turns outcomes into records on `stream` or rejects (with reason codes) on `sink`; counts everything."""

    def __init__(self, stream: IO[bytes], sink: RejectSink, convert: Converter, dedup_field: str | None = None,
                 flush: bool = False):
        self.stream, self.sink, self.convert = stream, sink, convert
        self.stats = RunStats()
        self.duplicates = 0
        self._seen: set[str] | None = set() if dedup_field else None
        self._dedup_field, self._flush = dedup_field, flush

    def __call__(self, outcome: Outcome) -> None:
        self.stats.count(outcome)
        if outcome.skipped:
            return
        if outcome.failure is not None:
            return self._reject(outcome.job, f"request_failed: {outcome.failure}", None)
        try:
            records = self.convert(outcome.job, outcome.result)
        except OutputRejected as exc:
            return self._reject(outcome.job, str(exc), outcome.result)
        for record in records:
            self._write(record)

    def _write(self, record: Record) -> None:
        if self._seen is not None:
            if record[self._dedup_field] in self._seen:
                self.duplicates += 1
                return
            self._seen.add(record[self._dedup_field])
        self.stream.write(dump_record(record))
        if self._flush:
            self.stream.flush()
        self.stats.written += 1

    def _reject(self, job: Job, reason: str, result: ChatResult | None) -> None:
        code = reason.split(":")[0]
        self.stats.rejected[code] += 1
        entry = {"id": job.source.get("id", job.key), "task_type": job.task_type, "key": job.key,
                 "placeholders": {k: v for k, v in job.placeholders.items() if k != "task"},
                 "content_hash": job.request.content_hash(),
                 "content": result.content if result is not None else None}
        self.sink.reject(entry, reason)


def summary(noun: str, writer: OutcomeWriter, retries: int, seconds: float) -> str:
    """`18 examples written, 2 rejected (parse_error: 2); 20 calls (5 cached, 3 retries); ...`"""
    stats = writer.stats
    rejected = sum(stats.rejected.values())
    parts = [f"{stats.written} {noun} written, {rejected} rejected"
             + (" (" + ", ".join(f"{k}: {v}" for k, v in sorted(stats.rejected.items())) + ")" if rejected else "")]
    if writer.duplicates:
        parts.append(f"{writer.duplicates} exact duplicates dropped")
    parts.append(f"{stats.sent + stats.cached} calls ({stats.cached} from the cache, {retries} retries)")
    parts.append(f"tokens: {stats.prompt_tokens} prompt + {stats.completion_tokens} completion")
    if stats.not_attempted:
        parts.append(f"budget reached: {stats.not_attempted} calls not made (run again with a larger budget)")
    return "; ".join(parts) + f"; {seconds:.1f} s"


def dry_run_summary(jobs: Iterable[Job], cache: ResponseCache | None,
                    completion_tokens: int) -> str:
    """How many calls a run would make and roughly how many tokens (4 characters a token for prompts)."""
    calls = cached = prompt_chars = 0
    for job in jobs:
        calls += 1
        if cache is not None and cache.get(job.request) is not None:
            cached += 1
            continue
        prompt_chars += sum(len(m["content"]) for m in job.request.messages)
    new_calls = calls - cached
    prompt = prompt_chars // 4 + 8 * new_calls  # chat framing adds a few tokens a message
    return (f"dry run: {calls} calls, {cached} already in the cache, {new_calls} to make; about {prompt} "
            f"prompt + {new_calls * completion_tokens} completion tokens ({completion_tokens} a call assumed)")


def parse_shard(value: str | None) -> tuple[int, int]:
    """`I/N` -> (I, N) with 0 <= I < N; None -> (0, 1)."""
    if not value:
        return 0, 1
    try:
        index, count = (int(part) for part in value.split("/"))
    except ValueError:
        raise EmbtoolsError(f"--shard {value!r}: expected I/N, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise EmbtoolsError(f"--shard {value!r}: need 0 <= I < N")
    return index, count


def shard_share(count: int | None, shard: tuple[int, int] | None, limit: int | None = None) -> int | None:
    """How many of `count` records (None: unknown) shard (I, N) takes, at most `limit`: a progress bar's total."""
    index, size = shard or (0, 1)
    share = None if count is None else len(range(index, count, size))
    return share if share is None or limit is None else min(share, limit)


def progress_fields(stats: RunStats, budget: Budget) -> dict[str, str | int]:
    """What a generation bar shows beside the requests done: cached and failed ones, tokens spent on new calls and
    requests made, each against its budget when one is set."""
    fields: dict[str, str | int] = {"cached": stats.cached, "failed": stats.rejected["request_failed"]}
    fields["tokens"] = budget.tokens if budget.max_tokens is None else f"{budget.tokens}/{budget.max_tokens}"
    if budget.max_requests is not None:
        fields["requests"] = f"{budget.requests}/{budget.max_requests}"
    return fields


def run_to_output(noun: str, jobs: Iterable[Job], convert: Converter, settings: GeneratorSettings, model: str, *,
                  cache: ResponseCache | None, stream: IO[bytes], flush: bool, sink: RejectSink, budget: Budget,
                  dedup_field: str | None = None, total: int | Callable[[], int | None] | None = None) -> str:
    """Answer the jobs (`total` of them, if known), write their records to `stream` (each flushed with `flush`:
    streamed to stdout) and the answers that are no records to `sink`; return the summary line."""
    started = time.perf_counter()
    generator = open_generator(settings, model)
    try:
        writer = OutcomeWriter(stream, sink, convert, dedup_field, flush=flush)
        with Bar(noun, total, unit="call") as bar:
            def handle(outcome: Outcome) -> None:
                writer(outcome)
                bar.update(1, **progress_fields(writer.stats, budget))

            run_jobs(jobs, generator, cache, concurrency=settings.concurrency, budget=budget, handle=handle)
    finally:
        if cache is not None:
            cache.close()
    return summary(noun, writer, getattr(generator, "retries", 0), time.perf_counter() - started)
