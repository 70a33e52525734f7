"""The chat-completions client against a real HTTP server on 127.0.0.1: retries, timeouts, json mode, the key."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from chat_server import ChatServer
from embtools.errors import EmbtoolsError
from embtools.generate.chat_client import ChatClient, backoff_delay, discover_model, server_retry_delay
from embtools.generate.chat_request import ChatRequest, OutputShape, RequestFailed

KEY = "sk-planted-7f3a9c1e"
PROMPT = 'Write it with these keys:\n- "S1": a string, one.\n- "S2": a string, two.\n'


def request(seed: int = 1, json_mode: bool = False) -> ChatRequest:
    return ChatRequest("test-model", ({"role": "user", "content": PROMPT},), seed=seed, json_mode=json_mode,
                       shape=OutputShape(("S1", "S2")))


def complete(server: ChatServer, req: ChatRequest, **options):
    async def run():
        client = ChatClient(server.url, KEY, timeout=options.pop("timeout", 0.5), initial_delay=0.01, **options)
        try:
            return await client.complete(req), client
        finally:
            await client.aclose()

    return asyncio.run(run())


@pytest.fixture
def server():
    with ChatServer(slow_seconds=1.5) as running:
        yield running


def test_retries_through_every_transient_fault(server):
    faults = ["429", "500", "drop", "slow", "503", "bad_body", "429ms"]
    server.fault = lambda body, seen: faults[seen] if seen < len(faults) else None
    result, client = complete(server, request(), max_retries=len(faults))
    assert result.content.startswith("```json") and result.finish_reason == "stop"
    assert result.prompt_tokens == 100 and result.completion_tokens == 50
    assert len(server.completions()) == len(faults) + 1 and client.retries == len(faults)
    assert all(auth == f"Bearer {KEY}" for _, _, auth in server.log)


def test_gives_up_after_max_retries_with_a_reason(server):
    server.fault = lambda body, seen: "500"
    with pytest.raises(RequestFailed) as caught:
        complete(server, request(), max_retries=2)
    assert caught.value.reason == "http_500" and len(server.completions()) == 3


def test_timeouts_are_retried_then_reported(server):
    server.fault = lambda body, seen: "slow"
    started = time.perf_counter()
    with pytest.raises(RequestFailed) as caught:
        complete(server, request(), max_retries=1, timeout=0.3)
    assert caught.value.reason == "timeout" and time.perf_counter() - started < 1.5


def test_honours_retry_after_ms(server):
    server.fault = lambda body, seen: "429ms" if seen < 3 else None
    started = time.perf_counter()
    complete(server, request(), max_retries=3)
    assert time.perf_counter() - started >= 0.06  # three waits of 20 ms, not the 10 ms backoff


def test_auth_failures_stop_the_run_without_showing_the_key(server):
    server.fault = lambda body, seen: "401"
    with pytest.raises(EmbtoolsError) as caught:
        complete(server, request())
    assert "401" in str(caught.value) and KEY not in str(caught.value) and "[redacted]" in str(caught.value)
    assert len(server.completions()) == 1  # not retried


def test_other_client_errors_reject_the_request(server):
    server.fault = lambda body, seen: "400"
    with pytest.raises(RequestFailed) as caught:
        complete(server, request())
    assert caught.value.reason == "http_400" and len(server.completions()) == 1


def test_json_mode_sends_response_format_and_falls_back_when_refused(server):
    complete(server, request(json_mode=True))
    assert server.completions()[-1]["response_format"] == {"type": "json_object"}
    server.fault = lambda body, seen: "400rf" if "response_format" in body else None
    result, client = complete(server, request(seed=2, json_mode=True))
    assert result.finish_reason == "stop" and not client.json_mode_supported
    assert "response_format" in server.completions()[-2] and "response_format" not in server.completions()[-1]


def test_retry_delay_rules():
    assert server_retry_delay(httpx.Headers({"retry-after-ms": "250"})) == 0.25
    assert server_retry_delay(httpx.Headers({"retry-after": "2"})) == 2.0
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 5))
    assert 3 < server_retry_delay(httpx.Headers({"retry-after": date})) <= 6
    for bad in ({"retry-after": "soon"}, {"retry-after": "600"}, {"retry-after-ms": "-5"}, {}):
        assert server_retry_delay(httpx.Headers(bad)) is None
    delays = [backoff_delay(attempt, 0.5, 8.0) for attempt in range(8) for _ in range(20)]
    assert min(delays) >= 0.375 and max(delays) <= 8.0
    assert backoff_delay(3, 0.5, 8.0) > backoff_delay(0, 0.5, 8.0)


def test_the_model_is_discovered_from_the_endpoint(server):
    assert discover_model(server.url, KEY) == "test-model"
    with pytest.raises(EmbtoolsError, match="pass --model"):
        discover_model("http://user:pw@127.0.0.1:9/v1", KEY, timeout=0.5)
