"""``upstream_model``: a model served as one name is checked upstream under another.

KServe issue #4510: a renamed model and its version were not passed to the
predictor's check. Real predictors here (OIP over HTTP and gRPC on loopback).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from _monitor_support import wait_until
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
from healthkit.testing import OipServer, OipServicer, serve_grpc


@pytest.fixture
def predictor() -> Iterator[OipServer]:
    # Only the renamed models exist upstream: a check of the served name would fail.
    with OipServer({"alpha-v3": "ready", "beta-v3": "not_ready"}) as server:
        yield server


def renamed(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "defaults": {
            "health_check": {
                "strategy": "http",
                "base_url": url,
                "period": 60.0,
                "jitter": 0.0,
                "failure_threshold": 1,
                **extra,
            }
        },
        "models": {
            "alpha": {"upstream_model": "{model}-v3", "version": "3"},
            "beta": {"upstream_model": "beta-v3"},
        },
    }


def test_the_template_fills_in_the_served_name_and_the_target_carries_the_version(
    healthkit_registry: StrategyRegistry,
) -> None:
    config = load_config(renamed("http://p:8080"), registry=healthkit_registry)
    alpha = config.models["alpha"]
    assert alpha.name == "alpha" and alpha.upstream_model == "alpha-v3"
    assert alpha.target == Target(model="alpha-v3", version="3")
    assert config.models["beta"].target == Target(model="beta-v3")
    # The target is not part of the strategy config: both models share one instance.
    assert alpha.check == config.models["beta"].check


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{name}-v3", "bad template field {name}"),
        ("{model!r}", "bad template field {model}"),
        ("{model", "bad template"),
        ("team//{model}", "must not have an empty, '.' or '..' part between slashes"),
        ("team/../{model}", "must not have an empty, '.' or '..' part between slashes"),
        ("..", "must not be '..'"),
        (3, "expected a string, got 3"),
    ],
)
def test_a_bad_upstream_model_names_its_path(
    healthkit_registry: StrategyRegistry, value: Any, message: str
) -> None:
    raw = {"models": {"alpha": {"upstream_model": value}}}
    with pytest.raises(ConfigError) as info:
        load_config(raw, registry=healthkit_registry)
    text = str(info.value)
    assert "models.alpha.upstream_model" in text and message in text


def test_an_upstream_name_may_hold_a_slash(healthkit_registry: StrategyRegistry) -> None:
    # vLLM's default model ids carry the organisation ("meta-llama/Llama-3.1-8B-Instruct").
    raw = {"models": {"llama": {"upstream_model": "meta-llama/{model}-3.1"}}}
    config = load_config(raw, registry=healthkit_registry)
    assert config.models["llama"].upstream_model == "meta-llama/llama-3.1"


def test_two_models_that_would_be_one_check_are_refused(
    healthkit_registry: StrategyRegistry,
) -> None:
    raw = {
        "defaults": {"health_check": {"strategy": "http", "base_url": "http://p"}},
        "models": {"alpha": {}, "old-alpha": {"upstream_model": "alpha"}},
    }
    with pytest.raises(ConfigError, match=r"models\.old-alpha\.upstream_model: models 'alpha'"):
        load_config(raw, registry=healthkit_registry)
    # The same name upstream, but another version: two checks, fine.
    raw["models"]["old-alpha"]["version"] = "1"
    load_config(raw, registry=healthkit_registry)


async def test_the_monitor_checks_the_upstream_name_and_reports_the_served_one(
    predictor: OipServer,
) -> None:
    """Regression: the monitor found a finished check's model by the target's name, so
    a renamed model's results were never observed (it stayed unknown, never ready)."""
    monitor = Monitor(HealthKit.from_config(renamed(predictor.url)))
    app = create_app(monitor, show_details="always")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://health"
    ) as client:
        try:
            await client.get("/livez")  # starts the monitor
            await wait_until(lambda: all(monitor.last_result(m) for m in ("alpha", "beta")))
            assert monitor.status("alpha") is Status.HEALTHY and monitor.is_ready("alpha")
            assert monitor.status("beta") is Status.UNHEALTHY
            assert (await client.get("/v2/models/alpha/ready")).status_code == 200
            assert (await client.get("/v2/models/beta/ready")).status_code == 503
            health = (await client.get("/health")).json()
            status = (await client.get("/v1/status")).json()
        finally:
            await monitor.aclose()
    assert set(health["models"]) == {"alpha", "beta"}
    assert health["models"]["alpha"]["last"]["model"] == "alpha-v3"  # what was asked
    assert set(status["models"]) == {"alpha", "beta"}
    assert status["models"]["alpha"]["version"] == "3"
    assert predictor.requests["/v2/models/alpha-v3/versions/3/ready"] >= 1
    assert predictor.requests["/v2/models/alpha/ready"] == 0


async def test_batch_http_answers_renamed_models_from_the_index(predictor: OipServer) -> None:
    config = renamed(predictor.url, batch=True)
    del config["models"]["alpha"]["version"]  # the test server's index has no versions
    monitor = Monitor(HealthKit.from_config(config))
    try:
        await monitor.start()
        await wait_until(lambda: all(monitor.last_result(m) for m in ("alpha", "beta")))
        assert monitor.status("alpha") is Status.HEALTHY
        assert monitor.status("beta") is Status.UNHEALTHY
    finally:
        await monitor.aclose()


async def test_kit_acheck_asks_the_upstream_name(predictor: OipServer) -> None:
    async with HealthKit.from_config(renamed(predictor.url)) as kit:
        result = await kit.acheck("alpha")
    assert result.status is Status.HEALTHY
    assert result.target == Target(model="alpha-v3", version="3")


async def test_grpc_checks_the_upstream_name() -> None:
    async with serve_grpc([OipServicer({"alpha-v3": True})]) as (_, address):
        config = {
            "defaults": {
                "health_check": {
                    "strategy": "grpc",
                    "target": address,
                    "period": 60.0,
                    "jitter": 0.0,
                }
            },
            "models": {"alpha": {"upstream_model": "{model}-v3"}, "plain": {}},
        }
        monitor = Monitor(HealthKit.from_config(config))
        try:
            await monitor.start()
            await wait_until(lambda: all(monitor.last_result(m) for m in ("alpha", "plain")))
            alpha, plain = monitor.last_result("alpha"), monitor.last_result("plain")
        finally:
            await monitor.aclose()
    assert alpha is not None and alpha.status is Status.HEALTHY
    assert plain is not None and plain.status is Status.UNHEALTHY  # not found upstream
