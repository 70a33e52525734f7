"""A real chat-completions server on 127.0.0.1 for tests and the bench, with faults on demand.

`ChatServer()` starts a ThreadingHTTPServer in a daemon thread (HTTP/1.1, keep-alive). POST /v1/chat/completions
answers like OpenAI: for a generate prompt a JSON object with the keys the prompt asks for, for a brainstorm prompt a
Python list of tasks; the text depends only on the request (prompt and seed), so re-asking gives the same answer.
GET /v1/models lists "test-model". `server.responder = fn(body) -> str` replaces the answers. Every request is logged
(path, body, Authorization header).

Faults: `server.fault = fn(body, seen) -> name | None`, where `seen` counts earlier requests with the same body: `429`
(Retry-After: 0), `429ms` (retry-after-ms: 20), `500`, `503`, `400`, `400rf` (refuses response_format), `401` (its
message echoes the Authorization header, as careless servers do), `slow` (sleeps `slow_seconds` before answering),
`drop` (closes the connection without a response), `malformed` (200 with prose, no JSON), `bad_body` (a 200 that is
not JSON), `truncated` (half a JSON object, finish_reason length), `wrong_type` (a value that is a number).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler

from loopback_server import LoopbackHTTPServer, LoopbackServer

_KEY_LINE = re.compile(r'^- "([^"]+)": a string', re.MULTILINE)


def canned_content(body: dict) -> str:
    """A deterministic answer for a request body."""
    prompt = body["messages"][-1]["content"]
    tag = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]
    if prompt.startswith("Brainstorm"):
        return str([f"Task {i} from {tag}: retrieve documents about topic {i}." for i in range(5)])
    keys = _KEY_LINE.findall(prompt) or ["S1", "S2", "S3"]
    return "```json\n" + json.dumps({key: f"{key} text {tag}" for key in keys}) + "\n```"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: Nagle + delayed ACK would add ~40 ms
    server: "LoopbackHTTPServer"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, status: int, payload, headers: dict | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.server.owner.record(self.path, None, self.headers.get("Authorization"))
        self._send(200, {"object": "list", "data": [{"id": "test-model", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        owner = self.server.owner
        seen = owner.record(self.path, body, self.headers.get("Authorization"))
        fault = owner.fault(body, seen) if owner.fault else None
        if owner.delay:
            time.sleep(owner.delay)
        if fault == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "slow":
            time.sleep(owner.slow_seconds)
        self._answer(body, fault)

    def _answer(self, body: dict, fault: str | None) -> None:
        errors = {"429": (429, {"Retry-After": "0"}), "429ms": (429, {"retry-after-ms": "20"}),
                  "500": (500, {"retry-after-ms": "10"}), "503": (503, {}), "400": (400, {}), "400rf": (400, {})}
        if fault in errors:
            status, headers = errors[fault]
            message = "response_format is not supported" if fault == "400rf" else f"injected {fault}"
            return self._send(status, {"error": {"message": message}}, headers)
        if fault == "401":
            auth = self.headers.get("Authorization")
            return self._send(401, {"error": {"message": f"Incorrect API key provided: {auth}"}})
        if fault == "bad_body":
            return self._send(200, b"<html>gateway hiccup</html>")
        content, finish = (self.server.owner.responder or canned_content)(body), "stop"
        if fault == "malformed":
            content = "Sure! Here is an example you might like: user_query is about cats."
        elif fault == "truncated":
            content, finish = content[: len(content) // 2], "length"
        elif fault == "wrong_type":
            content = json.dumps({key: 7 for key in _KEY_LINE.findall(body["messages"][-1]["content"])})
        self._send(200, {"id": "chatcmpl-test", "object": "chat.completion", "model": body.get("model"),
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                      "finish_reason": finish}],
                         "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}})




class ChatServer(LoopbackServer):
    """Start with `ChatServer()`, use `.url` (ends in /v1), stop with `.close()` (or as a context manager)."""

    def __init__(self, delay: float = 0.0, slow_seconds: float = 2.0):
        self.delay, self.slow_seconds = delay, slow_seconds
        self.fault = None
        self.responder = None  # fn(body) -> content, instead of canned_content
        self.log: list[tuple[str, dict | None, str | None]] = []
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self.url = self.start(_Handler) + "/v1"

    def record(self, path: str, body: dict | None, authorization: str | None) -> int:
        """Log a request; return how many identical bodies came before it."""
        key = json.dumps(body, sort_keys=True)
        with self._lock:
            self.log.append((path, body, authorization))
            seen = self._seen.get(key, 0)
            self._seen[key] = seen + 1
        return seen

    def completions(self) -> list[dict]:
        with self._lock:
            return [body for path, body, _ in self.log if body is not None]



if __name__ == "__main__":  # a server in its own process (the bench): prints its URL, serves until killed
    import sys

    running = ChatServer(delay=float(sys.argv[1]) if len(sys.argv) > 1 else 0.0)
    print(running.url, flush=True)
    threading.Event().wait()
