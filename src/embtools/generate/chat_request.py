"""What a generator is asked and what it answers: the one shape the HTTP client and the local model share."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol

import orjson


@dataclass(frozen=True)
class OutputShape:
    """What the answer must be: a JSON object with `keys` (in order), or a list of strings (`keys` empty).
    The HTTP client ignores it (the prompt says it); the local generator decodes to it."""

    keys: tuple[str, ...] = ()

    @property
    def is_list(self) -> bool:
        return not self.keys


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completions call. Everything here, and nothing else, decides the answer (and the cache key)."""

    model: str
    messages: tuple[dict[str, str], ...]
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = None
    seed: int | None = None
    json_mode: bool = False
    shape: OutputShape = field(default_factory=OutputShape)

    def body(self) -> dict:
        """The JSON body of the chat-completions request."""
        body = {"model": self.model, "messages": list(self.messages), "temperature": self.temperature,
                "top_p": self.top_p}
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.seed is not None:
            body["seed"] = self.seed
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        return body

    def content_hash(self) -> str:
        """SHA-256 of (model, messages, sampling parameters, seed): the cache key. The endpoint and the key are not
        part of it, so the same request to a mirror of the same model is answered from the cache."""
        payload = {"model": self.model, "messages": list(self.messages), "temperature": self.temperature,
                   "top_p": self.top_p, "max_tokens": self.max_tokens, "seed": self.seed,
                   "json_mode": self.json_mode}
        return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True)
class ChatResult:
    """The answer: the assistant's text, why it stopped, and the token usage the server reported."""

    content: str | None
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str | None = None
    cached: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_json(self) -> dict:
        return {"content": self.content, "finish_reason": self.finish_reason, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "model": self.model}

    @classmethod
    def from_json(cls, data: dict, cached: bool = False) -> ChatResult:
        return cls(data.get("content"), data.get("finish_reason"), int(data.get("prompt_tokens") or 0),
                   int(data.get("completion_tokens") or 0), data.get("model"), cached)


class RequestFailed(Exception):
    """A request that could not be answered (retries used up, or refused by the server): the example is rejected
    with `reason`, and not cached, so a later run tries it again."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class Generator(Protocol):
    """Anything that answers chat requests: the HTTP client or the local model."""

    name: str

    async def complete(self, request: ChatRequest) -> ChatResult: ...

    async def aclose(self) -> None: ...
