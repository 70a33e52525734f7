"""What the test servers share: a ThreadingHTTPServer on 127.0.0.1 (a free port) in a daemon thread, stopped by
`.close()` or as a context manager. Each server's handler reaches its owner through `self.server.owner`."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    owner: object

    def handle_error(self, request, client_address) -> None:  # a client that timed out and left is expected
        pass


class LoopbackServer:
    """Serves `handler` on 127.0.0.1 from `start` on; `.address` is `http://127.0.0.1:PORT`."""

    def start(self, handler: type[BaseHTTPRequestHandler]) -> str:
        self._http = LoopbackHTTPServer(("127.0.0.1", 0), handler)
        self._http.owner = self
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
