"""A small Open Inference Protocol (v2) and KServe v1 HTTP server on loopback.

It backs ``healthkit demo``, healthkit's own tests and the
``healthkit_oip_server`` fixture: a real HTTP server in a thread (so tests that
run their own event loops can use it), whose models can be flipped between
ready, not ready, flaky (ready every other request) and slow, and which counts
the requests it gets.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

__all__ = ["ModelState", "OipServer"]

ModelState = Literal["ready", "not_ready", "flaky"]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY the body waits
    # for the client's delayed ACK (~40 ms per request on Linux loopback).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return None  # quiet: the demo prints its own output

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        owner = self.server.owner
        path = urllib.parse.urlsplit(self.path).path
        owner._record(path, self.headers)
        if owner.delay:
            time.sleep(owner.delay)
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        if path == "/v2/health/live":
            self._send(200, {"live": True})
        elif path == "/v2/health/ready":
            ready = owner.server_ready
            self._send(200 if ready else 503, {"ready": ready})
        elif len(parts) in (4, 6) and parts[:2] == ["v2", "models"] and parts[-1] == "ready":
            name = parts[2]
            if len(parts) == 6 and parts[3] != "versions":
                self._send(404, {"error": "not found"})
                return
            version = parts[4] if len(parts) == 6 else None
            model_ready = owner._ready(name, version)
            if model_ready is None:
                self._send(404, {"error": f"model {name} not found"})
            else:
                self._send(200 if model_ready else 503, {"name": name, "ready": model_ready})
        elif parts == ["v1", "models"]:
            self._send(200, {"models": sorted(owner.models)})
        elif len(parts) == 3 and parts[:2] == ["v1", "models"]:
            v1_ready = owner._ready(parts[2], None)
            if v1_ready is None:
                self._send(404, {"error": f"model {parts[2]} not found"})
            else:
                self._send(200 if v1_ready else 503, {"name": parts[2], "ready": v1_ready})
        elif path == "/garbage":
            data = b"<html>not json</html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        owner = self.server.owner
        path = urllib.parse.urlsplit(self.path).path
        owner._record(path, self.headers)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if owner.delay:
            time.sleep(owner.delay)
        if path == "/v2/repository/index":
            index = []
            for name in sorted(owner.models):
                ready = owner._ready(name, None)
                index.append(
                    {
                        "name": name,
                        "version": "1",
                        "state": "READY" if ready else "UNAVAILABLE",
                        "reason": "" if ready else "not ready",
                    }
                )
            self._send(200, index)
        else:
            self._send(404, {"error": "not found"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops SYNs when a pool opens 10+ connections
    # at once; the client then retries after 1 s and times out.
    request_queue_size = 128
    owner: OipServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Cut every open keep-alive connection, as a killed server process would."""
        with self._open_lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class OipServer:
    """A threaded loopback server; use as a context manager or call start/stop."""

    def __init__(
        self,
        models: Mapping[str, ModelState] | Iterable[str] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if isinstance(models, Mapping):
            self.models: dict[str, ModelState] = dict(models)
        else:
            self.models = {name: "ready" for name in models}
        self.server_ready = True
        #: Seconds every response waits before it is sent.
        self.delay = 0.0
        self.requests: Counter[str] = Counter()
        self.seen_headers: list[dict[str, str]] = []
        self._flaky_calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._host = host
        self._port = port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- state ----------------------------------------------------------------------

    def set_state(self, name: str, state: ModelState) -> None:
        with self._lock:
            self.models[name] = state

    def remove(self, name: str) -> None:
        with self._lock:
            self.models.pop(name, None)

    def _ready(self, name: str, version: str | None) -> bool | None:
        with self._lock:
            state = self.models.get(name)
            if state is None:
                return None
            if state == "flaky":
                self._flaky_calls[name] += 1
                return self._flaky_calls[name] % 2 == 1
            return state == "ready"

    def _record(self, path: str, headers: Any) -> None:
        with self._lock:
            self.requests[path] += 1
            self.seen_headers.append({k.lower(): v for k, v in headers.items()})

    @property
    def total_requests(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    # -- lifecycle --------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> OipServer:
        httpd = _Server((self._host, self._port), _Handler)
        httpd.owner = self
        self._httpd = httpd
        # serve_forever is ready as soon as the socket listens (bound above). A short poll
        # interval keeps stop() fast: shutdown() waits for the loop's next poll (0.5 s by default).
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="oip-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.drop_connections()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OipServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
