"""``batch = true`` against a predictor whose repository index is large.

The index lists every model the predictor serves, not only the ones a config
asks about: a predictor with thousands of models must not make the models of a
small config unhealthy. The index is bounded by ``max_index_bytes`` (memory
stays bounded against a runaway upstream), and a bound truly exceeded says which
option to raise. Real predictors on 127.0.0.1 throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from _http_fault_server import FaultServer, Request, response
from _monitor_support import http_config, wait_until
from healthkit import ConfigError, HealthKit, Monitor, Status, StrategyRegistry, Target, parse_spec
from healthkit.strategies.http import HttpBatchStrategy, HttpStrategy
from healthkit.testing import OipServer
from test_http_responses import _declared_huge, _endless


@contextlib.asynccontextmanager
async def strategy_for(url: str, **options: Any) -> AsyncIterator[Any]:
    """The http strategy of ``options`` (``batch = true`` unless they say otherwise)."""
    raw = {"strategy": "http", "base_url": url, "batch": True, **options}
    config = parse_spec(raw, registry=StrategyRegistry(entry_points=False)).config
    strategy = HttpStrategy.create(config, None)  # type: ignore[arg-type]
    assert isinstance(strategy, HttpBatchStrategy) is raw["batch"]
    try:
        yield strategy
    finally:
        await strategy.aclose()


def _serving(body: bytes) -> Any:
    """A FaultServer reply: ``body`` with 200, whatever was asked."""

    async def reply(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(response(200, body))
        await writer.drain()
        return True

    return reply


def _names(count: int) -> list[str]:
    return [f"model-{i:05d}" for i in range(count)]


@pytest.fixture(scope="module")
def big_predictor() -> Iterator[OipServer]:
    """5,000 models, one of them not ready."""
    with OipServer(dict.fromkeys(_names(5000), "ready")) as server:
        server.set_state("model-00004", "not_ready")
        yield server


async def test_a_few_models_of_a_predictor_serving_5000_are_answered(
    big_predictor: OipServer,
) -> None:
    """The monitor, default caps, 10 models asked about out of the 5,000 the index lists."""
    wanted = _names(10)
    kit = HealthKit.from_config(
        http_config(big_predictor.url, [*wanted, "ghost"], batch=True, period=0.2, jitter=0.1)
    )
    monitor = Monitor(kit)
    try:
        await monitor.start()
        await wait_until(lambda: all(monitor.last_result(m) for m in [*wanted, "ghost"]))
        results = {m: monitor.last_result(m) for m in [*wanted, "ghost"]}
    finally:
        await monitor.aclose()
    details = {m: r.detail for m, r in results.items() if r is not None}
    for name in wanted:
        result = results[name]
        assert result is not None
        if name == "model-00004":
            assert result.status is Status.UNHEALTHY
            assert details[name] == "state UNAVAILABLE in repository index: not ready"
        else:
            assert result.status is Status.HEALTHY, details[name]
            assert details[name] == "READY in repository index"
    assert details["ghost"] == "model ghost not in repository index"


async def test_the_default_config_checks_2500_models_of_a_30000_model_index() -> None:
    """Default caps: 2,500 models asked about, a ~2 MiB index of 30,000 entries."""
    names = _names(30000)
    wanted = [Target(model=n) for n in names[::12]]
    assert len(wanted) == 2500
    with OipServer(dict.fromkeys(names, "ready")) as predictor:
        predictor.set_state(names[7], "not_ready")  # listed, but not asked about
        async with strategy_for(predictor.url, timeout=10.0) as strategy:
            results = await strategy.acheck_many(wanted)
    assert predictor.requests["/v2/repository/index"] == 1
    assert set(results) == set(wanted)
    unhealthy = {t.model: r.detail for t, r in results.items() if r.status is not Status.HEALTHY}
    assert unhealthy == {}, list(unhealthy.items())[:3]


async def test_an_index_over_max_index_bytes_says_which_option_to_raise(
    big_predictor: OipServer,
) -> None:
    wanted = [Target(model="model-00001"), Target(model="model-00002")]
    async with strategy_for(big_predictor.url, max_index_bytes=100_000) as strategy:
        results = await strategy.acheck_many(wanted)
    for target in wanted:
        result = results[target]
        assert result.status is Status.UNHEALTHY
        assert result.detail == (
            "repository index larger than 100000 bytes (max_index_bytes), not read: "
            "raise max_index_bytes for a predictor that serves this many models"
        )


@pytest.mark.parametrize("reply", [_endless, _declared_huge])
async def test_an_index_that_never_ends_is_cut_at_max_index_bytes(reply: Any) -> None:
    """Memory stays bounded: a chunked index without end, or one announcing 50 MB."""
    target = Target(model="m")
    with FaultServer() as server:
        server.reply = reply
        async with strategy_for(server.url, timeout=5.0) as strategy:
            result = (await strategy.acheck_many([target]))[target]
    assert result.status is Status.UNHEALTHY
    assert result.detail.startswith("repository index larger than 8388608 bytes (max_index_bytes)")
    assert result.error is None  # answered in words, not timed out


async def test_max_body_bytes_does_not_bound_the_index(big_predictor: OipServer) -> None:
    target = Target(model="model-04999")
    async with strategy_for(big_predictor.url, max_body_bytes=1024) as strategy:
        result = (await strategy.acheck_many([target]))[target]
    assert result.status is Status.HEALTHY, result.detail


@pytest.mark.parametrize("bad", [0, -1, "many", True])
def test_max_index_bytes_must_be_a_positive_integer(bad: Any) -> None:
    registry = StrategyRegistry(entry_points=False)
    with pytest.raises(ConfigError) as caught:
        HealthKit.from_config(
            {
                "defaults": {
                    "health_check": {
                        "strategy": "http",
                        "base_url": "http://predictor:8080",
                        "batch": True,
                        "max_index_bytes": bad,
                    }
                },
                "models": {"alpha": {}},
            },
            registry=registry,
        )
    [issue] = caught.value.issues
    assert issue.path == "defaults.health_check.max_index_bytes", issue


async def test_a_deeply_nested_index_is_unhealthy_not_an_exception() -> None:
    """JSON nested deeper than the decoder's recursion limit is a reason, not a crash."""
    body = json.dumps([{"name": "m", "state": "READY"}]).encode()
    deep = b"[" * 30_000  # within the old per-model cap too
    with FaultServer() as server:
        async with strategy_for(server.url) as strategy:
            for payload, healthy in ((body, True), (deep, False)):
                server.reply = _serving(payload)
                result = (await strategy.acheck_many([Target(model="m")]))[Target(model="m")]
                assert (result.status is Status.HEALTHY) is healthy, result.detail
    assert result.detail == "repository index: body nested too deeply to read (HTTP 200)"


async def test_a_deeply_nested_v1_body_is_unhealthy_not_an_exception() -> None:
    with FaultServer() as server:
        server.reply = _serving(b"[" * 60_000)  # under max_body_bytes
        async with strategy_for(server.url, protocol="v1", batch=False) as strategy:
            result = await strategy.acheck(Target(model="m"))
    assert result.status is Status.UNHEALTHY
    assert result.detail == "body nested too deeply to read (HTTP 200)"
