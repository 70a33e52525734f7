"""Running jobs: cache first, then the generator, C calls in flight, budgets, answers handed on in input order.

`run_jobs` reads jobs lazily, keeps at most `window` of them started ahead of the oldest unfinished one (memory stays
bounded on any input size), and hands each job's outcome to `handle` in input order, whatever order the answers
arrive in. Every answer is put in the cache the moment it arrives, so a run killed at any point loses nothing it paid
for. A budget (`--max-requests`, `--max-tokens`) stops new calls; jobs it leaves out are counted, not rejected, and
a later run with a larger budget picks them up (the answers already paid for come from the cache).
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from embtools.generate.chat_request import ChatResult, Generator, RequestFailed
from embtools.generate.jobs import Job
from embtools.generate.response_cache import ResponseCache


@dataclass
class Budget:
    """Limits on new (uncached) calls; None means no limit."""

    max_requests: int | None = None
    max_tokens: int | None = None
    requests: int = 0
    tokens: int = 0

    def reserve_request(self) -> bool:
        if self.max_requests is not None and self.requests >= self.max_requests:
            return False
        if self.max_tokens is not None and self.tokens >= self.max_tokens:
            return False
        self.requests += 1
        return True


@dataclass
class Outcome:
    """What became of one job: an answer, a failed request, or nothing (left out by the budget)."""

    job: Job
    result: ChatResult | None = None
    failure: RequestFailed | None = None

    @property
    def skipped(self) -> bool:
        return self.result is None and self.failure is None


@dataclass
class RunStats:
    written: int = 0
    rejected: Counter = field(default_factory=Counter)
    sent: int = 0
    cached: int = 0
    not_attempted: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def count(self, outcome: Outcome) -> None:
        if outcome.skipped:
            self.not_attempted += 1
        elif outcome.result is not None:
            self.cached += outcome.result.cached
            self.sent += not outcome.result.cached
            self.prompt_tokens += outcome.result.prompt_tokens
            self.completion_tokens += outcome.result.completion_tokens
        else:
            self.sent += 1


class JobRunner:
    """Answers one job: from the cache, else from the generator within the concurrency limit and the budget."""

    def __init__(self, generator: Generator, cache: ResponseCache | None, concurrency: int, budget: Budget):
        self.generator, self.cache, self.budget = generator, cache, budget
        self._slots = asyncio.Semaphore(concurrency)

    async def __call__(self, job: Job) -> Outcome:
        cached = self.cache.get(job.request) if self.cache is not None else None
        if cached is not None:
            return Outcome(job, cached)
        if not self.budget.reserve_request():
            return Outcome(job)
        async with self._slots:
            if self.budget.max_tokens is not None and self.budget.tokens >= self.budget.max_tokens:
                self.budget.requests -= 1
                return Outcome(job)
            try:
                result = await self.generator.complete(job.request)
            except RequestFailed as failure:
                return Outcome(job, failure=failure)
        self.budget.tokens += result.total_tokens
        if self.cache is not None:
            self.cache.put(job.request, result)
        return Outcome(job, result)


async def _run(jobs: Iterable[Job], runner: JobRunner, window: int, handle: Callable[[Outcome], None]) -> None:
    started: deque[asyncio.Task] = deque()
    try:
        for job in jobs:
            started.append(asyncio.create_task(runner(job)))
            while len(started) >= window:
                handle(await started.popleft())
        while started:
            handle(await started.popleft())
    finally:
        for task in started:
            task.cancel()
        await asyncio.gather(*started, return_exceptions=True)


def run_jobs(jobs: Iterable[Job], generator: Generator, cache: ResponseCache | None, *, concurrency: int,
             budget: Budget, handle: Callable[[Outcome], None], window: int | None = None) -> None:
    """Answer every job and call `handle(outcome)` for each, in input order. The generator is closed at the end."""
    async def main() -> None:
        runner = JobRunner(generator, cache, concurrency, budget)
        try:
            await _run(jobs, runner, window or max(4 * concurrency, 16), handle)
        finally:
            await generator.aclose()

    asyncio.run(main())
