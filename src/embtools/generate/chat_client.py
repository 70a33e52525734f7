"""An async client for any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp, TGI, ...).

Retries follow openai-python: 408, 409, 429 and 5xx, timeouts and connection errors are retried up to `max_retries`
times, waiting what the server asks (`retry-after-ms`, else `retry-after` in seconds or as an HTTP date, when within
60 s), otherwise an exponential backoff (0.5 s doubling, capped at 8 s) with 25% jitter. 401/403/404 stop the run (a
wrong key, model or URL fails every request alike); other 4xx reject the one request. With `json_mode` the request
carries `response_format: {"type": "json_object"}`; a server that refuses that field gets requests without it.

The API key travels only in the Authorization header: it is never logged, and any text that could reach a message
(server error bodies, exception texts) passes through `redact` first.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from urllib.parse import urlsplit, urlunsplit

import httpx

from embtools.errors import EmbtoolsError
from embtools.generate.chat_request import ChatRequest, ChatResult, RequestFailed

log = logging.getLogger("embtools")

RETRY_STATUSES = frozenset({408, 409, 429})
FATAL_STATUSES = frozenset({401, 403, 404})
MAX_SERVER_DELAY = 60.0


def server_retry_delay(headers: httpx.Headers) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, `retry-after`), when sensible (0-60 s)."""
    delay = None
    try:
        if "retry-after-ms" in headers:
            delay = float(headers["retry-after-ms"]) / 1000
        elif "retry-after" in headers:
            delay = _retry_after_seconds(headers["retry-after"])
    except (TypeError, ValueError):
        delay = None
    return delay if delay is not None and 0 <= delay <= MAX_SERVER_DELAY else None


def _retry_after_seconds(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return when.timestamp() - time.time() if when else None


def backoff_delay(attempt: int, initial: float, cap: float) -> float:
    """Exponential backoff with jitter: initial * 2**attempt, capped, times a factor in (0.75, 1]."""
    return min(initial * 2 ** attempt, cap) * (1 - 0.25 * random.random())


def public_url(url: str) -> str:
    """The URL without any user:password part, fit for messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


class ChatClient:
    """Sends ChatRequests to `base_url`/chat/completions with retries; `complete` returns a ChatResult or raises
    RequestFailed (this example is lost for this run) or EmbtoolsError (the whole run must stop)."""

    def __init__(self, base_url: str, api_key: str | None = None, *, concurrency: int = 8, timeout: float = 120.0,
                 max_retries: int = 5, initial_delay: float = 0.5, max_delay: float = 8.0):
        self.name = public_url(base_url)
        self._api_key = api_key or ""
        self._url = base_url.rstrip("/") + "/chat/completions"
        self.max_retries, self.initial_delay, self.max_delay = max_retries, initial_delay, max_delay
        self.json_mode_supported = True
        self.retries = 0
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(timeout),
                                       limits=httpx.Limits(max_connections=concurrency,
                                                           max_keepalive_connections=concurrency))

    def redact(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]") if self._api_key else text

    async def aclose(self) -> None:
        await self._http.aclose()

    async def complete(self, request: ChatRequest) -> ChatResult:
        for attempt in range(self.max_retries + 1):
            outcome = await self._attempt(request)
            if isinstance(outcome, ChatResult):
                return outcome
            reason, detail, delay = outcome
            if attempt == self.max_retries:
                raise RequestFailed(reason, f"{detail} (after {attempt + 1} attempts)")
            self.retries += 1
            wait = delay if delay is not None else backoff_delay(attempt, self.initial_delay, self.max_delay)
            log.debug(f"retrying in {wait:.2f} s: {reason}: {detail}")
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _attempt(self, request: ChatRequest) -> ChatResult | tuple[str, str, float | None]:
        """One try: a result, or (reason, detail, server-requested delay) for a retryable failure."""
        body = request.body()
        if not self.json_mode_supported:
            body.pop("response_format", None)
        try:
            response = await self._http.post(self._url, json=body)
        except httpx.TimeoutException as exc:
            return "timeout", self.redact(type(exc).__name__), None
        except httpx.TransportError as exc:
            return "connection_error", self.redact(f"{type(exc).__name__}: {exc}")[:300], None
        if response.status_code == 200:
            return self._result(response)
        return self._failure(response, body)

    def _failure(self, response: httpx.Response, body: dict) -> tuple[str, str, float | None]:
        status, detail = response.status_code, self._error_text(response)
        if status in RETRY_STATUSES or status >= 500:
            return f"http_{status}", detail, server_retry_delay(response.headers)
        if status in FATAL_STATUSES:
            raise EmbtoolsError(f"{self.name} answered {status}: {detail}")
        if "response_format" in body and "response_format" in detail:
            self.json_mode_supported = False
            log.info(f"{self.name} refuses response_format; sending requests without --json-mode")
            return "json_mode_refused", detail, 0.0
        raise RequestFailed(f"http_{status}", detail)

    def _error_text(self, response: httpx.Response) -> str:
        try:
            error = response.json().get("error")
            text = error.get("message") if isinstance(error, dict) else str(error)
        except (ValueError, AttributeError):
            text = response.text
        return self.redact(" ".join(str(text).split()))[:300]

    def _result(self, response: httpx.Response) -> ChatResult | tuple[str, str, float | None]:
        try:
            data = response.json()
            choice = data["choices"][0]
            usage = data.get("usage") or {}
            return ChatResult(choice["message"].get("content"), choice.get("finish_reason"),
                              int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
                              data.get("model"))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            # A 200 whose body is not a chat completion: a broken proxy or a cut-off body; worth another try.
            return "bad_response", self.redact(f"{type(exc).__name__}: {exc}")[:300], None


def discover_model(base_url: str, api_key: str | None, timeout: float = 30.0) -> str:
    """The model an endpoint serves, from GET /models (vLLM, llama.cpp and TGI serve one): the first listed."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    url = base_url.rstrip("/") + "/models"
    try:
        response = httpx.get(url, headers=headers, timeout=timeout)
        response.raise_for_status()
        return str(response.json()["data"][0]["id"])
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
        raise EmbtoolsError(f"--model not given and {public_url(url)} names no model; pass --model") from None
