"""The ``HealthKit`` facade: async API and its sync twin, the ``check_all`` concurrency cap,
unknown models, use after close, and strategies that raise, hang or return garbage.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from healthkit import (
    CheckResult,
    ClosedError,
    HealthKit,
    HealthReport,
    ResolverStats,
    Status,
    StrategyRegistry,
    Target,
    load_config,
)
from healthkit.testing import OipServer


def _kit(registry: StrategyRegistry, models: dict[str, Any], **defaults: Any) -> HealthKit:
    raw: dict[str, Any] = {"models": models}
    if defaults:
        raw["defaults"] = {"health_check": defaults}
    return HealthKit(load_config(raw, registry=registry), registry=registry)


def _rec(behaviour: str = "healthy", key: int = 0, **kw: Any) -> dict[str, Any]:
    return {"health_check": {"strategy": "rec", "behaviour": behaviour, "key": key, **kw}}


# -- async API ---------------------------------------------------------------------------------


async def test_async_api_against_a_real_server(
    registry: StrategyRegistry, oip_server: OipServer
) -> None:
    models = {"alpha": {"version": "2"}, "beta": {}, "off": {"health_check": {"strategy": "noop"}}}
    hk = _kit(registry, models, strategy="http", base_url=oip_server.url)
    async with hk:
        assert hk.stats() == ResolverStats(models=3, instances=2)
        alpha = await hk.acheck("alpha")
        assert (alpha.status, alpha.target) == (Status.HEALTHY, Target(model="alpha", version="2"))
        assert oip_server.requests["/v2/models/alpha/versions/2/ready"] == 1
        other = await hk.acheck("alpha", version="7")
        assert other.target.version == "7"
        report = await hk.acheck_all()
        assert isinstance(report, HealthReport)
        assert report.status is Status.UNHEALTHY  # beta is not ready
        assert {n: r.status for n, r in report.results.items()} == {
            "alpha": Status.HEALTHY,
            "beta": Status.UNHEALTHY,
            "off": Status.HEALTHY,
        }
        data = json.loads(json.dumps(report.to_dict()))
        assert data["status"] == "unhealthy"
        assert data["resolver"] == {"models": 3, "instances": 2}
        assert data["models"]["beta"]["detail"] == "not ready (HTTP 503)"
        assert set(data["models"]["alpha"]) >= {"status", "strategy", "latency_ms", "detail"}
        assert repr(hk) == "<HealthKit models=3 instances=2>"
        client = hk.resolver.get("alpha").client  # type: ignore[attr-defined]
    assert client.is_closed
    assert hk.stats() == ResolverStats(models=0, instances=0)


async def test_instances_are_created_on_first_use(
    rec_registry: StrategyRegistry, recorder: Any
) -> None:
    hk = _kit(rec_registry, {"a": _rec(key=1), "b": _rec(key=2)})
    assert recorder.created == []
    assert hk.stats() == ResolverStats(models=0, instances=0)
    try:
        await hk.acheck("a")
        assert len(recorder.created) == 2
    finally:
        await hk.aclose()
    assert [i.closes for i in recorder.created] == [1, 1]


async def test_unknown_model_is_a_key_error(rec_registry: StrategyRegistry) -> None:
    async with _kit(rec_registry, {"a": _rec()}) as hk:
        with pytest.raises(KeyError, match="unknown model 'nope'"):
            await hk.acheck("nope")
        assert (await hk.acheck("a")).status is Status.HEALTHY


async def test_use_after_close_is_a_closed_error(rec_registry: StrategyRegistry) -> None:
    hk = _kit(rec_registry, {"a": _rec()})
    await hk.acheck("a")
    await hk.aclose()
    await hk.aclose()  # idempotent
    with pytest.raises(ClosedError):
        await hk.acheck("a")
    with pytest.raises(ClosedError):
        await hk.acheck_all()
    with pytest.raises(ClosedError):
        await hk.areload(hk.config)


@pytest.mark.parametrize(
    ("behaviour", "detail", "error_type"),
    [
        ("raise", "check raised RuntimeError: rec exploded", "RuntimeError"),
        ("hang", "check timed out after ", "TimeoutError"),
        ("garbage", "strategy returned str, not a CheckResult", "TypeError"),
    ],
)
async def test_misbehaving_strategy_gives_an_unhealthy_result(
    rec_registry: StrategyRegistry, behaviour: str, detail: str, error_type: str
) -> None:
    # ``timeout`` is the monitor deadline here (rec has no timeout of its own)
    async with _kit(rec_registry, {"bad": _rec(behaviour, timeout=0.1), "good": _rec()}) as hk:
        result = await hk.acheck("bad")
        report = await hk.acheck_all()
    assert isinstance(result, CheckResult)
    assert result.status is Status.UNHEALTHY
    assert result.strategy == "rec"
    assert result.target == Target(model="bad")
    assert detail in result.detail
    assert result.error is not None and result.error.type == error_type
    assert report.results["bad"].status is Status.UNHEALTHY
    assert report.results["good"].status is Status.HEALTHY
    print(f"{behaviour}: unhealthy after {result.latency:.3f}s")


# -- check_all concurrency cap ---------------------------------------------------------------------


@pytest.mark.parametrize(("cap", "models", "expected"), [(1, 6, 1), (3, 12, 3), (64, 10, 10)])
async def test_check_all_respects_the_concurrency_cap(
    rec_registry: StrategyRegistry, recorder: Any, cap: int, models: int, expected: int
) -> None:
    # every model shares one instance, which counts checks in flight
    config = {f"m{i}": _rec(delay=0.03) for i in range(models)}
    async with _kit(rec_registry, config) as hk:
        report = await hk.acheck_all(concurrency=cap)
    assert len(report.results) == models
    assert report.status is Status.HEALTHY
    assert len(recorder.created) == 1
    assert recorder.created[0].checks == models
    assert recorder.max_in_flight == expected


async def test_check_all_rejects_a_bad_cap(rec_registry: StrategyRegistry) -> None:
    async with _kit(rec_registry, {"a": _rec()}) as hk:
        with pytest.raises(ValueError, match="concurrency must be >= 1, got 0"):
            await hk.acheck_all(concurrency=0)


async def test_check_all_of_no_models_is_healthy(rec_registry: StrategyRegistry) -> None:
    async with _kit(rec_registry, {}) as hk:
        report = await hk.acheck_all()
    assert report.status is Status.HEALTHY
    assert report.results == {}


# -- sync facade --------------------------------------------------------------------------------


def test_sync_api(tmp_path: Path, rec_registry: StrategyRegistry, recorder: Any) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[models.a.health_check]\nstrategy = "rec"\nkey = 1\n'
        '[models.b.health_check]\nstrategy = "rec"\nkey = 2\nbehaviour = "degraded"\n'
    )
    with HealthKit.from_config(path, registry=rec_registry) as hk:
        assert hk.models == ["a", "b"]
        assert hk.config.source == str(path)
        assert hk.registry is rec_registry
        assert hk.check("a").status is Status.HEALTHY
        report = hk.check_all(concurrency=1)
        assert report.status is Status.DEGRADED
        new = load_config({"models": {"a": _rec(key=1), "c": _rec(key=3)}}, registry=rec_registry)
        plan = hk.reload(new)
        assert (plan.unchanged, plan.added, plan.removed) == (("a",), ("c",), ("b",))
        assert hk.models == ["a", "c"]
        assert hk.check("c").detail == "key 3"
        with pytest.raises(KeyError):
            hk.check("b")
    assert [i.closes for i in recorder.created] == [1, 1, 1]
    hk.close()  # idempotent
    with pytest.raises(ClosedError):
        hk.check("a")
    with pytest.raises(ClosedError):
        hk.check_all()
    with pytest.raises(ClosedError):
        hk.reload(new)


def test_sync_close_without_use(rec_registry: StrategyRegistry) -> None:
    hk = _kit(rec_registry, {"a": _rec()})
    hk.close()
    with pytest.raises(ClosedError):
        hk.check("a")


async def test_sync_methods_refuse_a_running_loop(rec_registry: StrategyRegistry) -> None:
    hk = _kit(rec_registry, {"a": _rec()})
    try:
        with pytest.raises(RuntimeError, match="use the async methods"):
            hk.check("a")
        with pytest.raises(RuntimeError, match="use the async methods"):
            hk.check_all()
    finally:
        await hk.aclose()


def test_sync_check_of_a_hanging_strategy(rec_registry: StrategyRegistry) -> None:
    with _kit(rec_registry, {"h": _rec("hang", timeout=0.05)}) as hk:
        result = hk.check("h")
    assert result.status is Status.UNHEALTHY
    assert result.error is not None and result.error.type == "TimeoutError"


async def test_concurrent_checks_from_many_tasks(
    rec_registry: StrategyRegistry, recorder: Any
) -> None:
    async with _kit(rec_registry, {f"m{i}": _rec(delay=0.01) for i in range(30)}) as hk:
        results = await asyncio.gather(*(hk.acheck(f"m{i % 30}") for i in range(90)))
    assert all(r.status is Status.HEALTHY for r in results)
    assert len(recorder.created) == 1
    assert recorder.created[0].checks == 90
