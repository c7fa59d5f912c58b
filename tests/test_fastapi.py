"""healthkit inside a FastAPI app: routes mounted, monitor run by the app's lifespan.

The app is ``examples/openai-server/app.py`` (an OpenAI-compatible front end),
served by a real uvicorn on loopback, checking a real loopback backend that
speaks OpenAI's ``/health`` and ``/v1/models``.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from _monitor_support import UvicornThread, wait_until

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "openai-server"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("openai_server_example", EXAMPLE / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Backend:
    """An OpenAI-compatible backend on loopback: ``/health`` and ``/v1/models``."""

    def __init__(self, models: list[str]) -> None:
        self.models = list(models)
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                owner.requests += 1
                if self.path == "/health":
                    code, body = 200, b""
                elif self.path == "/v1/models":
                    data = [{"id": m, "object": "model"} for m in owner.models]
                    code, body = 200, json.dumps({"object": "list", "data": data}).encode()
                else:
                    code, body = 404, b"{}"
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> Backend:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def backend() -> Iterator[Backend]:
    with Backend(["llama-3-8b"]) as server:
        yield server


def config(url: str) -> dict[str, Any]:
    return {
        "defaults": {
            "health_check": {
                "strategy": "openai",
                "base_url": url,
                "period": 0.1,
                "jitter": 0.0,
                "timeout": 0.5,
                "failure_threshold": 1,
            }
        },
        "models": {"llama-3-8b": {}, "qwen-2-7b": {}},
    }


async def test_fastapi_app_serves_healthkit_routes_and_its_lifespan_runs_the_monitor(
    backend: Backend,
) -> None:
    app = load_example().create(config(backend.url))
    health = next(r for r in app.routes if getattr(r, "path", "") == "/health").app  # type: ignore[attr-defined]
    monitor = health.state.monitor
    with UvicornThread(app) as server:
        # The lifespan started the monitor: probes run before any request comes.
        await wait_until(lambda: monitor.is_ready("llama-3-8b"))
        assert monitor.is_live()
        async with httpx.AsyncClient(base_url=server.url) as client:
            models = (await client.get("/v1/models")).json()
            assert [m["id"] for m in models["data"]] == ["llama-3-8b"]
            assert (await client.get("/health/v2/models/llama-3-8b/ready")).status_code == 200
            assert (await client.get("/health/v2/models/qwen-2-7b/ready")).status_code == 503
            assert (await client.get("/health/readyz")).status_code == 503
            assert (await client.get("/health/livez")).json() == {"live": True}
            status = (await client.get("/health/v1/status")).json()
            assert status["models"]["llama-3-8b"]["ready"] is True
            # The backend gains the model: the listing follows, with no restart.
            backend.models.append("qwen-2-7b")
            await wait_until(lambda: monitor.is_ready("qwen-2-7b"))
            models = (await client.get("/v1/models")).json()
            assert sorted(m["id"] for m in models["data"]) == ["llama-3-8b", "qwen-2-7b"]
            assert (await client.get("/health/readyz")).status_code == 200
            # FastAPI's own routes still work alongside.
            assert (await client.get("/openapi.json")).status_code == 200
    # The app's shutdown closed the monitor (and with it every client).
    assert monitor.closed
