"""The status page's server side: HTML without JavaScript, its JSON, details, secrets, SSE.

The page in a real browser: tests/test_status_page_browser.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from _monitor_support import http_config, wait_until
from healthkit import CheckResult, HealthKit, Status, Target
from healthkit._monitor import Monitor, Transition
from healthkit.asgi import create_app, create_router
from healthkit.asgi._status_page import StatusPage, _Client
from healthkit.testing import OipServer

ONCE = {"period": 60.0, "jitter": 0.0, "timeout": 0.5}


@pytest.fixture
def predictor() -> Iterator[OipServer]:
    with OipServer({"alpha": "ready", "beta": "not_ready", "gamma<x>": "ready"}) as server:
        yield server


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://health")


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """``app`` under a real uvicorn server in this event loop, on a free loopback port."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", ws="none")
    )
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        await wait_until(lambda: server.started or task.done(), timeout=10)
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def checked(app: Any, *names: str) -> Monitor:
    monitor: Monitor = app.state.monitor
    for name in names:
        await monitor.acheck(name)
    return monitor


async def test_html_lists_models_without_javascript_filter_and_search_by_query(
    predictor: OipServer,
) -> None:
    app = create_app(
        HealthKit.from_config(http_config(predictor.url, list(predictor.models), **ONCE))
    )
    async with app.router.lifespan_context(app), client_for(app) as client:
        await checked(app, *predictor.models)
        head = await asyncio.wait_for(client.head("/status/events"), 5)  # never an endless body
        assert head.status_code == 200
        assert head.headers["content-type"].startswith("text/event-stream")
        page = await client.get("/status")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        text = page.text
        for name in ("alpha", "beta"):
            assert f'data-name="{name}"' in text
        # Names are escaped, never markup; the status is a word, not only a colour.
        assert "gamma&lt;x&gt;" in text and "gamma<x>" not in text
        assert "unhealthy</span>" in text and "Server not ready" in text
        # Hidden details are said to be hidden.
        assert "Details (reasons, endpoints) are hidden" in text
        assert "not ready (HTTP 503)" not in text
        # No external resource: every src/href is local.
        assert "http://" not in text.replace(predictor.url, "")
        only_bad = (await client.get("/status", params={"status": "unhealthy"})).text
        assert 'data-name="beta"' in only_bad and 'data-name="alpha"' not in only_bad
        searched = (await client.get("/status", params={"q": "ALP"})).text
        assert 'data-name="alpha"' in searched and 'data-name="beta"' not in searched
        script = await client.get("/status/static/status.js")
        assert script.status_code == 200 and "EventSource" in script.text
        assert (await client.get("/status/static/../_app.py")).status_code == 404


async def test_json_and_model_view_follow_the_details_rule(predictor: OipServer) -> None:
    config = http_config(predictor.url, ["alpha", "beta"], **ONCE)
    for details in ("never", "always"):
        app = create_app(HealthKit.from_config(config), show_details=details)
        async with app.router.lifespan_context(app), client_for(app) as client:
            await checked(app, "alpha", "beta")
            body = (await client.get("/status/api/models")).json()
            assert body["summary"] == {
                "ready": False,
                "models": 2,
                "counts": {"unhealthy": 1, "unknown": 0, "degraded": 0, "healthy": 1},
            }
            assert body["details"] is (details == "always")
            assert body["history"] is False
            beta = {m["name"]: m for m in body["models"]}["beta"]
            assert beta["status"] == "unhealthy" and beta["ready"] is False
            assert beta["strategy"] == "http" and beta["since"] is not None
            one = (await client.get("/status/api/models/beta")).json()
            assert [(t["old"], t["new"]) for t in one["transitions"]] == [("unknown", "unhealthy")]
            view = (await client.get("/status/models/beta")).text
            if details == "always":
                assert beta["detail"] == "not ready (HTTP 503)"
                assert beta["endpoint"] == predictor.url
                assert one["transitions"][0]["detail"] == "not ready (HTTP 503)"
                assert "not ready (HTTP 503)" in view
            else:
                assert "detail" not in beta and "endpoint" not in beta
                assert "detail" not in one["transitions"][0]
                assert "not ready (HTTP 503)" not in view and predictor.url not in view
            assert (await client.get("/status/api/models/nope")).status_code == 404
            assert (await client.get("/status/models/nope")).status_code == 404


async def test_secrets_never_reach_the_page(predictor: OipServer) -> None:
    secret = "s3cr3t-t0ken"
    url = predictor.url.replace("http://", f"http://user:{secret}@")
    config = http_config(url, ["alpha", "beta"], headers={"X-Token": secret}, **ONCE)
    app = create_app(HealthKit.from_config(config), show_details="always")
    async with app.router.lifespan_context(app), client_for(app) as client:
        await checked(app, "alpha", "beta")
        for path in ("/status", "/status/api/models", "/status/models/beta"):
            text = (await client.get(path)).text
            assert secret not in text, path


async def test_status_page_off_leaves_no_route(predictor: OipServer) -> None:
    app = create_app(
        HealthKit.from_config(http_config(predictor.url, ["alpha"], **ONCE)), status_page=False
    )
    async with app.router.lifespan_context(app), client_for(app) as client:
        for path in ("/status", "/status/api/models", "/status/events"):
            assert (await client.get(path)).status_code == 404
            assert (await client.head(path)).status_code == 404
        assert (await client.get("/readyz")).status_code in (200, 503)


async def test_router_mounted_under_a_prefix_links_its_own_assets(predictor: OipServer) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    monitor = Monitor(HealthKit.from_config(http_config(predictor.url, ["alpha"], **ONCE)))
    try:
        host = Starlette(routes=[Mount("/health", routes=create_router(monitor).routes)])
        async with client_for(host) as client:
            text = (await client.get("/health/status")).text
            assert 'src="/health/status/static/status.js"' in text
            assert (await client.get("/health/status/static/status.css")).status_code == 200
    finally:
        await monitor.aclose()


def _transition(model: str) -> Transition:
    result = CheckResult(status=Status.UNHEALTHY, strategy="http", target=Target(model=model))
    return Transition(
        model=model,
        old=Status.HEALTHY,
        new=Status.UNHEALTHY,
        result=result,
        at=dt.datetime.now(dt.timezone.utc),
    )


async def test_a_slow_event_client_is_dropped_and_the_others_get_every_event(
    predictor: OipServer,
) -> None:
    monitor = Monitor(HealthKit.from_config(http_config(predictor.url, ["alpha"], **ONCE)))
    try:
        page = StatusPage(monitor, details=False, redactor=lambda: None, started=monitor.start)  # type: ignore[arg-type,return-value]
        slow, fast = _Client(3), _Client(100)
        page.clients.update((slow, fast))
        for _ in range(10):  # a storm inside one loop pass: no writer runs in between
            page._on_transition(_transition("alpha"))
        assert slow.dropped and slow.closed and not slow.queue
        assert page.clients == {fast} and page.dropped == 1
        assert len(fast.queue) == 10 and all("event: transition" in e for e in fast.queue)
    finally:
        await monitor.aclose()


async def _events(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    kind = None
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield kind or "message", json.loads(line.removeprefix("data: "))


async def test_events_stream_transitions_and_drop_a_client_that_falls_behind(
    predictor: OipServer,
) -> None:
    config = http_config(predictor.url, ["alpha", "beta"], period=0.1, jitter=0.0, timeout=0.5)
    app = create_app(HealthKit.from_config(config))
    async with served(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        monitor: Monitor = app.state.monitor
        await wait_until(lambda: monitor.status("alpha") is Status.HEALTHY)
        async with client.stream("GET", "/status/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = _events(response)
            kind, data = await asyncio.wait_for(events.__anext__(), 5)
            assert kind == "summary" and data["models"] == 2
            predictor.set_state("alpha", "not_ready")

            async def alpha_transition() -> Any:
                async for kind, data in events:
                    if kind == "transition" and data["model"]["name"] == "alpha":
                        return data
                raise AssertionError("the stream ended")

            data = await asyncio.wait_for(alpha_transition(), 5)
            assert data["new"] == "unhealthy" and data["model"]["status"] == "unhealthy"
            assert "detail" not in data["model"]
            # Now make this client too slow: more events in one loop pass than its queue holds.
            page: StatusPage = app.state.status_page
            (only,) = page.clients
            for _ in range(only.size + 1):
                page._on_transition(_transition("beta"))

            async def rest() -> list[str]:
                return [kind async for kind, _ in events]

            kinds = await asyncio.wait_for(rest(), 5)
            assert kinds[-1] == "dropped"
        assert page.dropped == 1
        await wait_until(lambda: not page.clients)


async def test_with_a_history_store_the_page_shows_uptime_percentiles_and_the_stored_timeline(
    predictor: OipServer, tmp_path: Any
) -> None:
    (tmp_path / "state").mkdir()
    config = tmp_path / "healthkit.toml"
    config.write_text(
        f"""
[defaults.health_check]
strategy = "http"
base_url = "{predictor.url}"
period = 0.05
jitter = 0.0

[models.alpha]
[models.beta]

[history]
path = "state/history.sqlite"
flush_interval = 0.05
"""
    )
    app = create_app(HealthKit.from_config(str(config)))
    async with app.router.lifespan_context(app), client_for(app) as client:
        store = app.state.history
        assert store is not None
        monitor: Monitor = app.state.monitor
        await wait_until(lambda: monitor.status("alpha") is Status.HEALTHY)
        predictor.set_state("alpha", "not_ready")
        await wait_until(lambda: monitor.status("alpha") is Status.UNHEALTHY)
        await wait_until(lambda: len(store.transitions("alpha")) >= 2 and store.minutes("alpha"))
        body = (await client.get("/status/api/models")).json()
        assert body["history"] is True
        alpha = {m["name"]: m for m in body["models"]}["alpha"]
        assert set(alpha["uptime"]) == {"24h", "7d", "30d"}
        assert 0.0 < alpha["uptime"]["24h"] < 100.0  # up, then down
        assert alpha["p95_ms"] is not None and alpha["p99_ms"] >= alpha["p95_ms"]
        one = (await client.get("/status/api/models/alpha")).json()
        assert [(t["old"], t["new"]) for t in one["transitions"]][:2] == [
            ("healthy", "unhealthy"),
            ("unknown", "healthy"),
        ]
        assert set(one["uptime"]) == {"1h", "24h", "7d", "30d"}
        assert one["latency_ms"]["24h"]["checks"] > 0 and one["minutes"]
        assert one["window"] == "24h" and one["minutes"][0]["minutes"] == 1
        week = (await client.get("/status/api/models/alpha", params={"window": "7d"})).json()
        assert week["window"] == "7d" and week["minutes"]
        view = (await client.get("/status/models/alpha")).text
        assert "<caption>History</caption>" in view and "<svg" in view
        assert 'href="?window=30d"' in view and "<b>24h</b>" in view
        assert "No history store" not in view


async def test_serve_stops_promptly_with_an_open_event_stream_and_can_leave_the_page_out(
    predictor: OipServer, tmp_path: Any
) -> None:
    from test_serve import Served, write_config

    config = write_config(tmp_path, predictor.url)
    served = Served(config, "--log-level", "warning", tmp_path=tmp_path)
    try:
        # A client that keeps the stream open, as a browser does (a bare socket: no
        # client library between).
        host, port = served.url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(f"GET /status/events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"event: summary"), 5)
            assert head.startswith(b"HTTP/1.1 200")
            # uvicorn's graceful shutdown waits for open responses: serve ends the
            # stream, or SIGINT would leave the process waiting for this client.
            started = asyncio.get_running_loop().time()
            code = await asyncio.to_thread(served.stop)
            assert code == 0, served.stderr
            assert asyncio.get_running_loop().time() - started < 5
        finally:
            writer.close()
    finally:
        served.stop()
    (tmp_path / "x").mkdir()
    off = Served(config, "--no-status-page", "--log-level", "warning", tmp_path=tmp_path / "x")
    try:
        async with httpx.AsyncClient(base_url=off.url, timeout=5) as client:
            assert (await client.get("/status")).status_code == 404
            assert (await client.get("/livez")).status_code == 200
    finally:
        assert off.stop() == 0, off.stderr


def test_a_30_day_chart_groups_minutes_into_at_most_720_points() -> None:
    from healthkit.asgi._status_page import CHART_POINTS, _grouped
    from healthkit.history import MinuteRecord

    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    minutes = [
        MinuteRecord(
            model="alpha",
            start=start + dt.timedelta(minutes=i),
            checks=2,
            failures=i % 2,
            latency_min=0.001,
            latency_mean=0.002 if i % 60 else 0.004,
            latency_max=0.010 if i == 61 else 0.003,
            buckets=(),
        )
        for i in range(30 * 24 * 60)
    ]
    points = _grouped(minutes)
    assert len(points) == CHART_POINTS and points[0]["minutes"] == 60
    assert sum(p["checks"] for p in points) == 2 * len(minutes)
    assert sum(p["failures"] for p in points) == len(minutes) // 2
    # Weighted mean of one group: one minute at 4 ms, 59 at 2 ms; the max is kept.
    assert points[1]["mean_ms"] == round((4 + 59 * 2) / 60, 2) and points[1]["max_ms"] == 10.0
