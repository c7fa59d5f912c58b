"""Federation: the ``/v1/status`` API and the ``healthkit`` strategy reading it.

Every upstream here is real: an OIP predictor on loopback, a healthkit app under
uvicorn (in a thread) or ``healthkit serve`` (in a process) in front of it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from _monitor_support import UvicornThread, http_config, wait_until
from healthkit import (
    ConfigError,
    HealthKit,
    Monitor,
    Status,
    StrategyRegistry,
    Target,
    load_config,
)
from healthkit.asgi import create_app
from healthkit.asgi._status_api import status_body
from healthkit.strategies.federation import FederationConfig, FederationStrategy
from healthkit.testing import OipServer, SilentServer

TOKEN = "s3cr3t-federation-token"


def sidecar_config(url: str, models: list[str], **health_check: Any) -> dict[str, Any]:
    config = http_config(url, models, jitter=0.0, timeout=0.5, **health_check)
    config["defaults"]["health_check"]["headers"] = {"authorization": f"Bearer {TOKEN}"}
    return config


@pytest.fixture
def predictor() -> Iterator[OipServer]:
    with OipServer({"alpha": "ready", "beta": "not_ready"}) as server:
        yield server


@pytest.fixture
async def sidecar(predictor: OipServer) -> AsyncIterator[tuple[UvicornThread, Monitor]]:
    """A healthkit app (one probe a minute: answers come from memory) under uvicorn."""
    kit = HealthKit.from_config(
        sidecar_config(predictor.url, ["alpha", "beta"], period=60.0, failure_threshold=1)
    )
    monitor = Monitor(kit)
    with UvicornThread(create_app(monitor, manage_monitor=False)) as server:
        try:
            await monitor.start()
            await wait_until(lambda: all(monitor.last_result(m) for m in ("alpha", "beta")))
            yield server, monitor
        finally:
            await monitor.aclose()


def strategy(url: str, **options: Any) -> FederationStrategy:
    return FederationStrategy(FederationConfig(base_url=url, **options))


# -- the status API -------------------------------------------------------------------------


async def test_status_api_reports_every_model_in_one_versioned_answer(
    sidecar: tuple[UvicornThread, Monitor],
) -> None:
    server, monitor = sidecar
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.get("/v1/status")
    assert response.status_code == 200  # a report, not a readiness answer: beta is down
    body = response.json()
    assert body["version"] == 1
    assert body["ready"] is False and body["status"] == "unhealthy"
    alpha, beta = body["models"]["alpha"], body["models"]["beta"]
    assert (alpha["status"], alpha["ready"]) == ("healthy", True)
    assert (beta["status"], beta["ready"]) == ("unhealthy", False)
    last = monitor.last_result("alpha")
    assert last is not None
    assert dt.datetime.fromisoformat(alpha["checked_at"]) == last.checked_at
    assert alpha["age"] >= 0 and alpha["latency_ms"] == last.latency_ms
    # No details (and so nothing an upstream said) unless /health shows them.
    assert "detail" not in alpha and "error" not in beta
    assert TOKEN not in response.text


async def test_status_api_details_only_with_show_details_and_never_a_secret(
    predictor: OipServer,
) -> None:
    config = sidecar_config(predictor.url, ["alpha", "beta"], period=60.0)
    # A misconfigured check whose detail would carry the token: the path holds it.
    config["models"]["gamma"] = {
        "health_check": {"protocol": "generic", "path": f"/nothing/{TOKEN}"}
    }
    monitor = Monitor(HealthKit.from_config(config))
    app = create_app(monitor, show_details="always")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://health"
    ) as client:
        try:
            await client.get("/livez")  # starts the monitor (no lifespan here)
            await wait_until(lambda: all(monitor.last_result(m) for m in monitor.models))
            body = (await client.get("/v1/status")).json()
        finally:
            await monitor.aclose()
    assert body["models"]["beta"]["detail"]
    assert TOKEN not in json.dumps(body)


async def test_status_api_model_without_a_result_has_no_time_and_is_not_ready() -> None:
    config = {
        "defaults": {"health_check": {"strategy": "noop", "period": 60.0}},
        "models": {"alpha": {}},
    }
    monitor = Monitor(HealthKit.from_config(config))
    try:
        # Never started: the model has no result yet.
        body = status_body(monitor, details=False, redact=None)
    finally:
        await monitor.aclose()
    assert body["models"]["alpha"] == {
        "status": "unknown",
        "ready": False,
        "version": None,
        "checked_at": None,
        "age": None,
        "latency_ms": None,
    }
    assert (body["status"], body["ready"]) == ("unknown", False)


# -- the strategy ---------------------------------------------------------------------------


async def test_one_request_answers_every_model_with_the_upstreams_check_time(
    sidecar: tuple[UvicornThread, Monitor],
) -> None:
    server, monitor = sidecar
    fed = strategy(server.url)
    try:
        targets = [Target(model="alpha"), Target(model="beta"), Target(model="nope"), Target()]
        results = await fed.acheck_many(targets)
    finally:
        await fed.aclose()
    assert fed.requests == 1
    alpha, beta, nope, whole = (results[t] for t in targets)
    assert alpha.status is Status.HEALTHY and alpha.strategy == "healthkit"
    last = monitor.last_result("alpha")
    assert last is not None and alpha.checked_at == last.checked_at
    assert beta.status is Status.UNHEALTHY
    assert nope.status is Status.UNHEALTHY and "not configured" in nope.detail
    assert whole.status is Status.UNHEALTHY  # beta is down, so the server is not ready
    assert alpha.endpoint == f"{server.url}/v1/status"


async def test_a_result_older_than_max_age_is_unknown_never_a_stale_healthy(
    sidecar: tuple[UvicornThread, Monitor],
) -> None:
    server, monitor = sidecar
    fed = strategy(server.url, max_age=0.2)
    try:
        last = monitor.last_result("alpha")
        assert last is not None
        # The sidecar probes once a minute: its result only ages from here on.
        await wait_until(
            lambda: dt.datetime.now(dt.timezone.utc) - last.checked_at > dt.timedelta(seconds=0.25)
        )
        result = await fed.acheck(Target(model="alpha"))
    finally:
        await fed.aclose()
    assert result.status is Status.UNKNOWN
    assert "old (max_age 0.2s)" in result.detail
    assert result.checked_at == last.checked_at


async def test_a_version_the_upstream_does_not_check_is_unknown(
    sidecar: tuple[UvicornThread, Monitor],
) -> None:
    server, _ = sidecar
    fed = strategy(server.url)
    try:
        result = await fed.acheck(Target(model="alpha", version="7"))
    finally:
        await fed.aclose()
    assert result.status is Status.UNKNOWN and "version None, not 7" in result.detail


async def test_a_sidecar_that_is_down_is_unhealthy_with_a_clear_detail(
    healthkit_refused_url: str,
) -> None:
    fed = strategy(healthkit_refused_url, timeout=0.5)
    try:
        result = await fed.acheck(Target(model="alpha"))
    finally:
        await fed.aclose()
    assert result.status is Status.UNHEALTHY
    assert result.detail.startswith("upstream healthkit unreachable: connection failed")


async def test_concurrent_checks_share_one_status_request(
    sidecar: tuple[UvicornThread, Monitor],
) -> None:
    """A one-shot check of every model (``healthkit check``) runs them concurrently: one
    request answers them all (before, each model sent its own)."""
    server, _ = sidecar
    fed = strategy(server.url)
    try:
        names = ["alpha", "beta", "alpha", "nope"]
        results = await asyncio.gather(*(fed.acheck(Target(model=n)) for n in names))
        assert fed.requests == 1
        assert [r.status for r in results] == [
            Status.HEALTHY,
            Status.UNHEALTHY,
            Status.HEALTHY,
            Status.UNHEALTHY,
        ]
        await fed.acheck(Target(model="alpha"))
        assert fed.requests == 2  # shared while in flight, never cached
    finally:
        await fed.aclose()


async def test_a_cancelled_check_leaves_the_shared_request_to_the_others() -> None:
    with SilentServer() as silent:
        fed = strategy(silent.url, timeout=0.3)
        try:
            first = asyncio.ensure_future(fed.acheck(Target(model="alpha")))
            second = asyncio.ensure_future(fed.acheck(Target(model="beta")))
            await asyncio.sleep(0)
            first.cancel()
            result = await second
            assert result.status is Status.UNHEALTHY and "timed out" in result.detail
            # Nothing left in flight: the next check sends its own request.
            await fed.acheck(Target(model="alpha"))
            assert fed.requests == 2
            # A check in flight at close is ended, not left behind.
            pending = asyncio.ensure_future(fed.acheck(Target(model="alpha")))
            await asyncio.sleep(0.05)
        finally:
            await fed.aclose()
        with pytest.raises(asyncio.CancelledError):
            await pending


async def test_a_sidecar_that_hangs_is_unhealthy_within_the_timeout() -> None:
    with SilentServer() as silent:
        fed = strategy(silent.url, timeout=0.3)
        try:
            start = time.monotonic()
            result = await fed.acheck(Target(model="alpha"))
            took = time.monotonic() - start
        finally:
            await fed.aclose()
    assert result.status is Status.UNHEALTHY and "timed out after 0.3s" in result.detail
    assert took < 2.0  # bounded by the timeout, not a hang (a generous bound, not a benchmark)


async def test_a_server_without_the_status_api_is_unhealthy_saying_so(
    predictor: OipServer,
) -> None:
    fed = strategy(predictor.url)
    try:
        result = await fed.acheck(Target(model="alpha"))
    finally:
        await fed.aclose()
    assert result.status is Status.UNHEALTHY and "no status API at /v1/status" in result.detail


def test_config_is_loaded_by_name_and_secrets_stay_out_of_its_repr(
    healthkit_registry: StrategyRegistry,
) -> None:
    config = load_config(
        {
            "defaults": {
                "health_check": {
                    "strategy": "healthkit",
                    "base_url": "http://sidecar:8000",
                    "max_age": 5,
                    "headers": {"Authorization": f"Bearer {TOKEN}"},
                }
            },
            "models": {"alpha": {}, "beta": {}},
        },
        registry=healthkit_registry,
    )
    spec = config.models["alpha"].check
    assert spec.strategy == "healthkit" and spec.config.max_age == 5
    assert spec == config.models["beta"].check  # one instance for the whole sidecar
    assert TOKEN not in repr(config)
    bad = {"defaults": {"health_check": {"strategy": "healthkit", "base_url": "http://x"}}}
    bad["defaults"]["health_check"]["max_age"] = 0
    with pytest.raises(ConfigError, match=r"defaults\.health_check\.max_age"):
        load_config(bad, registry=healthkit_registry)


# -- use case (b): a fleet view ---------------------------------------------------------------


async def test_fleet_view_composite_over_two_servers(predictor: OipServer) -> None:
    with OipServer({"alpha": "not_ready"}) as other_predictor:
        kits = [
            HealthKit.from_config(
                sidecar_config(p.url, ["alpha"], period=60.0, failure_threshold=1)
            )
            for p in (predictor, other_predictor)
        ]
        monitors = [Monitor(kit) for kit in kits]
        with (
            UvicornThread(create_app(monitors[0], manage_monitor=False)) as one,
            UvicornThread(create_app(monitors[1], manage_monitor=False)) as two,
        ):
            try:
                for m in monitors:
                    await m.start()
                await wait_until(lambda: all(m.last_result("alpha") for m in monitors))
                fleet = HealthKit.from_config(
                    {
                        "models": {
                            # Per model: one server's view of it.
                            "alpha-east": {
                                "health_check": {"strategy": "healthkit", "base_url": one.url},
                                "upstream_model": "alpha",
                            },
                            # A composite: alpha is fine only where every server says so.
                            "alpha-everywhere": {
                                "health_check": {
                                    "strategy": "composite",
                                    "mode": "all",
                                    "checks": [
                                        {"strategy": "healthkit", "base_url": one.url},
                                        {"strategy": "healthkit", "base_url": two.url},
                                    ],
                                },
                                "upstream_model": "alpha",
                            },
                        }
                    }
                )
                async with fleet:
                    east = await fleet.acheck("alpha-east")
                    everywhere = await fleet.acheck("alpha-everywhere")
            finally:
                for m in monitors:
                    await m.aclose()
    assert east.status is Status.HEALTHY
    assert everywhere.status is Status.UNHEALTHY
    assert [c.status for c in everywhere.children] == [Status.HEALTHY, Status.UNHEALTHY]


# -- use case (a): N workers share one sidecar --------------------------------------------------

MAIN = "from healthkit.cli import main; main()"


class Served:
    """``healthkit serve`` in a process, on a free port (read from its banner)."""

    def __init__(self, config: dict[str, Any], path: Path, port: int = 0) -> None:
        path.write_text(json.dumps(config))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", MAIN, "serve", str(path), "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The URL from the banner (read once: processes started together start in parallel)."""
        if self._url is None:
            assert self.proc.stdout is not None
            self._url = self.proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        return self._url

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


async def test_workers_sharing_a_sidecar_cost_the_predictor_one_check_per_period(
    predictor: OipServer, tmp_path: Path
) -> None:
    period = 0.5
    served: list[Served] = []
    try:
        # A port picked now, so that the workers start alongside the sidecar, not after it.
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        sidecar = Served(
            sidecar_config(predictor.url, ["alpha", "beta"], period=period, failure_threshold=1),
            tmp_path / "sidecar.json",
            port=port,
        )
        served.append(sidecar)
        sidecar_url = f"http://127.0.0.1:{port}"
        worker_config = {
            "defaults": {
                "health_check": {
                    "strategy": "healthkit",
                    "base_url": sidecar_url,
                    # The workers ask often; the sidecar alone decides how often the predictor is.
                    "period": 0.1,
                    "jitter": 0.0,
                    "failure_threshold": 1,
                }
            },
            "models": {"alpha": {}, "beta": {}},
        }
        for i in range(3):
            served.append(Served(worker_config, tmp_path / f"worker{i}.json"))
        workers = served[1:]
        assert sidecar.url == sidecar_url, "the sidecar did not start"
        async with httpx.AsyncClient() as client:

            async def answers(path: str) -> list[int]:
                return [(await client.get(w.url + path)).status_code for w in workers]

            deadline = time.monotonic() + 20
            while await answers("/v2/models/alpha/ready") != [200, 200, 200]:
                assert time.monotonic() < deadline, "workers never became ready"
                await asyncio.sleep(0.05)
            assert await answers("/v2/models/beta/ready") == [503, 503, 503]
            before = predictor.requests["/v2/models/alpha/ready"]
            start = time.monotonic()
            await asyncio.sleep(2.0)  # a window of periods to count over
            window = time.monotonic() - start
            checks = predictor.requests["/v2/models/alpha/ready"] - before
            # One sidecar probe per period, whatever the number of workers (3 workers
            # probing on their own at 0.1 s would be ~60 here).
            assert checks <= window / period + 2
            # End to end: beta recovers at the predictor, every worker sees it.
            predictor.set_state("beta", "ready")
            deadline = time.monotonic() + 10
            while await answers("/v2/models/beta/ready") != [200, 200, 200]:
                assert time.monotonic() < deadline, "workers never saw beta recover"
                await asyncio.sleep(0.05)
    finally:
        for s in reversed(served):
            s.stop()


def test_new_plugin_refuses_the_builtin_name() -> None:
    from healthkit.cli._new_plugin import plugin_names

    with pytest.raises(ValueError, match="'healthkit' is a built-in strategy"):
        plugin_names("healthkit")
