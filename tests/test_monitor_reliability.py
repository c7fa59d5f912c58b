"""Readiness never waits on a hung upstream once a model is known; staleness is bounded;
observation hooks for watchdogs; a check that swallows cancellation never holds the monitor."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import sys
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from _monitor_support import ScriptedPlugin, healthy, http_config, wait_until
from healthkit import CheckResult, HealthKit, Monitor, Status, StrategyRegistry, Target, load_config
from healthkit.asgi import create_app
from healthkit.kserve import KServeHealth
from healthkit.testing import OipServer

if TYPE_CHECKING:
    from healthkit._monitor import CheckEvent

# A hung predictor answers after this long: far beyond any bound a test waits.
HUNG = 30.0


@pytest.fixture
def predictor() -> Iterator[OipServer]:
    with OipServer({"iris": "ready", "alpha": "ready"}) as server:
        yield server
        server.delay = 0.0


@pytest.fixture(scope="module")
def kserve() -> Iterator[ModuleType]:
    if importlib.util.find_spec("kserve") is None:  # pragma: no cover
        pytest.skip("needs kserve")
    saved = sys.argv
    sys.argv = [saved[0]]  # importing kserve parses sys.argv
    try:
        module = importlib.import_module("kserve")
        importlib.import_module("kserve.protocol.dataplane")
    finally:
        sys.argv = saved
    yield module


def model(kserve: ModuleType, name: str) -> Any:
    m = kserve.Model(name)
    m.ready = True
    return m


@pytest.fixture
async def plane(kserve: ModuleType, predictor: OipServer) -> AsyncIterator[KServeHealth]:
    registry = StrategyRegistry(entry_points=False, disabled=())
    config = load_config(
        {
            "defaults": {
                "health_check": {
                    "strategy": "http",
                    "base_url": predictor.url,
                    # Long enough that waiting for a check cannot pass for answering from memory.
                    "timeout": 20.0,
                    "cache_ttl": 0.05,
                    "period": 60.0,
                }
            }
        },
        registry=registry,
    )
    repository = kserve.model_repository.ModelRepository()
    repository.update(model(kserve, "iris"))
    inner = kserve.protocol.dataplane.DataPlane(model_registry=repository)
    health = KServeHealth(inner, config, registry=registry)
    try:
        yield health
    finally:
        await health.aclose()


async def test_kserve_readiness_answers_from_memory_while_the_predictor_hangs(
    plane: KServeHealth, predictor: OipServer
) -> None:
    assert await plane.model_ready("iris") is True  # no result yet: one shared check
    predictor.delay = HUNG
    path = "/v2/models/iris/ready"
    before = predictor.requests[path]
    for _ in range(5):
        await asyncio.sleep(0.06)  # past cache_ttl: every answer finds its result expired
        # Before stale-while-revalidate each of these waited for a check (20 s here).
        assert await asyncio.wait_for(plane.model_ready("iris"), 5.0) is True
        assert await asyncio.wait_for(plane.ready(), 5.0) is True
    # One background revalidation, shared by every answer, is hung upstream.
    await wait_until(lambda: predictor.requests[path] == before + 1)
    assert plane.monitor is not None and plane.monitor.stats().in_flight == 1


async def test_past_max_stale_a_model_is_unknown_never_a_stale_healthy(
    predictor: OipServer,
) -> None:
    config = http_config(
        predictor.url, ["alpha"], timeout=20.0, cache_ttl=0.05, period=60.0, max_stale=1.0
    )
    monitor = Monitor(HealthKit.from_config(config))
    try:
        assert await monitor.aready("alpha") is True
        assert monitor.server_ready() and not monitor.is_stale("alpha")
        predictor.delay = HUNG  # the revalidation hangs: no newer result will come
        await asyncio.sleep(0.06)
        assert await monitor.aready("alpha") is True  # known and not stale yet
        await wait_until(lambda: monitor.is_stale("alpha"))
        assert await asyncio.wait_for(monitor.aready("alpha"), 5.0) is False
        assert await asyncio.wait_for(monitor.aserver_ready(), 5.0) is False
        assert monitor.status("alpha") is Status.UNKNOWN
        assert monitor.stats().ready == 0
        # Still one revalidation in flight: staleness costs the predictor nothing more.
        assert predictor.requests["/v2/models/alpha/ready"] == 2
    finally:
        await monitor.aclose()


async def test_asgi_readiness_answers_from_memory_while_the_predictor_hangs(
    predictor: OipServer,
) -> None:
    import httpx

    config = http_config(
        predictor.url, ["alpha"], timeout=20.0, cache_ttl=0.05, period=60.0, jitter=0.0
    )
    monitor = Monitor(HealthKit.from_config(config))
    transport = httpx.ASGITransport(app=create_app(monitor))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://h") as client:
            first = await client.get("/v2/models/alpha/ready")
            assert first.status_code == 200
            predictor.delay = HUNG
            for _ in range(5):
                await asyncio.sleep(0.06)
                response = await asyncio.wait_for(client.get("/v2/models/alpha/ready"), 5.0)
                assert response.json() == {"name": "alpha", "ready": True}
            assert monitor.stats().in_flight == 1  # the one shared revalidation
    finally:
        await monitor.aclose()


def test_max_stale_default_covers_the_thresholds_and_is_configurable() -> None:
    raw = http_config("http://p:1", ["a", "b"], period=10.0, timeout=1.0)
    raw["models"]["b"] = {"health_check": {"max_stale": 7.5}}
    registry = StrategyRegistry()
    config = load_config(raw, registry=registry)
    a, b = config.models["a"].monitor, config.models["b"].monitor
    assert a.max_stale is None
    assert a.stale_after(1.1) == pytest.approx(3 * (10.0 + 1.1))
    assert b.max_stale == 7.5 and b.stale_after(1.1) == 7.5
    with pytest.raises(Exception, match=r"max_stale.*must be > 0"):
        load_config(http_config("http://p:1", ["a"], max_stale=0), registry=registry)


# -- observation hooks --------------------------------------------------------------------


async def test_check_listeners_task_names_progress_and_overdue() -> None:
    plugin = ScriptedPlugin()
    names: list[str] = []
    gate = asyncio.Event()

    async def slow(target: Target) -> CheckResult:
        task = asyncio.current_task()
        assert task is not None
        names.append(task.get_name())
        await gate.wait()
        return healthy(target)

    plugin.behaviours["slow"] = slow
    registry = plugin.registry()
    raw = {
        "models": {
            m: {"health_check": {"strategy": "scripted", "script": "slow", "period": 0.05}}
            for m in ("a", "b")
        }
    }
    monitor = Monitor(
        HealthKit(load_config(raw, registry=registry), registry=registry), max_in_flight=1
    )
    events: list[CheckEvent] = []
    monitor.add_check_listener(events.append)
    assert monitor.last_progress == float("-inf")
    try:
        await monitor.start()
        started = monitor.last_progress
        assert started > float("-inf")
        await wait_until(lambda: len(names) == 1)
        assert names == ["healthkit check scripted a"] or names == ["healthkit check scripted b"]
        # One check holds the only slot: the other model's probe waits, and falls late.
        await wait_until(lambda: monitor.overdue() == 1)
        gate.set()
        await wait_until(lambda: len(events) >= 2)
        assert monitor.last_progress > started
        assert {e.model for e in events[:2]} == {"a", "b"}
        assert all(e.strategy == "scripted" and not e.batch and e.targets == 1 for e in events)
        assert monitor.overdue() == 0
        monitor.remove_check_listener(events.append)
    finally:
        gate.set()
        await monitor.aclose()


# -- a check that swallows cancellation ------------------------------------------------------


async def test_a_check_that_swallows_cancellation_never_holds_an_answer_or_close() -> None:
    plugin = ScriptedPlugin()
    release = asyncio.Event()
    calls = 0

    async def stubborn(target: Target) -> CheckResult:
        nonlocal calls
        calls += 1
        if calls == 1:
            return healthy(target)
        while not release.is_set():
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                continue  # rude: ignores cancellation and keeps sleeping
        return healthy(target)

    plugin.behaviours["stubborn"] = stubborn
    registry = plugin.registry()
    settings = {"strategy": "scripted", "script": "stubborn", "timeout": 0.2, "cache_ttl": 0.0}
    raw: dict[str, Any] = {"models": {"m": {"health_check": {**settings, "period": 60.0}}}}
    monitor = Monitor(HealthKit(load_config(raw, registry=registry), registry=registry))
    try:
        assert (await monitor.acheck("m")).status is Status.HEALTHY
        # Every answer path is bounded while stubborn checks run and after they are cut.
        assert await asyncio.wait_for(monitor.aready("m"), 2.0) is True  # from memory
        assert calls == 2  # ... and it started the background revalidation
        cut = await asyncio.wait_for(monitor.acheck("m"), 2.0)  # joins it: cut at its deadline
        assert "timed out" in cut.detail
        # One failure of three: still ready, answered at once, revalidated again.
        assert await asyncio.wait_for(monitor.aserver_ready(), 2.0) is True
        assert calls == 3
        await asyncio.wait_for(monitor.aclose(), 5.0)  # abandons them after a bounded grace
        assert monitor.closed
    finally:
        release.set()  # lets the abandoned check end, so nothing leaks past the test
        await monitor.aclose()
        await asyncio.sleep(0.1)
