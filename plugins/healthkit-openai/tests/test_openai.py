"""The ``openai`` strategy against a real OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from healthkit_openai import OpenAIConfig, OpenAIStrategy
from openai_fake_server import OpenAIServer

from healthkit import (
    ConfigError,
    HealthKit,
    Resolver,
    Status,
    StrategyRegistry,
    Target,
    load_config,
    parse_spec,
)

KEY = "sk-test-abcdefghijklmnop"


async def check(target: Target, **options: Any) -> Any:
    strategy = OpenAIStrategy(OpenAIConfig(**options))
    try:
        return await strategy.acheck(target)
    finally:
        await strategy.aclose()


@pytest.fixture
def keyed_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIServer]:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server = OpenAIServer(["alpha"], api_key=KEY).start()
    try:
        yield server
    finally:
        server.stop()


async def test_a_served_model_is_healthy(openai_server: OpenAIServer) -> None:
    result = await check(Target(model="alpha"), base_url=openai_server.url)
    assert result.status is Status.HEALTHY, result.detail
    assert result.detail == "/health ok; model 'alpha' is served"
    assert openai_server.requests == {"/health": 1, "/v1/models": 1}


async def test_a_model_not_served_is_unhealthy(openai_server: OpenAIServer) -> None:
    result = await check(Target(model="gamma"), base_url=openai_server.url)
    assert result.status is Status.UNHEALTHY
    assert result.detail == "/health ok; model 'gamma' is not served (served: alpha, beta)"


async def test_the_server_as_a_whole(openai_server: OpenAIServer) -> None:
    result = await check(Target(), base_url=openai_server.url)
    assert result.status is Status.HEALTHY
    assert result.detail == "/health ok; 2 model(s) served"


async def test_an_unhealthy_server_is_not_asked_for_models(openai_server: OpenAIServer) -> None:
    openai_server.health_status = 503
    result = await check(Target(model="alpha"), base_url=openai_server.url)
    assert result.status is Status.UNHEALTHY
    assert result.detail == "GET /health: not ready (HTTP 503)"
    assert openai_server.requests == {"/health": 1}


@pytest.mark.parametrize(
    ("endpoints", "asked"),
    [
        (["models"], {"/v1/models": 1}),
        (["health"], {"/health": 1}),
        (["models", "health"], {"/health": 1, "/v1/models": 1}),
    ],
)
async def test_endpoints_choose_what_is_asked(
    openai_server: OpenAIServer, endpoints: list[str], asked: dict[str, int]
) -> None:
    result = await check(Target(model="alpha"), base_url=openai_server.url, endpoints=endpoints)
    assert result.status is Status.HEALTHY, result.detail
    assert openai_server.requests == asked


async def test_the_api_key_comes_from_the_environment_and_is_never_shown(
    keyed_server: OpenAIServer,
) -> None:
    config = OpenAIConfig(base_url=keyed_server.url, api_key_env="OPENAI_API_KEY")
    strategy = OpenAIStrategy(config)
    try:
        result = await strategy.acheck(Target(model="alpha"))
        texts = [repr(config), repr(strategy), repr(result), json.dumps(result.to_dict())]
    finally:
        await strategy.aclose()
    assert result.status is Status.HEALTHY, result.detail
    assert keyed_server.authorizations == [f"Bearer {KEY}"] * 2
    assert not [t for t in texts if KEY in t]


async def test_a_rejected_key_is_unhealthy_and_says_where_it_came_from(
    keyed_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-000000")
    result = await check(
        Target(model="alpha"), base_url=keyed_server.url, api_key_env="OPENAI_API_KEY"
    )
    assert result.status is Status.UNHEALTHY
    assert result.detail == "GET /health: unauthorized (HTTP 401); check the key in $OPENAI_API_KEY"
    without = await check(Target(model="alpha"), base_url=keyed_server.url)
    assert without.detail.endswith("the server wants an API key (set api_key_env)")


def test_an_unset_key_variable_is_a_config_error_with_its_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HK_MISSING_KEY", raising=False)
    with pytest.raises(ConfigError) as info:
        load_config(
            {
                "models": {
                    "m": {
                        "health_check": {
                            "strategy": "openai",
                            "base_url": "http://vllm:8000",
                            "api_key_env": "HK_MISSING_KEY",
                        }
                    }
                }
            },
            registry=StrategyRegistry(),
        )
    assert (
        "models.m.health_check.api_key_env: environment variable 'HK_MISSING_KEY' is not set"
        in str(info.value)
    )


async def test_kserve_style_prefix_and_paths() -> None:
    server = OpenAIServer(["llama"], prefix="/openai").start()
    try:
        result = await check(Target(model="llama"), base_url=server.url, endpoints=["models"])
        assert result.status is Status.HEALTHY, result.detail
        assert server.requests == {"/openai/v1/models": 1}
        custom = await check(
            Target(model="llama"),
            base_url=f"http://127.0.0.1:{server.port}",
            health_path="/openai/health",
            models_path="/openai/v1/models",
        )
        assert custom.status is Status.HEALTHY, custom.detail
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"<html>oops</html>", "GET /v1/models: body is not JSON"),
        (b'{"object": "list"}', "GET /v1/models: body has no 'data' list"),
    ],
)
async def test_a_malformed_model_list_is_unhealthy(
    openai_server: OpenAIServer, body: bytes, detail: str
) -> None:
    openai_server.models_body = body
    result = await check(Target(model="alpha"), base_url=openai_server.url, endpoints=["models"])
    assert result.status is Status.UNHEALTHY
    assert result.detail == detail


async def test_a_model_list_over_max_body_bytes_is_unhealthy_and_not_read(
    openai_server: OpenAIServer,
) -> None:
    listing = [{"id": f"model-{i}", "object": "model"} for i in range(100)]
    openai_server.models_body = json.dumps({"object": "list", "data": listing}).encode()
    small = await check(Target(model="model-1"), base_url=openai_server.url, max_body_bytes=1000)
    assert small.status is Status.UNHEALTHY
    assert small.detail == (
        "/health ok; GET /v1/models: body larger than 1000 bytes (max_body_bytes), not read"
    )
    default = await check(Target(model="model-1"), base_url=openai_server.url)
    assert default.status is Status.HEALTHY, default.detail


async def test_both_requests_share_one_timeout(openai_server: OpenAIServer) -> None:
    # Each answer alone is in time, the two together are not: the monitor's deadline is
    # one `timeout`, so the check must give up by then, with its own reason.
    openai_server.delay = 0.3
    result = await check(Target(model="alpha"), base_url=openai_server.url, timeout=0.5)
    assert result.status is Status.UNHEALTHY
    assert result.detail.startswith("/health ok; GET /v1/models: timed out after 0.5s"), result


async def test_a_refused_connection_is_unhealthy(healthkit_refused_url: str) -> None:
    result = await check(Target(model="alpha"), base_url=healthkit_refused_url)
    assert result.status is Status.UNHEALTHY
    assert result.detail == "GET /health: connection failed: connection refused"
    assert result.error is not None and result.error.type == "ConnectError"


async def test_one_pair_of_requests_answers_many_models(openai_server: OpenAIServer) -> None:
    strategy = OpenAIStrategy(OpenAIConfig(base_url=openai_server.url))
    targets = [Target(model=f"m{i}") for i in range(50)] + [Target(model="alpha")]
    try:
        results = await strategy.acheck_many(targets)
    finally:
        await strategy.aclose()
    assert openai_server.requests == {"/health": 1, "/v1/models": 1}
    assert results[Target(model="alpha")].status is Status.HEALTHY
    assert sum(r.status is Status.UNHEALTHY for r in results.values()) == 50


async def test_models_sharing_a_config_share_one_client_and_connection(
    openai_server: OpenAIServer,
) -> None:
    registry = StrategyRegistry()
    one = parse_spec({"strategy": "openai", "base_url": openai_server.url}, registry=registry)
    two = parse_spec(
        {
            "base_url": openai_server.url + "/",
            "strategy": "openai",
            "endpoints": ["models", "health"],
        },
        registry=registry,
    )
    resolver = Resolver(registry)
    try:
        a = resolver.acquire("alpha", one)
        b = resolver.acquire("beta", two)
        assert a is b
        for model in ("alpha", "beta", "alpha", "beta"):
            assert (await a.acheck(Target(model=model))).status is Status.HEALTHY
    finally:
        await resolver.aclose()
    # Eight requests over one kept-alive connection of the one shared client.
    assert len(set(openai_server.client_ports)) == 1
    assert openai_server.total == 8


async def test_usable_by_name_through_the_facade(openai_server: OpenAIServer) -> None:
    config = {
        "defaults": {"health_check": {"strategy": "openai", "base_url": openai_server.url}},
        "models": {"alpha": {}, "beta": {}, "gamma": {}},
    }
    kit = HealthKit.from_config(config)
    try:
        report = await kit.acheck_all()
    finally:
        await kit.aclose()
    statuses = {name: r.status for name, r in report.results.items()}
    assert statuses == {"alpha": Status.HEALTHY, "beta": Status.HEALTHY, "gamma": Status.UNHEALTHY}


def test_registered_through_its_entry_point() -> None:
    stype = StrategyRegistry().get("openai")
    assert stype.distribution == "healthkit-openai"
    assert stype.config_class is OpenAIConfig


async def test_a_served_name_checked_as_a_vllm_model_id_with_a_slash() -> None:
    # vLLM's default model ids carry the organisation: upstream_model may hold a '/'.
    server = OpenAIServer(["meta-llama/Llama-3.1-8B-Instruct"]).start()
    try:
        raw = {
            "models": {
                "llama": {
                    "upstream_model": "meta-llama/Llama-3.1-8B-Instruct",
                    "health_check": {"strategy": "openai", "base_url": server.url},
                },
                "other": {
                    "upstream_model": "meta-llama/Other",
                    "health_check": {"strategy": "openai", "base_url": server.url},
                },
            }
        }
        async with HealthKit.from_config(raw) as kit:
            served = await kit.acheck("llama")
            missing = await kit.acheck("other")
        assert served.status is Status.HEALTHY, served.detail
        assert served.target.model == "meta-llama/Llama-3.1-8B-Instruct"
        assert missing.status is Status.UNHEALTHY, missing.detail
    finally:
        server.stop()
