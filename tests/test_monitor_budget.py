"""The in-flight budget: bounded waits for a slot, outage detection per upstream, fairness."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from _monitor_support import ScriptedPlugin, healthy, http_config, wait_until
from healthkit import CheckResult, HealthKit, Monitor, Status, Target, load_config
from healthkit.testing import OipServer

#: A hung predictor answers after this long: far beyond any bound a test waits.
HUNG = 30.0


def scripted(plugin: ScriptedPlugin, models: dict[str, dict[str, Any]], **kw: Any) -> Monitor:
    registry = plugin.registry()
    raw = {
        "models": {m: {"health_check": {"strategy": "scripted", **s}} for m, s in models.items()}
    }
    return Monitor(HealthKit(load_config(raw, registry=registry), registry=registry), **kw)


async def test_waiting_for_a_budget_slot_is_bounded_by_the_checks_deadline() -> None:
    plugin = ScriptedPlugin()
    hold = asyncio.Event()

    async def hog(target: Target) -> CheckResult:
        await hold.wait()
        return healthy(target)

    async def quick(target: Target) -> CheckResult:
        return healthy(target)

    plugin.behaviours.update(hog=hog, quick=quick)
    monitor = scripted(
        plugin,
        {
            "hog": {"script": "hog", "timeout": 30.0},
            "x": {"script": "quick", "timeout": 0.2},
        },
        max_in_flight=1,
    )
    try:
        hogging = asyncio.ensure_future(monitor.acheck("hog"))
        await wait_until(lambda: plugin.concurrent == 1)
        # x's check queues behind the hog for the only slot; its caller must not wait 30 s.
        result = await asyncio.wait_for(monitor.acheck("x"), 5.0)
        assert result.status is Status.UNKNOWN
        assert "waiting for a budget slot (1 checks queued, max_in_flight 1)" in result.detail
        assert plugin.calls.get(Target(model="x"), 0) == 0
        hold.set()
        await hogging
        # The queued check still ran once its turn came, and its result is kept.
        await wait_until(lambda: monitor.last_result("x") is not None)
        assert monitor.status("x") is Status.HEALTHY
    finally:
        hold.set()
        await monitor.aclose()


async def test_queue_serves_the_oldest_result_first() -> None:
    plugin = ScriptedPlugin()
    hold = asyncio.Event()
    order: list[str] = []

    async def hog(target: Target) -> CheckResult:
        await hold.wait()
        return healthy(target)

    async def quick(target: Target) -> CheckResult:
        assert target.model is not None
        order.append(target.model)
        return healthy(target)

    plugin.behaviours.update(hog=hog, quick=quick)
    settings = {"script": "quick", "cache_ttl": 0.0}
    monitor = scripted(
        plugin,
        {"hog": {"script": "hog", "timeout": 30.0}, "old": settings, "new": settings},
        max_in_flight=1,
    )
    try:
        await monitor.acheck("old")
        await asyncio.sleep(0.01)
        await monitor.acheck("new")  # "new" has the younger result
        order.clear()
        hogging = asyncio.ensure_future(monitor.acheck("hog"))
        await wait_until(lambda: plugin.concurrent == 1)
        # "new" asks first, but "old" has waited longer for a fresh result: it goes first.
        waiting = [asyncio.ensure_future(monitor.acheck(m)) for m in ("new", "old")]
        await asyncio.sleep(0.01)
        hold.set()
        await asyncio.gather(hogging, *waiting)
        await wait_until(lambda: len(order) == 2)
        assert order == ["old", "new"]
    finally:
        hold.set()
        await monitor.aclose()


async def test_no_model_starves_when_the_budget_is_short() -> None:
    plugin = ScriptedPlugin()

    async def slowish(target: Target) -> CheckResult:
        await asyncio.sleep(0.005)
        return healthy(target)

    plugin.behaviours["slowish"] = slowish
    # 30 models want a check every 10 ms; one slot serves about 200 a second.
    models = {f"m{i}": {"script": "slowish", "period": 0.01, "jitter": 0.0} for i in range(30)}
    monitor = scripted(plugin, models, max_in_flight=1)
    try:
        await monitor.start()
        await wait_until(lambda: all(monitor.last_result(m) for m in models), timeout=10.0)
        counts_before = dict(plugin.calls)
        await asyncio.sleep(1.0)
        served = {t.model: plugin.calls[t] - counts_before.get(t, 0) for t in plugin.calls}
        assert min(served.values()) >= 1, served
        # Round robin by result age: nobody gets more than about twice anybody's share.
        assert max(served.values()) <= 2 * min(served.values()) + 2, served
    finally:
        await monitor.aclose()


# -- outage detection ----------------------------------------------------------------------


@pytest.fixture
def predictor() -> Iterator[OipServer]:
    with OipServer({f"m{i}": "ready" for i in range(1000)}) as server:
        yield server
        server.delay = 0.0


async def test_a_hung_predictor_is_seen_for_all_its_models_whatever_the_budget(
    predictor: OipServer,
) -> None:
    # A period this machine's loopback server can serve for 1,000 models (else results
    # age past max_stale and readiness rightly turns unknown before any hang).
    period, timeout, failure_threshold = 5.0, 0.2, 3
    names = [f"m{i}" for i in range(1000)]
    config = http_config(
        predictor.url,
        names,
        period=period,
        timeout=timeout,
        failure_threshold=failure_threshold,
        jitter=0.0,
        cache_ttl=0.0,
    )
    # Eight slots: one round of 1,000 hung checks would take 1,000 x 0.22 s / 8 = 27 s.
    monitor = Monitor(HealthKit.from_config(config), max_in_flight=8)
    try:
        await monitor.start()
        await wait_until(lambda: monitor.stats().ready == 1000, timeout=30.0)
        predictor.delay = HUNG
        # The promise: within failure_threshold x (timeout + period), plus scheduling slack.
        await wait_until(
            lambda: monitor.stats().ready == 0, timeout=failure_threshold * (timeout + period) + 1.5
        )
        assert monitor.stats().outages == 1
        assert all(monitor.upstream_down(n) for n in names)
        details = {monitor.last_result(n).detail for n in names[::50]}  # type: ignore[union-attr]
        assert any(d.startswith("upstream unreachable: ") for d in details), details
        assert any("timed out" in d for d in details), details  # which check proved it
        # Half-open: once the checks already running end, a probe at a time, not 1,000.
        await wait_until(lambda: monitor.stats().in_flight <= 1, timeout=2.0)
        for _ in range(20):
            assert monitor.stats().in_flight <= 1
            await asyncio.sleep(0.02)
        # Recovery: each model turns ready on its own fresh success, promptly.
        predictor.delay = 0.0
        await wait_until(lambda: monitor.stats().ready == 1000, timeout=20.0)
        assert not monitor.upstream_down("m0")
    finally:
        predictor.delay = 0.0
        await monitor.aclose()


async def test_plain_not_ready_answers_never_mark_the_upstream_down() -> None:
    with OipServer({f"m{i}": "not_ready" for i in range(20)}) as server:
        config = http_config(
            server.url, [f"m{i}" for i in range(20)], period=0.05, jitter=0.0, failure_threshold=1
        )
        monitor = Monitor(HealthKit.from_config(config), max_in_flight=4)
        try:
            await monitor.start()
            await wait_until(lambda: all(monitor.last_result(f"m{i}") for i in range(20)))
            await asyncio.sleep(0.2)
            assert monitor.stats().outages == 0
            assert not monitor.upstream_down("m0")
            assert monitor.last_result("m0").detail == "not ready (HTTP 503)"  # type: ignore[union-attr]
        finally:
            await monitor.aclose()
