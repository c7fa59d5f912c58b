"""The monitor (and ``HealthKit.acheck_all``) run no more checks of an instance at once
than it can make progress on.

An ``http`` instance has ``max_connections`` connections. The monitor used to
start up to ``max_in_flight`` (64) of its checks at once: the rest waited for a
connection inside the strategy with their timeout running, so a predictor that
answered every request in 0.2 s (timeout 1 s) had most of its models read
``unhealthy`` ("timed out after 1s waiting for the response"), and the outage
detector then called the whole upstream unreachable. Checks beyond an
instance's capacity now queue in the monitor, where no deadline runs, and take
no budget slot from other instances' checks. ``acheck_all`` (``healthkit
check`` without ``--model``) had the same fault with its 64 checks at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import healthkit
from _http_fault_server import FaultServer
from _monitor_support import http_config, wait_until
from healthkit import CheckResult, HealthKit, Monitor, Status, StrategyRegistry, Target
from healthkit.strategies.noop import NoopConfig


@pytest.fixture
def slow_server() -> Iterator[FaultServer]:
    with FaultServer(delay=0.2) as srv:
        srv.set_mode("slow")
        yield srv


async def test_a_slow_but_healthy_upstream_reads_healthy_under_a_full_budget(
    slow_server: FaultServer,
) -> None:
    names = [f"m{i}" for i in range(60)]
    config = http_config(
        slow_server.url, names, timeout=0.5, max_connections=4, period=3600.0, jitter=0.0
    )
    monitor = Monitor(HealthKit.from_config(config))
    try:
        await monitor.start()
        # 60 checks, 4 at a time, 0.2 s each: about 3 s.
        await wait_until(lambda: all(monitor.last_result(n) for n in names), timeout=30.0)
        results = {n: monitor.last_result(n) for n in names}
        down = {n: r.detail for n, r in results.items() if r and r.status is not Status.HEALTHY}
        assert not down, down
        assert slow_server.total == 60
        assert monitor.stats().outages == 0
    finally:
        await monitor.aclose()


async def test_check_all_of_a_slow_but_healthy_upstream_reads_healthy(
    slow_server: FaultServer,
) -> None:
    names = [f"m{i}" for i in range(40)]
    kit = HealthKit.from_config(http_config(slow_server.url, names, timeout=0.5, max_connections=4))
    try:
        report = await kit.acheck_all()  # 64 at a time, 4 per instance
    finally:
        await kit.aclose()
    down = {n: r.detail for n, r in report.results.items() if r.status is not Status.HEALTHY}
    assert not down, down
    assert slow_server.total == 40


class _Counted:
    """A check that takes ``seconds`` and records how many of its kind ran at once."""

    def __init__(self, seconds: float, cap: int | None) -> None:
        self.seconds = seconds
        if cap is not None:
            self._healthkit_concurrency = cap
        self.running = 0
        self.most = 0
        self.finished = 0

    async def acheck(self, target: Target) -> CheckResult:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.running -= 1
        self.finished += 1
        return CheckResult(status=Status.HEALTHY, strategy="counted", target=target)

    async def aclose(self) -> None:
        return None


class _Plugin:
    def __init__(self) -> None:
        # One instance per config (the resolver shares it between the config's models).
        self.capped = _Counted(0.15, cap=2)
        self.free = _Counted(0.05, cap=None)

    @healthkit.hookimpl
    def healthkit_register_strategies(self, registrar: Any) -> None:
        registrar.add("capped", config=NoopConfig, factory=lambda config, context: self.capped)
        registrar.add("free", config=NoopConfig, factory=lambda config, context: self.free)


async def test_an_instance_at_its_cap_queues_in_the_monitor_and_holds_no_one_else() -> None:
    plugin = _Plugin()
    every = {"period": 3600.0, "jitter": 0.0, "timeout": 0.2}
    raw = {
        "models": {
            **{f"c{i}": {"health_check": {"strategy": "capped", **every}} for i in range(12)},
            **{f"f{i}": {"health_check": {"strategy": "free", **every}} for i in range(4)},
        }
    }
    registry = StrategyRegistry(plugins=[plugin], entry_points=False)
    # A budget for every probe of the round: ten of the capped ones wait for their turn
    # (no budget slot taken), the other instance's checks start at once.
    monitor = Monitor(HealthKit.from_config(raw, registry=registry), max_in_flight=16)
    try:
        await monitor.start()
        # The other instance's checks are not stuck behind the capped one's queue.
        await wait_until(lambda: plugin.free.finished == 4, timeout=10.0)
        assert plugin.capped.finished <= 4
        # Six rounds of 0.15 s, two at a time: each check's 0.2 s timeout starts when it
        # does, so none of them is cut while it waits for its turn.
        await wait_until(lambda: plugin.capped.finished == 12, timeout=10.0)
        assert plugin.capped.most == 2
        results = [monitor.last_result(f"c{i}") for i in range(12)]
        assert all(r is not None and r.status is Status.HEALTHY for r in results), results
        assert monitor.stats().timeouts == 0
    finally:
        await monitor.aclose()
