"""``isolation = "thread"``: a blocking check runs on a worker loop, never freezing the caller's."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import attrs
import pytest

from healthkit import (
    CheckResult,
    ConfigError,
    HealthKit,
    Resolver,
    Status,
    StrategyCreationError,
    StrategyRegistrar,
    StrategyRegistry,
    Target,
    hookimpl,
    load_config,
)
from healthkit.toolkit import guarded_check


@attrs.frozen(kw_only=True)
class BlockConfig:
    timeout: float = 1.0


class Blocking:
    """Blocks its thread (``threading.Event.wait``) until released: a stand-in for time.sleep."""

    def __init__(self, entered: threading.Event, released: threading.Event) -> None:
        self.entered = entered
        self.released = released
        self.finished = threading.Event()
        self.loops: list[asyncio.AbstractEventLoop] = []
        self.created_on = asyncio.get_running_loop()
        self.closed_on: asyncio.AbstractEventLoop | None = None

    async def acheck(self, target: Target) -> CheckResult:
        self.loops.append(asyncio.get_running_loop())
        self.entered.set()
        self.released.wait(10)  # the bug under test: a blocking call in acheck
        self.finished.set()
        return CheckResult(status=Status.HEALTHY, strategy="blocking", target=target)

    async def aclose(self) -> None:
        self.closed_on = asyncio.get_running_loop()


class Plugin:
    __name__ = "isolation-test-plugin"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        self.created: list[Blocking] = []

    @hookimpl
    def healthkit_register_strategies(self, registrar: StrategyRegistrar) -> None:
        def make(config: Any, context: Any) -> Blocking:
            instance = Blocking(self.entered, self.released)
            self.created.append(instance)
            return instance

        registrar.add("blocking", config=BlockConfig, factory=make)


@pytest.fixture
def plugin() -> Any:
    plugin = Plugin()
    yield plugin
    plugin.released.set()  # never leave a worker blocked behind a failed test


def _config(registry: StrategyRegistry, isolation: str) -> Any:
    return load_config(
        {
            "models": {
                "slow": {
                    "health_check": {"strategy": "blocking", "timeout": 0.2, "isolation": isolation}
                },
                "quick": {"health_check": {"strategy": "noop"}},
            }
        },
        registry=registry,
    )


async def test_a_blocking_check_does_not_freeze_the_callers_loop(plugin: Plugin) -> None:
    registry = StrategyRegistry(plugins=[plugin], entry_points=False, modules=())
    async with HealthKit(_config(registry, "thread"), registry=registry) as kit:
        slow = asyncio.ensure_future(kit.acheck("slow"))
        # Wait (off the loop) until the check is inside its blocking call.
        assert await asyncio.to_thread(plugin.entered.wait, 10)
        quick = await kit.acheck("quick")
        # The loop answered another model while the slow check was still blocked.
        assert not plugin.created[0].finished.is_set()
        assert quick.status is Status.HEALTHY
        result = await slow
        assert result.status is Status.UNHEALTHY
        assert result.detail.startswith("check timed out")
        plugin.released.set()


def test_without_isolation_the_same_check_blocks_the_loop(plugin: Plugin) -> None:
    # The control: what isolation = "thread" prevents. Released by a timer thread.
    registry = StrategyRegistry(plugins=[plugin], entry_points=False, modules=())
    timer = threading.Timer(0.5, plugin.released.set)

    async def scenario() -> bool:
        async with HealthKit(_config(registry, "none"), registry=registry) as kit:
            slow = asyncio.ensure_future(kit.acheck("slow"))
            await asyncio.sleep(0)  # the slow check starts, and blocks this loop
            timer.start()
            await kit.acheck("quick")
            answered_while_blocked = not plugin.created[0].finished.is_set()
            await slow
            return answered_while_blocked

    try:
        assert asyncio.run(scenario()) is False
    finally:
        timer.cancel()


async def test_the_instance_is_created_used_and_closed_on_its_own_worker_loop(
    plugin: Plugin,
) -> None:
    plugin.released.set()
    registry = StrategyRegistry(plugins=[plugin], entry_points=False, modules=())
    kit = HealthKit(_config(registry, "thread"), registry=registry)
    await kit.acheck("slow")
    await kit.acheck("slow")
    (instance,) = plugin.created
    ours = asyncio.get_running_loop()
    assert instance.created_on is not ours
    assert instance.loops == [instance.created_on, instance.created_on]
    threads = [t for t in threading.enumerate() if t.name == "healthkit-isolated-blocking"]
    assert len(threads) == 1
    await kit.aclose()
    assert instance.closed_on is instance.created_on
    assert not threads[0].is_alive()  # the worker stopped, its loop closed
    assert instance.created_on.is_closed()


def test_isolation_is_part_of_the_spec() -> None:
    registry = StrategyRegistry(entry_points=False, modules=())
    config = load_config(
        {
            "models": {
                "a": {"health_check": {"strategy": "noop"}},
                "b": {"health_check": {"strategy": "noop", "isolation": "none"}},
                "c": {"health_check": {"strategy": "noop", "isolation": "thread"}},
                "d": {"health_check": {"strategy": "noop", "isolation": "thread"}},
            }
        },
        registry=registry,
    )
    specs = {name: mc.check for name, mc in config.models.items()}
    assert specs["a"] == specs["b"] and specs["c"] == specs["d"]
    assert specs["a"] != specs["c"]
    assert specs["c"].isolation == "thread"

    async def share() -> tuple[int, bool]:
        resolver = Resolver(registry)
        try:
            for name, spec in specs.items():
                resolver.acquire(name, spec)
            return resolver.stats().instances, resolver.get("c") is resolver.get("d")
        finally:
            await resolver.aclose()

    assert asyncio.run(share()) == (2, True)


@pytest.mark.parametrize("value", ["process", "", 1, None, True])
def test_a_bad_isolation_value_is_a_config_error_at_its_path(value: Any) -> None:
    registry = StrategyRegistry(entry_points=False, modules=())
    with pytest.raises(ConfigError) as info:
        load_config(
            {"models": {"m": {"health_check": {"strategy": "noop", "isolation": value}}}},
            registry=registry,
        )
    paths = [issue.path for issue in info.value.issues]
    assert paths == ["models.m.health_check.isolation"]
    assert "must be one of 'none', 'thread'" in info.value.issues[0].message


async def test_an_isolated_composite_cannot_hold_children() -> None:
    registry = StrategyRegistry(entry_points=False, modules=())
    config = load_config(
        {
            "models": {
                "m": {
                    "health_check": {
                        "strategy": "composite",
                        "isolation": "thread",
                        "checks": [{"strategy": "noop"}],
                    }
                }
            }
        },
        registry=registry,
    )
    kit = HealthKit(config, registry=registry)
    with pytest.raises(StrategyCreationError, match="set isolation on the children instead"):
        await kit.astart()
    await kit.aclose()
    workers = [t for t in threading.enumerate() if t.name.startswith("healthkit-isolated-")]
    for worker in workers:
        worker.join(2)
    assert not any(t.is_alive() for t in workers)


async def test_isolated_children_of_a_composite_are_checked_on_their_own_loops(
    plugin: Plugin,
) -> None:
    plugin.released.set()
    registry = StrategyRegistry(plugins=[plugin], entry_points=False, modules=())
    config = load_config(
        {
            "models": {
                "m": {
                    "health_check": {
                        "strategy": "composite",
                        "checks": [{"strategy": "blocking", "isolation": "thread"}],
                    }
                }
            }
        },
        registry=registry,
    )
    async with HealthKit(config, registry=registry) as kit:
        result = await kit.acheck("m")
    assert result.status is Status.HEALTHY
    assert plugin.created[0].loops[0] is not asyncio.get_running_loop()


async def test_a_check_on_a_closed_isolated_instance_is_unhealthy_not_a_crash(
    plugin: Plugin,
) -> None:
    plugin.released.set()
    registry = StrategyRegistry(plugins=[plugin], entry_points=False, modules=())
    resolver = Resolver(registry)
    spec = _config(registry, "thread").models["slow"].check
    instance = resolver.acquire("m", spec)
    await resolver.aclose()
    result = await guarded_check(instance, "blocking", Target(model="m"), timeout=5)
    assert result.status is Status.UNHEALTHY
    assert "closed" in result.detail
