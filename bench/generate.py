"""emb-generate's request throughput against a local server that answers after a fixed latency, vs the ideal.

    .venv/bin/python bench/generate.py [--requests 400] [--concurrency 16] [--latency 0.2]

The server (tests/chat_server.py, a real HTTP server on 127.0.0.1, in its own process) answers every chat completion
after --latency
seconds. With C requests in flight the best possible rate is C / latency (16 / 0.2 s = 80 requests/s). We run the
library path emb-generate uses (jobs -> JobRunner with the response cache off -> ChatClient -> records written in
input order) for --requests sts examples and report requests/s and the ratio to that ideal (target >= 0.9). A second,
baseline row sends the same number of bare httpx requests with the same concurrency and no embtools code, so the
ratio can be read against what httpx alone achieves on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from embtools.generate.chat_client import ChatClient
from embtools.generate.generation_run import OutcomeWriter
from embtools.generate.job_runner import Budget, run_jobs
from embtools.generate.jobs import SamplingSettings, example_records, symmetric_jobs
from embtools.generate.placeholders import PlaceholderSampler, default_language_weights
from embtools.records.jsonl import RejectSink

SERVER = Path(__file__).resolve().parents[1] / "tests" / "chat_server.py"


@contextmanager
def chat_server(latency: float):
    """tests/chat_server.py in its own process (so it does not share our GIL); yields its URL."""
    process = subprocess.Popen([sys.executable, str(SERVER), str(latency)], stdout=subprocess.PIPE, text=True)
    try:
        yield process.stdout.readline().strip()
    finally:
        process.kill()
        process.wait()


def embtools_run(url: str, count: int, concurrency: int) -> tuple[float, int]:
    sampler = PlaceholderSampler(0, default_language_weights())
    jobs = symmetric_jobs("sts", range(count), sampler, SamplingSettings("test-model"))
    writer = OutcomeWriter(io.BytesIO(), RejectSink(), example_records)
    client = ChatClient(url, "sk-bench", concurrency=concurrency, timeout=30)
    started = time.perf_counter()
    run_jobs(jobs, client, None, concurrency=concurrency, budget=Budget(), handle=writer)
    return time.perf_counter() - started, writer.stats.written


def httpx_run(url: str, count: int, concurrency: int) -> float:
    body = {"model": "test-model", "messages": [{"role": "user", "content": "Write a sentence triple"}]}

    async def main() -> None:
        slots = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            async def one(i: int) -> None:
                async with slots:
                    (await client.post(url + "/chat/completions", json={**body, "seed": i})).raise_for_status()

            await asyncio.gather(*(one(i) for i in range(count)))

    started = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    ideal = args.concurrency / args.latency
    with chat_server(args.latency) as url:
        httpx_run(url, args.concurrency, args.concurrency)  # warm-up: connections, imports
        seconds, written = embtools_run(url, args.requests, args.concurrency)
        assert written == args.requests, written
        baseline = httpx_run(url, args.requests, args.concurrency)
    print(f"{args.requests} requests, concurrency {args.concurrency}, server latency {args.latency} s, "
          f"ideal {ideal:.0f} requests/s")
    print("| path | seconds | requests/s | ratio to ideal |\n|---|---|---|---|")
    for name, elapsed in (("emb-generate library path (jobs, client, ordered writer)", seconds),
                          ("bare httpx.AsyncClient, same concurrency", baseline)):
        rate = args.requests / elapsed
        print(f"| {name} | {elapsed:.2f} | {rate:.1f} | {rate / ideal:.3f} |")


if __name__ == "__main__":
    main()
