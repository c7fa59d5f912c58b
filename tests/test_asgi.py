"""The ASGI health app: routing over httpx.ASGITransport, behaviour over a real uvicorn server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from _monitor_support import (
    PredictorProcess,
    ScriptedPlugin,
    UvicornThread,
    http_config,
    raw_get_many,
    wait_until,
)
from healthkit import HealthKit, Monitor, Target, load_config
from healthkit.asgi import create_app, create_router
from healthkit.testing import OipServer, SilentServer

# One probe at start, then none for the length of a test: answers must come from memory.
ONCE = {"period": 60.0, "jitter": 0.0, "timeout": 0.5}


@pytest.fixture
def predictor() -> Iterator[OipServer]:
    with OipServer({"alpha": "ready", "beta": "not_ready"}) as server:
        yield server


@pytest.fixture
async def monitor(predictor: OipServer) -> AsyncIterator[Monitor]:
    kit = HealthKit.from_config(http_config(predictor.url, ["alpha", "beta"], **ONCE))
    monitor = Monitor(kit)
    try:
        yield monitor
    finally:
        await monitor.aclose()


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://health")


async def test_routes_answer_200_503_404_from_the_monitor(
    predictor: OipServer, monitor: Monitor
) -> None:
    app = create_app(monitor)
    async with client_for(app) as client:
        # The first request starts the monitor (no lifespan under ASGITransport).
        assert (await client.get("/livez")).json() == {"live": True}
        await wait_until(lambda: all(monitor.last_result(m) for m in ("alpha", "beta")))
        upstream_before = predictor.total_requests

        expected = {
            "/livez": (200, {"live": True}),
            "/v2/health/live": (200, {"live": True}),
            "/readyz": (503, {"ready": False}),
            "/v2/health/ready": (503, {"ready": False}),
            "/v2/models/alpha/ready": (200, {"name": "alpha", "ready": True}),
            "/v2/models/beta/ready": (503, {"name": "beta", "ready": False}),
            "/v2/models/nope/ready": (404, {"error": "model nope not found"}),
            "/v1/models/alpha": (200, {"name": "alpha", "ready": True}),
            "/v1/models/beta": (503, {"name": "beta", "ready": False}),
            "/v1/models/nope": (404, {"error": "model nope not found"}),
        }
        for path, (code, body) in expected.items():
            for _ in range(20):
                response = await client.get(path)
                assert (response.status_code, response.json()) == (code, body), path
        # Two hundred readiness answers cost the predictor nothing.
        assert predictor.total_requests == upstream_before

        head = await client.head("/v2/models/alpha/ready")
        assert head.status_code == 200

        # Upstream changes show at the next probe (60 s away), not at the next request.
        predictor.set_state("beta", "ready")
        assert (await client.get("/v2/models/beta/ready")).status_code == 503
        assert predictor.total_requests == upstream_before


async def test_versioned_readiness_checks_the_configured_version_once(
    predictor: OipServer,
) -> None:
    config = http_config(predictor.url, ["alpha"], initial_delay=60.0, **ONCE)
    config["models"]["alpha"] = {"version": "3"}
    monitor = Monitor(HealthKit.from_config(config))
    try:
        async with client_for(create_app(monitor)) as client:
            responses = await asyncio.gather(
                *(client.get("/v2/models/alpha/versions/3/ready") for _ in range(50))
            )
            assert {r.status_code for r in responses} == {200}
            assert responses[0].json() == {"name": "alpha", "ready": True}
            assert predictor.requests["/v2/models/alpha/versions/3/ready"] == 1
            # A version nobody configured is not found, and costs the predictor nothing.
            other = await client.get("/v2/models/alpha/versions/4/ready")
            assert (other.status_code, other.json()) == (
                404,
                {"error": "model alpha version 4 not found"},
            )
            assert predictor.total_requests == 1
    finally:
        await monitor.aclose()


async def test_model_without_a_result_yet_costs_one_shared_check(predictor: OipServer) -> None:
    config = http_config(predictor.url, ["alpha"], initial_delay=60.0, **ONCE)
    monitor = Monitor(HealthKit.from_config(config))
    try:
        predictor.delay = 0.05
        async with client_for(create_app(monitor)) as client:
            responses = await asyncio.gather(
                *(client.get("/v2/models/alpha/ready") for _ in range(200))
            )
        assert {r.status_code for r in responses} == {200}
        assert predictor.requests["/v2/models/alpha/ready"] == 1
    finally:
        await monitor.aclose()


async def test_health_hides_details_unless_enabled(predictor: OipServer) -> None:
    config = http_config(
        predictor.url.replace("http://", "http://probe:s3cret-pass@"),
        ["alpha", "beta"],
        headers={"Authorization": "Bearer tok-very-secret"},
        **ONCE,
    )
    for show, detailed in (("never", False), ("always", True)):
        monitor = Monitor(HealthKit.from_config(config))
        try:
            async with client_for(create_app(monitor, show_details=show)) as client:
                await client.get("/livez")
                await wait_until(lambda m=monitor: all(m.last_result(x) for x in ("alpha", "beta")))  # type: ignore[misc]
                response = await client.get("/health")
        finally:
            await monitor.aclose()
        assert response.status_code == 503  # beta is not ready
        body = response.json()
        assert body["status"] == "unhealthy"
        assert body["ready"] is False
        assert ("models" in body) is detailed
        assert "s3cret-pass" not in response.text and "tok-very-secret" not in response.text
        if detailed:
            assert body["models"]["alpha"]["ready"] is True
            assert body["models"]["beta"]["last"]["detail"] == "not ready (HTTP 503)"
            assert body["models"]["beta"]["transitions"][0]["new"] == "unhealthy"
            assert body["resolver"] == {"models": 2, "instances": 1}
        else:
            assert set(body) == {"status", "live", "ready"}


async def test_metrics_in_prometheus_text_format(predictor: OipServer, monitor: Monitor) -> None:
    other = Monitor(HealthKit.from_config(http_config(predictor.url, ["alpha"], **ONCE)))
    try:
        apps = [create_app(monitor), create_app(other)]  # private registries: no clash
        async with client_for(apps[0]) as client:
            await client.get("/livez")
            await wait_until(lambda: all(monitor.last_result(m) for m in ("alpha", "beta")))
            response = await client.get("/metrics")
    finally:
        await other.aclose()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for line in (
        'healthkit_model_ready{model="alpha"} 1.0',
        'healthkit_model_ready{model="beta"} 0.0',
        'healthkit_model_status{model="beta"} 3.0',
        "healthkit_resolver_instances 1.0",
        "healthkit_resolver_models 2.0",
        'healthkit_transitions_total{model="alpha",new="healthy",old="unknown"} 1.0',
        'healthkit_check_duration_seconds_count{kind="single",strategy="http"} 2.0',
        "healthkit_monitor_live 1.0",
    ):
        assert line in text, line


async def test_never_500_when_checks_or_handlers_fail(monitor: Monitor) -> None:
    plugin = ScriptedPlugin()

    async def boom(target: Target) -> Any:
        raise RuntimeError("kaboom")

    plugin.behaviours["boom"] = boom
    registry = plugin.registry()
    raw = {"models": {"m": {"health_check": {"strategy": "scripted", "script": "boom", **ONCE}}}}
    broken = Monitor(HealthKit(load_config(raw, registry=registry), registry=registry))
    try:
        async with client_for(create_app(broken)) as client:
            response = await client.get("/v2/models/m/ready")
            assert (response.status_code, response.json()) == (503, {"name": "m", "ready": False})
    finally:
        await broken.aclose()

    def explode(model: str) -> bool:
        raise RuntimeError("bug in a handler")

    async with client_for(create_app(monitor)) as client:
        await client.get("/livez")
        await wait_until(lambda: monitor.last_result("alpha") is not None)
        monitor.is_ready = explode  # type: ignore[method-assign]
        response = await client.get("/v2/models/alpha/ready")
        assert response.status_code == 503
        assert response.json() == {"error": "health check failed: RuntimeError"}
        await monitor.aclose()
        response = await client.get("/readyz")
        assert response.status_code == 503


async def test_router_mounts_in_a_host_app(predictor: OipServer, monitor: Monitor) -> None:
    host = Starlette(
        routes=[Mount("/health-api", app=create_router(monitor, show_details="always"))]
    )
    async with client_for(host) as client:
        assert (await client.get("/health-api/livez")).status_code == 200
        await wait_until(lambda: monitor.last_result("alpha") is not None)
        response = await client.get("/health-api/v2/models/alpha/ready")
        assert response.json() == {"name": "alpha", "ready": True}
        assert (await client.get("/livez")).status_code == 404  # only under the mount


def test_factory_is_exported_and_validates_show_details(monitor: Monitor) -> None:
    # The old top-level name still works, with a deprecation warning pointing here.
    with pytest.warns(DeprecationWarning, match=r"healthkit\.asgi\.create_app"):
        from healthkit import create_asgi_app
    assert create_asgi_app is create_app
    with pytest.raises(ValueError, match="show_details"):
        create_app(monitor, show_details="sometimes")  # type: ignore[arg-type]


# -- over a real uvicorn server ---------------------------------------------------------------


async def test_uvicorn_burst_of_1000_readiness_requests_costs_one_upstream_request(
    predictor: OipServer,
) -> None:
    config = http_config(predictor.url, ["alpha"], initial_delay=60.0, cache_ttl=30.0, **ONCE)
    predictor.delay = 0.05
    with UvicornThread(create_app(HealthKit.from_config(config))) as server:
        responses = await raw_get_many(server.url, "/v2/models/alpha/ready", 1000, concurrency=1000)
        assert len(responses) == 1000
        assert {status for status, _ in responses} == {200}
        assert predictor.requests["/v2/models/alpha/ready"] == 1
        again = await raw_get_many(server.url, "/v1/models/alpha", 1000, concurrency=1000)
        assert {status for status, _ in again} == {200}
        assert predictor.total_requests == 1


async def test_uvicorn_killed_predictor_gives_503_within_the_bound_never_500() -> None:
    period, failure_threshold, timeout = 0.05, 3, 0.3
    with PredictorProcess("alpha") as predictor:
        config = http_config(
            predictor.url,
            ["alpha"],
            period=period,
            jitter=0.0,
            timeout=timeout,
            failure_threshold=failure_threshold,
        )
        with UvicornThread(create_app(HealthKit.from_config(config))) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
                codes: list[int] = []

                async def wait_for_code(want: int, within: float) -> None:
                    start = time.monotonic()
                    while True:
                        code = (await client.get("/v2/models/alpha/ready")).status_code
                        codes.append(code)
                        if code == want:
                            return
                        assert time.monotonic() - start < within, f"still {code}"
                        await asyncio.sleep(0.01)

                await wait_for_code(200, within=5.0)
                predictor.kill()
                # Bound: failure_threshold x period, plus the last probe's timeout (and slack).
                await wait_for_code(503, within=failure_threshold * period + timeout + 2.0)
                assert set(codes) <= {200, 503}
                assert (await client.get("/readyz")).status_code == 503
                assert (await client.get("/v1/models/alpha")).json() == {
                    "name": "alpha",
                    "ready": False,
                }
                assert (await client.get("/livez")).status_code == 200
                metrics = (await client.get("/metrics")).text
                assert 'healthkit_model_ready{model="alpha"} 0.0' in metrics


async def test_uvicorn_hung_predictor_gives_503_within_the_timeout() -> None:
    timeout = 0.2
    with SilentServer() as hung:
        config = http_config(hung.url, ["alpha"], timeout=timeout, period=0.1)
        with UvicornThread(create_app(HealthKit.from_config(config))) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
                start = time.monotonic()
                response = await client.get("/v2/models/alpha/ready")
                assert time.monotonic() - start < timeout + 1.5  # the timeout, not a hang
                assert (response.status_code, response.json()) == (
                    503,
                    {"name": "alpha", "ready": False},
                )
                assert (await client.get("/v1/models/alpha")).status_code == 503
                assert (await client.get("/readyz")).status_code == 503
                assert (await client.get("/livez")).status_code == 200
