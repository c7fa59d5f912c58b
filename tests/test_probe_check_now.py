"""An inline strategy's plain-call check (``_healthkit_check_now``): what the monitor calls.

A strategy that answers without suspending may also offer its check as a plain
method; the monitor's inline path calls it instead of creating and driving a
coroutine per probe. It keeps every promise of a check: its answer is stored and
thresholded, its latency filled in, and an exception or a non-result becomes an
``unhealthy`` result with a reason, never an exception out of the monitor.
"""

from __future__ import annotations

from typing import Any

import attrs

import healthkit
from _monitor_support import wait_until
from healthkit import (
    CheckResult,
    HealthKit,
    Monitor,
    Status,
    StrategyRegistry,
    Target,
    load_config,
)
from healthkit._monitoring._checks import CHECK_NOW
from healthkit.strategies.noop import NoopConfig, NoopStrategy


@attrs.frozen(kw_only=True)
class NowConfig:
    answer: str = "healthy"


class _Now:
    _healthkit_answers_inline = True

    def __init__(self, plugin: NowPlugin, config: NowConfig) -> None:
        self.plugin = plugin
        self.config = config

    async def acheck(self, target: Target) -> CheckResult:
        self.plugin.coroutines += 1
        return self._healthkit_check_now(target)

    def _healthkit_check_now(self, target: Target) -> Any:
        self.plugin.calls += 1
        if self.config.answer == "raise":
            raise RuntimeError("sensor on fire")
        if self.config.answer == "garbage":
            return 42
        return CheckResult(status=Status.HEALTHY, strategy="now", target=target, detail="fine")

    async def aclose(self) -> None:
        return None


class NowPlugin:
    def __init__(self) -> None:
        self.calls = 0
        self.coroutines = 0

    @healthkit.hookimpl
    def healthkit_register_strategies(self, registrar: Any) -> None:
        registrar.add("now", config=NowConfig, factory=lambda config, context: _Now(self, config))

    def monitor(self, models: dict[str, dict[str, Any]]) -> Monitor:
        registry = StrategyRegistry(plugins=[self], entry_points=False)
        raw = {
            "defaults": {"health_check": {"period": 0.05, "jitter": 0.0}},
            "models": {m: {"health_check": {"strategy": "now", **s}} for m, s in models.items()},
        }
        return Monitor(HealthKit(load_config(raw, registry=registry), registry=registry))


async def test_noop_offers_it_and_it_answers_what_acheck_answers() -> None:
    noop = NoopStrategy(NoopConfig())
    target = Target(model="m")
    now = getattr(noop, CHECK_NOW)(target)
    checked = await noop.acheck(target)
    assert (now.status, now.strategy, now.target, now.detail) == (
        checked.status,
        checked.strategy,
        checked.target,
        checked.detail,
    )
    assert now.latency > 0 and now.checked_at.tzinfo is not None


async def test_the_monitor_calls_it_instead_of_driving_a_coroutine() -> None:
    plugin = NowPlugin()
    monitor = plugin.monitor({"a": {}})
    try:
        got = await monitor.acheck("a")
        assert got.status is Status.HEALTHY and got.detail == "fine"
        assert got.latency > 0  # filled in, as for any check
        assert (plugin.calls, plugin.coroutines) == (1, 0)
        await monitor.start()
        await wait_until(lambda: monitor.stats().checks >= 5)
        assert plugin.coroutines == 0 and plugin.calls == monitor.stats().checks
        assert monitor.is_ready("a") and monitor.stats().in_flight == 0
    finally:
        await monitor.aclose()


async def test_an_exception_or_a_non_result_becomes_an_unhealthy_result_and_probing_goes_on() -> (
    None
):
    plugin = NowPlugin()
    monitor = plugin.monitor({"boom": {"answer": "raise"}, "junk": {"answer": "garbage"}})
    try:
        boom = await monitor.acheck("boom")
        assert boom.status is Status.UNHEALTHY and "sensor on fire" in boom.detail
        assert boom.error is not None and boom.error.type == "RuntimeError"
        junk = await monitor.acheck("junk")
        assert junk.status is Status.UNHEALTHY and "not a CheckResult" in junk.detail
        await monitor.start()
        await wait_until(lambda: monitor.stats().checks >= 8)
        # Still probed on schedule: a failing plain call leaves no model unscheduled.
        assert monitor.overdue() == 0 and not monitor.is_ready("boom")
    finally:
        await monitor.aclose()
