"""The model readiness fast path of the ASGI app (asgi/_fast.py) answers what Starlette did.

``create_app`` answers ``/v2/models/{name}/ready``, its ``versions`` form and
``/v1/models/{name}`` ahead of Starlette's middleware and router, for throughput
(docs/performance.md). Each test compares, message for message, the app's answer with
the answer of Starlette's own path (``Starlette.__call__``: middleware stack, router,
route, endpoint) for an app over an identical monitor, in every readiness state, and
checks which requests took the fast path: those never reach the middleware stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from _monitor_support import ScriptedPlugin, UvicornThread, healthy, unhealthy, wait_until
from healthkit import HealthKit, Monitor, Target, load_config
from healthkit.asgi import create_app

ONCE = {"period": 60.0, "jitter": 0.0, "timeout": 0.5}
# Never probed in the background during a test, nor revalidated after the on-demand check.
LAZY = {**ONCE, "initial_delay": 60.0, "cache_ttl": 60.0}
WEIRD = 'mo"d\\èl e%'  # JSON escapes, non-ASCII, a space and a percent sign


class Scripts:
    """The test's upstream: one behaviour per script name, shared by both monitors."""

    def __init__(self) -> None:
        self.plugin = ScriptedPlugin()
        self.hang = False
        self.plugin.behaviours.update(up=self.up, down=self.down, later=self.later)

    async def up(self, target: Target) -> Any:
        return healthy(target)

    async def down(self, target: Target) -> Any:
        return unhealthy(target)

    async def later(self, target: Target) -> Any:
        # Healthy until told to hang: the model's result then goes stale, and the
        # background refresh a stale answer starts outlives the test.
        if self.hang:
            await asyncio.Event().wait()
        return healthy(target)

    def config(self) -> dict[str, Any]:
        def model(script: str, **extra: Any) -> dict[str, Any]:
            return {"health_check": {"strategy": "scripted", "script": script, **ONCE, **extra}}

        return {
            "models": {
                "up": model("up"),
                "down": model("down"),
                WEIRD: model("up"),
                "versioned": {**model("up"), "version": "3"},
                "stale": model("later", max_stale=0.3, timeout=30.0),
                "lazy": model("up", **LAZY),
                "lazy-down": model("down", **LAZY),
                "lazy-two": model("up", success_threshold=2, **LAZY),
            }
        }

    def monitor(self) -> Monitor:
        registry = self.plugin.registry()
        return Monitor(HealthKit(load_config(self.config(), registry=registry), registry=registry))


class Counted:
    """Wraps an app's middleware stack: the requests that went through Starlette."""

    def __init__(self, app: Starlette) -> None:
        self.paths: list[str] = []
        self._stack = app.build_middleware_stack()
        app.middleware_stack = self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self._stack(scope, receive, send)


def general(app: Starlette) -> ASGIApp:
    """The app answered by Starlette alone: what the readiness routes did before."""

    async def starlette(scope: Scope, receive: Receive, send: Send) -> None:
        await Starlette.__call__(app, scope, receive, send)

    return starlette


async def call(
    app: ASGIApp, path: str, method: str = "GET", *, scopes: list[Scope] | None = None
) -> list[Message]:
    """The messages ``app`` sends for one request (raw ASGI: headers compared exactly)."""
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode("utf-8"),
        "query_string": b"",
        "headers": [(b"host", b"health")],
        "state": {},
    }
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    await app(scope, receive, send)
    if scopes is not None:
        scopes.append(scope)
    return messages


def answer(messages: list[Message]) -> tuple[int, Any]:
    start, body = messages
    return start["status"], json.loads(body["body"])


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Scripts, Starlette, Starlette]]:
    """Two apps over identical monitors, each run by its own lifespan."""
    scripts = Scripts()
    fast, slow = create_app(scripts.monitor()), create_app(scripts.monitor())
    async with fast.router.lifespan_context(fast), slow.router.lifespan_context(slow):
        yield scripts, fast, slow


def monitors(*apps: Starlette) -> Iterator[Monitor]:
    for app in apps:
        yield app.state.monitor


READINESS: dict[str, tuple[int, Any]] = {
    "/v2/models/up/ready": (200, {"name": "up", "ready": True}),
    "/v2/models/down/ready": (503, {"name": "down", "ready": False}),
    "/v2/models/nope/ready": (404, {"error": "model nope not found"}),
    f"/v2/models/{WEIRD}/ready": (200, {"name": WEIRD, "ready": True}),
    "/v2/models/versioned/versions/3/ready": (200, {"name": "versioned", "ready": True}),
    "/v2/models/versioned/versions/7/ready": (
        404,
        {"error": "model versioned version 7 not found"},
    ),
    "/v2/models/up/versions/1/ready": (404, {"error": "model up version 1 not found"}),
    "/v2/models/nope/versions/1/ready": (404, {"error": "model nope not found"}),
    # Starlette's route pattern ends in "$", which matches before a final newline.
    "/v2/models/up/ready\n": (200, {"name": "up", "ready": True}),
    "/v1/models/up": (200, {"name": "up", "ready": True}),
    "/v1/models/down": (503, {"name": "down", "ready": False}),
    "/v1/models/nope": (404, {"error": "model nope not found"}),
    f"/v1/models/{WEIRD}": (200, {"name": WEIRD, "ready": True}),
}


async def test_readiness_answers_are_starlettes_in_every_state(
    pair: tuple[Scripts, Starlette, Starlette],
) -> None:
    scripts, fast, slow = pair
    counted = Counted(fast)
    probed = ("up", "down", WEIRD, "versioned", "stale")
    await wait_until(
        lambda: all(m.last_result(n) is not None for m in monitors(fast, slow) for n in probed)
    )

    async def same(path: str, expected: tuple[int, Any]) -> None:
        for method in ("GET", "HEAD"):
            got = await call(fast, path, method)
            assert got == await call(general(slow), path, method), (method, path)
            assert answer(got) == expected, (method, path)

    for path, expected in READINESS.items():
        await same(path, expected)

    # Not probed yet: the first request waits for one on-demand check, on both paths.
    await same("/v2/models/lazy/ready", (200, {"name": "lazy", "ready": True}))
    await same("/v1/models/lazy-down", (503, {"name": "lazy-down", "ready": False}))
    # One success of two needed: not ready yet.
    await same("/v2/models/lazy-two/ready", (503, {"name": "lazy-two", "ready": False}))

    # A result older than max_stale is not ready (its refresh hangs meanwhile).
    scripts.hang = True
    await wait_until(lambda: all(m.is_stale("stale") for m in monitors(fast, slow)))
    await same("/v2/models/stale/ready", (503, {"name": "stale", "ready": False}))

    # A bug under the handler is a 503 naming its type, logged, never a 500.
    def explode(model: str) -> bool:
        raise RuntimeError("bug in a handler")

    for monitor in monitors(fast, slow):
        monitor.is_ready = explode  # type: ignore[method-assign]
    await same("/v2/models/up/ready", (503, {"error": "health check failed: RuntimeError"}))

    # A closed monitor answers that it is shut down.
    for monitor in monitors(fast, slow):
        await monitor.aclose()
    await same("/v1/models/up", (503, {"error": "health monitor is shut down"}))

    # The scope is left as the router leaves it (for a wrapper that reads it).
    scopes: list[Scope] = []
    for app in (fast, general(slow)):
        await call(app, "/v2/models/up/versions/3/ready", scopes=scopes)
    left, right = scopes
    # Less the key only Starlette's exception middleware uses, for the endpoints it wraps.
    assert left.keys() == right.keys() - {"starlette.exception_handlers"}
    assert left["path_params"] == right["path_params"] == {"name": "up", "version": "3"}
    assert (left["app"], left["router"]) == (fast, fast.router)
    assert left["route"].path == right["route"].path
    assert left["endpoint"] is left["route"].endpoint

    assert counted.paths == []  # every one of them took the fast path


async def test_every_other_request_goes_through_starlette_unchanged(
    pair: tuple[Scripts, Starlette, Starlette],
) -> None:
    _, fast, slow = pair
    counted = Counted(fast)
    await wait_until(lambda: all(m.last_result("down") is not None for m in monitors(fast, slow)))
    requests = [
        ("POST", "/v2/models/up/ready", 405),
        ("PUT", "/v1/models/up", 405),
        ("OPTIONS", "/v2/models/up/versions/3/ready", 405),
        ("GET", "/v2/models/up/ready/", 307),  # redirected to the path without the slash
        ("GET", "/v2/models//ready", 404),
        ("GET", "/v2/models/up/readyz", 404),
        ("GET", "/v2/models/up/versions//ready", 404),
        ("GET", "/v1/models/up/ready", 404),
        ("GET", "/v1/models/", 404),
        ("GET", "/v3/models/up/ready", 404),
        ("GET", "/livez", 200),
        ("HEAD", "/v2/health/live", 200),
        ("GET", "/readyz", 503),
    ]
    for method, path, status in requests:
        got = await call(fast, path, method)
        assert got == await call(general(slow), path, method), (method, path)
        assert got[0]["status"] == status, (method, path)
    assert counted.paths == [path for _, path, _ in requests]


async def test_mounted_under_a_prefix_the_answers_are_the_same(
    pair: tuple[Scripts, Starlette, Starlette],
) -> None:
    # A host's Mount passes the full path with a root_path: the fast path matches
    # what the router would, under the prefix only.
    _, fast, slow = pair
    counted = Counted(fast)
    await wait_until(lambda: all(m.last_result("up") is not None for m in monitors(fast, slow)))
    hosts = [Starlette(routes=[Mount("/ops", app=app)]) for app in (fast, general(slow))]
    for path in ("/ops/v2/models/up/ready", "/ops/v1/models/nope", "/ops/v2/models/up/ready/"):
        got = await call(hosts[0], path)
        assert got == await call(hosts[1], path), path
    assert answer(await call(hosts[0], "/ops/v2/models/up/ready")) == (
        200,
        {"name": "up", "ready": True},
    )
    assert counted.paths == ["/ops/v2/models/up/ready/"]


async def test_user_middleware_and_routes_ahead_still_see_readiness_requests(
    pair: tuple[Scripts, Starlette, Starlette],
) -> None:
    _, app, _ = pair
    await wait_until(lambda: app.state.monitor.last_result("up") is not None)
    seen: list[str] = []

    class Spy:
        def __init__(self, inner: ASGIApp) -> None:
            self.inner = inner

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            seen.append(scope.get("path", ""))
            await self.inner(scope, receive, send)

    with_middleware = create_app(app.state.monitor, manage_monitor=False)
    with_middleware.add_middleware(Spy)
    try:
        assert answer(await call(with_middleware, "/v2/models/up/ready")) == (
            200,
            {"name": "up", "ready": True},
        )
        assert seen == ["/v2/models/up/ready"]
    finally:
        await with_middleware.state.liveness.aclose()  # started by that request

    async def mine(request: Request) -> JSONResponse:
        return JSONResponse({"mine": request.path_params["name"]})

    # A route put in front of healthkit's wins, as the router would decide.
    app.router.routes.insert(0, Route("/v2/models/{name}/ready", mine))
    assert answer(await call(app, "/v2/models/up/ready")) == (200, {"mine": "up"})
    assert answer(await call(app, "/v1/models/up")) == (200, {"name": "up", "ready": True})


async def raw_answers(url: str, requests: list[tuple[str, str]]) -> list[bytes]:
    """Each answer's status line, headers but the date, and body; one keep-alive connection."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    out = []
    try:
        for method, target in requests:
            writer.write(f"{method} {target} HTTP/1.1\r\nHost: health\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"date:")]
            length = next(
                (int(x.split(b":")[1]) for x in lines if x.lower().startswith(b"content-length:")),
                0,
            )
            body = b"" if method == "HEAD" else await reader.readexactly(length)
            out.append(b"\r\n".join(lines) + body)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return out


def test_over_a_real_uvicorn_the_bytes_on_the_wire_are_the_same() -> None:
    scripts = Scripts()
    fast, slow = create_app(scripts.monitor()), create_app(scripts.monitor())
    requests = [
        ("GET", "/v2/models/up/ready"),
        ("HEAD", "/v2/models/up/ready"),
        ("GET", "/v2/models/down/ready"),
        ("GET", "/v2/models/nope/ready"),
        ("GET", "/v2/models/mo%22d%5C%C3%A8l%20e%25/ready"),
        ("GET", "/v1/models/down"),
        ("GET", "/v2/models/versioned/versions/3/ready"),
    ]
    with UvicornThread(fast) as one, UvicornThread(general(slow)) as other:

        async def run() -> None:
            # Both monitors probe in their servers' loops; only their results are read here.
            probed = ("up", "down", WEIRD, "versioned")
            await wait_until(
                lambda: all(m.last_result(n) for m in monitors(fast, slow) for n in probed)
            )
            answers = [await raw_answers(url, requests) for url in (one.url, other.url)]
            assert answers[0] == answers[1]
            assert answers[0][0].startswith(b"HTTP/1.1 200 OK\r\n")
            assert answers[0][0].endswith(b'{"name":"up","ready":true}')
            assert answers[0][4].endswith('{"name":"mo\\"d\\\\èl e%","ready":true}'.encode())

        asyncio.run(run())
