"""Clients cannot drive upstream traffic by choosing versions: the amplification bound."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs
import pytest

import healthkit
from _monitor_support import http_config, wait_until
from healthkit import CheckResult, HealthKit, Monitor, Status, StrategyRegistry, Target, load_config
from healthkit.asgi import create_app
from healthkit.testing import OipServer

ONCE = {"period": 60.0, "jitter": 0.0, "timeout": 0.5}


@pytest.fixture
def predictor() -> Iterator[OipServer]:
    with OipServer({"alpha": "ready"}) as server:
        yield server


async def asgi_get(app: Any, path: str) -> tuple[int, Any]:
    """One GET straight through the ASGI interface (ten thousand of them in a second)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"health")],
        "client": ("127.0.0.1", 1),
        "server": ("health", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body)


async def test_ten_thousand_client_chosen_versions_cost_the_predictor_nothing(
    predictor: OipServer,
) -> None:
    monitor = Monitor(HealthKit.from_config(http_config(predictor.url, ["alpha"], **ONCE)))
    app = create_app(monitor)
    try:
        await monitor.start()
        await wait_until(lambda: monitor.last_result("alpha") is not None)
        before = predictor.total_requests
        for n in range(10_000):
            status, body = await asgi_get(app, f"/v2/models/alpha/versions/v{n}/ready")
            assert (status, body) == (404, {"error": f"model alpha version v{n} not found"})
        assert predictor.total_requests == before
        # The model itself still answers, from memory.
        assert await asgi_get(app, "/v2/models/alpha/ready") == (
            200,
            {"name": "alpha", "ready": True},
        )
    finally:
        await monitor.aclose()


async def test_distinct_on_demand_targets_are_capped_per_window(predictor: OipServer) -> None:
    config = http_config(predictor.url, ["alpha"], **ONCE)
    monitor = Monitor(HealthKit.from_config(config), max_on_demand_targets=10)
    try:
        results = [await monitor.acheck("alpha", version=f"v{n}") for n in range(50)]
        checked = [r for r in results if r.status is not Status.UNKNOWN]
        assert len(checked) == 10
        assert predictor.total_requests == 10
        refused = results[-1]
        assert refused.status is Status.UNKNOWN
        assert refused.detail == (
            "not checked: more than 10 distinct on-demand targets in 10s (max_on_demand_targets)"
        )
        assert monitor.stats().refused_targets == 40
        # A target already admitted in this window is still served (from its cache here).
        assert (await monitor.acheck("alpha", version="v3")).status is not Status.UNKNOWN
    finally:
        await monitor.aclose()
    with pytest.raises(ValueError, match="max_on_demand_targets"):
        Monitor(HealthKit.from_config(config), max_on_demand_targets=-1)


# -- versions an upstream reported ------------------------------------------------------


@attrs.frozen(kw_only=True)
class ReportingConfig:
    timeout: float = 1.0


class _Reporting:
    """A batch strategy whose answer also names version "7" of every model it was asked about."""

    def __init__(self, config: ReportingConfig) -> None:
        self.config = config

    async def acheck(self, target: Target) -> CheckResult:
        return CheckResult(status=Status.HEALTHY, strategy="reporting", target=target)

    async def acheck_many(self, targets: Sequence[Target]) -> Mapping[Target, CheckResult]:
        out = {t: await self.acheck(t) for t in targets}
        for t in targets:
            seven = Target(model=t.model, version="7")
            out[seven] = await self.acheck(seven)
        return out

    async def aclose(self) -> None:
        pass


class ReportingPlugin:
    @healthkit.hookimpl
    def healthkit_register_strategies(self, registrar: Any) -> None:
        registrar.add("reporting", config=ReportingConfig, factory=lambda c, ctx: _Reporting(c))


async def test_a_version_the_upstream_reported_gets_checks_of_its_own() -> None:
    registry = StrategyRegistry(plugins=[ReportingPlugin()], entry_points=False)
    raw = {
        "defaults": {"health_check": {"strategy": "reporting", **ONCE}},
        "models": {"a": {}, "b": {}},
    }
    monitor = Monitor(HealthKit(load_config(raw, registry=registry), registry=registry))
    app = create_app(monitor)
    try:
        assert monitor.has_version("a", None)
        assert not monitor.has_version("a", "7")
        assert (await asgi_get(app, "/v2/models/a/versions/7/ready"))[0] == 404
        # Both models come due together: one batch call, whose answer names version 7.
        await monitor.start()
        await wait_until(lambda: monitor.has_version("a", "7"))
        assert monitor.has_version("b", "7") and not monitor.has_version("a", "8")
        assert await asgi_get(app, "/v2/models/a/versions/7/ready") == (
            200,
            {"name": "a", "ready": True},
        )
        assert (await asgi_get(app, "/v2/models/a/versions/8/ready"))[0] == 404
    finally:
        await monitor.aclose()
