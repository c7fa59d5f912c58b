"""A real OpenAI-compatible HTTP server on 127.0.0.1 (``/health``, ``/v1/models``), in a thread.

A module of its own (not conftest) so tests can import it by a name no other test directory uses.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections import Counter
from typing import Any

__all__ = ["OpenAIServer"]


class OpenAIServer:
    """Serves ``{prefix}/health`` and ``{prefix}/v1/models`` like vLLM does.

    ``models`` is what ``/v1/models`` lists; ``health_status`` is the code of
    ``/health``; ``api_key``, when set, is required as a bearer token on every
    request; ``models_body`` replaces the JSON of ``/v1/models``. Requests,
    authorization headers and client ports are recorded.
    """

    def __init__(self, models: list[str], *, prefix: str = "", api_key: str | None = None) -> None:
        self.models = list(models)
        self.prefix = prefix
        self.api_key = api_key
        self.health_status = 200
        self.models_body: bytes | None = None
        #: Seconds every answer waits before it is sent.
        self.delay = 0.0
        self.requests: Counter[str] = Counter()
        self.authorizations: list[str | None] = []
        self.client_ports: list[int] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if owner.delay:
                    time.sleep(owner.delay)
                with owner._lock:
                    owner.requests[self.path] += 1
                    owner.authorizations.append(self.headers.get("Authorization"))
                    owner.client_ports.append(self.client_address[1])
                if (
                    owner.api_key is not None
                    and self.headers.get("Authorization") != f"Bearer {owner.api_key}"
                ):
                    self._send(401, b'{"error": "invalid api key"}')
                    return
                if self.path == f"{owner.prefix}/health":
                    self._send(owner.health_status, b"")
                elif self.path == f"{owner.prefix}/v1/models":
                    body = owner.models_body
                    if body is None:
                        listing = [
                            {"id": m, "object": "model", "owned_by": "vllm"} for m in owner.models
                        ]
                        body = json.dumps({"object": "list", "data": listing}).encode()
                    self._send(200, body)
                else:
                    self._send(404, b'{"error": "not found"}')

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def start(self) -> OpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
