"""The embedded offline generator: a small chat model (SmolLM2-135M-Instruct by default) behind the Generator API.

A 135M model rarely writes the JSON the paper's prompts ask for, so decoding follows the schema: the assistant turn is
prefilled with the JSON's opening (`{"user_query": "` or `["`), the model writes each string value, and where a value
ends (an unescaped quote, end of turn, or its token share) the next key's opening is fed to the model as forced
tokens. Keys and punctuation are ours, values are the model's, so every answer is well-formed JSON; a value can still
be empty or cut short (finish_reason "length"), which the strict parser then judges like any endpoint's answer.

Requests are batched: `complete` queues a request, and one worker runs up to `batch_size` of them together in a
thread (left-padded, one forward per step over a shared KV cache), each row sampled with its own seeded
torch.Generator at the request's temperature and top-p. float32 on CPU: emulated bf16 is slower on CPUs without it.
One torch thread by default (EMBTOOLS_GENERATOR_THREADS): one-token decoding steps are small matrix products, and
on a machine shared with other jobs, OpenMP threads that wait for each other cost more than they add
(docs/benchmarks.md, emb-generate).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections import deque
from dataclasses import dataclass, field

from embtools.errors import EmbtoolsError
from embtools.generate.chat_request import ChatRequest, ChatResult

MAX_LIST_ITEMS = 20  # the brainstorm prompt asks for "about 20"
MAX_ITEM_TOKENS = 48
MAX_FRAGMENTS = 3  # dropped list items (fragments, repeats) before a list is ended
_ENUMERATION = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+")  # "1. ", "- " before a list item


@dataclass
class _Row:
    """One sequence's decoding state."""

    request: ChatRequest
    budget: int
    values: list[str] = field(default_factory=list)
    value_ids: list[int] = field(default_factory=list)
    forced: deque = field(default_factory=deque)
    used: int = 0  # value tokens written so far
    generated: int = 0  # every token fed after the prompt
    truncated: bool = False
    done: bool = False
    fragments: int = 0  # list items dropped (fragments, repeats)

    @property
    def keys(self) -> tuple[str, ...]:
        return self.request.shape.keys

    def cap(self) -> int:
        """Tokens the current value may take: an even share of what is left (lists: a fixed item size)."""
        left = self.budget - self.used
        if self.request.shape.is_list:
            return min(MAX_ITEM_TOKENS, left)
        return left // max(1, len(self.keys) - len(self.values))


def opening(request: ChatRequest) -> str:
    """The JSON's opening the assistant turn is prefilled with."""
    return '["' if request.shape.is_list else '{"' + request.shape.keys[0] + '": "'


def first_unescaped_quote(text: str) -> int:
    """Index of the first `"` not escaped by a backslash, or -1."""
    backslashes = 0
    for index, char in enumerate(text):
        if char == '"' and backslashes % 2 == 0:
            return index
        backslashes = backslashes + 1 if char == "\\" else 0
    return -1


def decode_value(raw: str) -> str:
    """A value as the model wrote it inside JSON quotes, its escapes resolved when they are valid."""
    try:
        return json.loads(f'"{raw}"')
    except ValueError:
        return raw


def _list_goes_on(row: _Row) -> bool:
    """After a list item: a small model closes its list after a few items, so go on to about 20. Items that are
    fragments (under three words) or repeat the start of an earlier item are dropped; after a few, the list ends."""
    last = _ENUMERATION.sub("", row.values.pop())
    if len(last.split()) >= 3 and not any(item.startswith(last) for item in row.values):
        row.values.append(last)
    else:
        row.fragments += 1
        if row.fragments >= MAX_FRAGMENTS:
            return False
    return len(row.values) < MAX_LIST_ITEMS and row.budget - row.used >= 4


class LocalGenerator:
    """Answers ChatRequests with a local causal LM, batching concurrent requests."""

    def __init__(self, model: str, batch_size: int = 8, threads: int | None = None):
        self.name = model
        self.batch_size = batch_size
        self.threads = threads or int(os.environ.get("EMBTOOLS_GENERATOR_THREADS") or 1)
        self.retries = 0
        self._model = self._tokenizer = None
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    async def complete(self, request: ChatRequest) -> ChatResult:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._serve())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((request, future))
        return await future

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    async def _serve(self) -> None:
        while True:
            batch = [await self._queue.get()]
            for _ in range(3):  # let the other callers queue their requests before the batch is cut
                await asyncio.sleep(0)
            while len(batch) < self.batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                results = await asyncio.to_thread(self.generate, [request for request, _ in batch])
            except Exception as exc:  # a model failure fails every waiting request, not the worker silently
                for _, future in batch:
                    future.done() or future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results):
                future.done() or future.set_result(result)

    def load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from embtools.models.loading import SHIPPED_LAYERS, resolve_model_path

        hf_logging.disable_progress_bar()
        path = resolve_model_path(self.name)
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(path)
            self._model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                               **SHIPPED_LAYERS).eval()
        except (OSError, ValueError) as exc:
            raise EmbtoolsError(f"cannot load generator {self.name}: {str(exc).splitlines()[0]}") from None
        self._decoder = _SchemaDecoder(self._model, self._tokenizer)

    def generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        """Answer a batch of requests (blocking), on `threads` torch threads."""
        import torch

        self.load()
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return self._decoder.run(requests)
        finally:
            torch.set_num_threads(previous)


class _SchemaDecoder:
    """The decoding loop of LocalGenerator: prompts in, JSON answers out."""

    def __init__(self, model, tokenizer):
        import torch

        self.torch, self.model, self.tokenizer = torch, model, tokenizer
        self.end_ids = {i for i in (tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>"))
                        if i is not None}
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        self.has_quote = [('"' in (piece or "")) for piece in pieces]
        banned = [i for i, quote in enumerate(self.has_quote) if quote] + sorted(self.end_ids)
        self.empty_value_mask = torch.zeros(len(tokenizer), dtype=torch.bool)
        self.empty_value_mask[banned] = True
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.end_ids)

    def prompt_ids(self, request: ChatRequest) -> list[int]:
        text = self.tokenizer.apply_chat_template(list(request.messages), add_generation_prompt=True,
                                                  tokenize=False)
        return self.tokenizer(text + opening(request), add_special_tokens=False)["input_ids"]

    def run(self, requests: list[ChatRequest]) -> list[ChatResult]:
        torch = self.torch
        prompts = [self.prompt_ids(r) for r in requests]
        rows = [_Row(r, r.max_tokens or 192) for r in requests]
        generators = [torch.Generator().manual_seed(r.seed or 0) for r in requests]
        width = max(map(len, prompts))
        ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        active = list(range(len(rows)))  # rows still writing; finished rows leave the batch
        with torch.inference_mode():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                             logits_to_keep=1)
            while active:
                step = [self._next_token(rows[i], out.logits[k, -1], generators[i]) for k, i in enumerate(active)]
                keep = [k for k, i in enumerate(active) if not rows[i].done]
                if not keep:
                    break
                cache = out.cache
                if len(keep) < len(active):
                    index = torch.tensor(keep)
                    cache.batch_select_indices(index)
                    mask, positions = mask[index], positions[index]
                    step, active = [step[k] for k in keep], [active[k] for k in keep]
                mask = torch.cat([mask, torch.ones(len(active), 1, dtype=mask.dtype)], dim=1)
                positions = positions[:, -1:] + 1
                out = self.model(input_ids=torch.tensor(step)[:, None], attention_mask=mask,
                                 position_ids=positions, cache=cache, use_cache=True)
        return [self._result(row, len(p)) for row, p in zip(rows, prompts)]

    def _next_token(self, row: _Row, logits, generator) -> int:
        if row.done:
            return self.pad_id
        if not row.forced:
            token = self._sample(row, logits, generator)
            if token is None:  # the value ended at end-of-turn: feed the next key's opening instead
                self._end_value(row, "", closed=False)
                if row.done:
                    return self.pad_id
            else:
                return self._accept(row, token)
        row.generated += 1
        return row.forced.popleft()

    def _sample(self, row: _Row, logits, generator) -> int | None:
        torch = self.torch
        logits = logits.float().clone()
        if not row.value_ids:
            logits[self.empty_value_mask] = float("-inf")
        request = row.request
        if request.temperature <= 0:
            token = int(logits.argmax())
        else:
            probs = torch.softmax(logits / request.temperature, dim=-1)
            if request.top_p < 1.0:
                sorted_probs, order = probs.sort(descending=True)
                drop = sorted_probs.cumsum(-1) - sorted_probs > request.top_p
                probs[order[drop]] = 0
            token = int(torch.multinomial(probs, 1, generator=generator))
        return None if token in self.end_ids else token

    def _accept(self, row: _Row, token: int) -> int:
        """Add a sampled token to the current value; end the value at a quote or at its token share."""
        row.generated += 1
        row.used += 1
        row.value_ids.append(token)
        if self.has_quote[token]:
            text = self.tokenizer.decode(row.value_ids)
            cut = first_unescaped_quote(text)
            if cut != -1:
                self._end_value(row, text[cut + 1:], closed=True, text=text[:cut])
                return token
        if len(row.value_ids) >= row.cap() or row.used >= row.budget:
            row.truncated = True
            self._end_value(row, "", closed=False)
        return token

    def _end_value(self, row: _Row, rest: str, closed: bool, text: str | None = None) -> None:
        raw = text if text is not None else self.tokenizer.decode(row.value_ids)
        row.values.append(decode_value(raw))
        row.value_ids = []
        connector = self._connector(row, rest)
        if connector is None:
            row.done = True
            return
        connector = connector if closed else '"' + connector
        row.forced.extend(self.tokenizer(connector, add_special_tokens=False)["input_ids"])

    def _connector(self, row: _Row, rest: str) -> str | None:
        """What follows a closed value: the next key's or item's opening, or None when the answer is complete."""
        separator = "" if rest.lstrip().startswith(",") else ","
        if row.request.shape.is_list:
            return separator + ' "' if _list_goes_on(row) else None
        if len(row.values) >= len(row.keys):
            return None
        return separator + f' "{row.keys[len(row.values)]}": "'

    def _result(self, row: _Row, prompt_tokens: int) -> ChatResult:
        if row.request.shape.is_list:
            content = json.dumps(row.values, ensure_ascii=False)
        else:
            content = json.dumps(dict(zip(row.keys, row.values)), ensure_ascii=False)
        return ChatResult(content, "length" if row.truncated else "stop", prompt_tokens, row.generated,
                          row.request.model)
