"""Checks that answer without suspending run inline; every promise of a check still holds.

A strategy whose class declares ``_healthkit_answers_inline`` (``noop`` does) is
run by the monitor in the step that starts it, with no task, future or deadline
timer. If such a check awaits something after all, it runs again in a task of its
own, with the deadline, cancellation and single flight of any other check. Such
a strategy may also offer its check as a plain call (``_healthkit_check_now``;
``noop`` does): the monitor calls it instead of creating and driving a coroutine
per probe, and a failure of it is an ``unhealthy`` result like any other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import attrs

import healthkit
from _monitor_support import wait_until
from healthkit import (
    CheckResult,
    ErrorInfo,
    HealthKit,
    Monitor,
    Status,
    StrategyRegistry,
    Target,
    load_config,
)
from healthkit._monitoring._checks import ANSWERS_INLINE, CHECK_NOW

Behaviour = Callable[[Target], Awaitable[CheckResult]]


@attrs.frozen(kw_only=True)
class InlineConfig:
    script: str = "default"


class InlinePlugin:
    """Registers ``inline``: a strategy that declares it answers without suspending."""

    def __init__(self) -> None:
        self.behaviours: dict[str, Behaviour] = {}
        #: Plain-call behaviours of ``inline_now`` (see :class:`_InlineNow`).
        self.now_behaviours: dict[str, Callable[[Target], Any]] = {}
        self.now_calls = 0
        self.calls = 0
        self.tasks: list[asyncio.Task[Any] | None] = []
        self.running = 0

    @healthkit.hookimpl
    def healthkit_register_strategies(self, registrar: Any) -> None:
        registrar.add("inline", config=InlineConfig, factory=self._make)
        registrar.add("inline_now", config=InlineConfig, factory=self._make_now)

    def _make(self, config: InlineConfig, context: Any) -> _Inline:
        return _Inline(self, config)

    def _make_now(self, config: InlineConfig, context: Any) -> _InlineNow:
        return _InlineNow(self, config)

    def monitor(self, models: dict[str, dict[str, Any]], **kw: Any) -> Monitor:
        registry = StrategyRegistry(plugins=[self], entry_points=False)
        raw = {
            "models": {m: {"health_check": {"strategy": "inline", **s}} for m, s in models.items()}
        }
        return Monitor(HealthKit(load_config(raw, registry=registry), registry=registry), **kw)


class _Inline:
    _healthkit_answers_inline = True

    def __init__(self, plugin: InlinePlugin, config: InlineConfig) -> None:
        self.plugin = plugin
        self.config = config

    async def acheck(self, target: Target) -> CheckResult:
        self.plugin.calls += 1
        self.plugin.tasks.append(asyncio.current_task())
        self.plugin.running += 1
        try:
            return await self.plugin.behaviours[self.config.script](target)
        finally:
            self.plugin.running -= 1

    async def aclose(self) -> None:
        return None


class _InlineNow(_Inline):
    """``inline`` that also offers its check as a plain call, as ``noop`` does (its
    ``acheck`` answers the same, and counts in ``calls`` when a coroutine ran). Both
    promises said again: they speak for the ``acheck`` of the class that makes them."""

    _healthkit_answers_inline = True

    async def acheck(self, target: Target) -> CheckResult:
        self.plugin.calls += 1
        return self._healthkit_check_now(target)  # type: ignore[no-any-return]

    def _healthkit_check_now(self, target: Target) -> Any:
        self.plugin.now_calls += 1
        return self.plugin.now_behaviours[self.config.script](target)


def result(target: Target, status: Status = Status.HEALTHY, **kw: Any) -> CheckResult:
    return CheckResult(status=status, strategy="inline", target=target, **kw)


def test_the_noop_strategy_declares_it() -> None:
    from healthkit.strategies.noop import NoopStrategy

    assert getattr(NoopStrategy, ANSWERS_INLINE) is True


async def test_an_inline_check_runs_in_the_callers_step_and_counts_like_any_check() -> None:
    plugin = InlinePlugin()

    async def answer(target: Target) -> CheckResult:
        return result(target, detail="fine")

    plugin.behaviours["default"] = answer
    monitor = plugin.monitor({"a": {}})
    events: list[Any] = []
    monitor.add_check_listener(events.append)
    try:
        got = await monitor.acheck("a")
        assert got.status is Status.HEALTHY and got.detail == "fine"
        assert got.latency > 0  # filled in, as for a check run in a task
        # Inline: in the caller's own task, once.
        assert plugin.calls == 1 and plugin.tasks == [asyncio.current_task()]
        assert monitor.stats().checks == 1 and monitor.stats().in_flight == 0
        assert [(e.model, e.targets, e.batch) for e in events] == [("a", 1, False)]
        assert monitor.last_result("a") is got and monitor.is_ready("a")
        (tr,) = monitor.history("a")
        assert (tr.old, tr.new, tr.result) == (Status.UNKNOWN, Status.HEALTHY, got)
        # A fresh result is reused for cache_ttl, inline or not.
        assert await monitor.acheck("a") is got and plugin.calls == 1
    finally:
        await monitor.aclose()


async def test_background_probes_of_noop_models_run_inline_and_keep_their_schedule() -> None:
    raw = {
        "defaults": {"health_check": {"strategy": "noop", "period": 0.05, "jitter": 0.0}},
        "models": {f"m{i}": {} for i in range(20)},
    }
    monitor = Monitor(HealthKit.from_config(raw))
    try:
        await monitor.start()
        await wait_until(lambda: monitor.stats().checks >= 60)
        assert monitor.server_ready()
        # Each model is probed again and again, not once: the schedule goes on.
        assert all(len(monitor.history(m)) == 1 for m in monitor.models)
        assert monitor.stats().in_flight == 0 and monitor.overdue() == 0
    finally:
        await monitor.aclose()


async def test_a_check_that_suspends_after_all_runs_again_in_a_task_of_its_own() -> None:
    plugin = InlinePlugin()

    async def scoped(target: Target) -> CheckResult:
        # anyio's cancel scopes and asyncio.timeout hold on to the current task: resuming
        # this coroutine in another task would break both (and could cancel the caller).
        with anyio.CancelScope():
            async with asyncio.timeout(5):
                await asyncio.sleep(0)
        return result(target, detail="after a suspension")

    plugin.behaviours["default"] = scoped
    monitor = plugin.monitor({"a": {}})
    try:
        got = await monitor.acheck("a")
        assert got.status is Status.HEALTHY, got.detail
        assert got.detail == "after a suspension"
        # Started inline, closed at its first suspension, then run in a task.
        assert plugin.calls == 2
        assert plugin.tasks[0] is asyncio.current_task()
        assert plugin.tasks[1] is not None and plugin.tasks[1] is not asyncio.current_task()
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0
        assert monitor.stats().checks == 1
        assert plugin.running == 0
    finally:
        await monitor.aclose()


async def test_a_check_that_hangs_is_cut_at_its_deadline_and_left_no_task_behind() -> None:
    plugin = InlinePlugin()
    never = asyncio.Event()

    async def hang(target: Target) -> CheckResult:
        await never.wait()
        return result(target)

    plugin.behaviours["default"] = hang
    monitor = plugin.monitor({"a": {"timeout": 0.2, "failure_threshold": 1}})
    try:
        got = await asyncio.wait_for(monitor.acheck("a"), 5.0)
        assert got.status is Status.UNHEALTHY
        assert "timed out" in got.detail and "cut by the monitor" in got.detail
        assert monitor.stats().timeouts == 1
        await wait_until(lambda: plugin.running == 0)
        assert monitor.stats().in_flight == 0
    finally:
        await monitor.aclose()


async def test_an_inline_check_that_raises_is_an_unhealthy_result() -> None:
    plugin = InlinePlugin()

    async def boom(target: Target) -> CheckResult:
        raise ValueError("boom")

    plugin.behaviours["default"] = boom
    monitor = plugin.monitor({"a": {"failure_threshold": 1}})
    try:
        got = await monitor.acheck("a")
        assert got.status is Status.UNHEALTHY
        assert got.detail == "check raised ValueError: boom"
        assert got.error == ErrorInfo(type="ValueError", message="boom")
        assert plugin.calls == 1 and not monitor.is_ready("a")
    finally:
        await monitor.aclose()


async def test_callers_join_a_check_in_flight_instead_of_starting_one_inline() -> None:
    plugin = InlinePlugin()
    release = asyncio.Event()

    async def slow(target: Target) -> CheckResult:
        await release.wait()
        return result(target, detail="slow")

    plugin.behaviours["default"] = slow
    monitor = plugin.monitor({"a": {"timeout": 10.0, "cache_ttl": 0.0}})
    try:
        first = asyncio.ensure_future(monitor.acheck("a"))
        await wait_until(lambda: plugin.running == 1)
        second = asyncio.ensure_future(monitor.acheck("a"))
        await asyncio.sleep(0)
        # The second caller joined the check in flight: no inline attempt of its own.
        assert plugin.calls == 2  # the first caller's inline attempt and its task
        release.set()
        one, two = await asyncio.gather(first, second)
        assert one is two and one.detail == "slow"
        assert monitor.stats().coalesced == 1 and monitor.stats().checks == 1
    finally:
        await monitor.aclose()


async def test_a_cancelled_caller_does_not_cancel_the_check_others_wait_for() -> None:
    plugin = InlinePlugin()
    release = asyncio.Event()

    async def slow(target: Target) -> CheckResult:
        await release.wait()
        return result(target)

    plugin.behaviours["default"] = slow
    monitor = plugin.monitor({"a": {"timeout": 10.0}})
    try:
        leaving = asyncio.ensure_future(monitor.acheck("a"))
        await wait_until(lambda: plugin.running == 1)
        staying = asyncio.ensure_future(monitor.acheck("a"))
        await asyncio.sleep(0)
        leaving.cancel()
        await asyncio.sleep(0)
        release.set()
        assert (await staying).status is Status.HEALTHY
        assert leaving.cancelled()
    finally:
        await monitor.aclose()


async def test_inline_transport_failures_still_mark_the_upstream_down_and_recover() -> None:
    plugin = InlinePlugin()
    up = False

    async def flaky(target: Target) -> CheckResult:
        if up:
            return result(target)
        return result(
            target,
            Status.UNHEALTHY,
            detail="connection refused",
            error=ErrorInfo(type="ConnectError", message="refused"),
        )

    plugin.behaviours["default"] = flaky
    settings = {"period": 0.02, "jitter": 0.0, "timeout": 0.05, "failure_threshold": 2}
    monitor = plugin.monitor({f"m{i}": settings for i in range(5)})
    try:
        await monitor.start()
        await wait_until(lambda: monitor.upstream_down("m0"))
        assert monitor.stats().outages == 1
        assert not any(monitor.is_ready(m) for m in monitor.models)
        up = True
        await wait_until(lambda: not monitor.upstream_down("m0") and monitor.server_ready())
    finally:
        await monitor.aclose()


async def test_history_keeps_every_transition_in_order_up_to_its_size() -> None:
    plugin = InlinePlugin()
    statuses = iter([Status.HEALTHY, Status.UNHEALTHY, Status.HEALTHY, Status.UNHEALTHY])

    async def scripted(target: Target) -> CheckResult:
        return result(target, next(statuses))

    plugin.behaviours["default"] = scripted
    settings = {"cache_ttl": 0.0, "failure_threshold": 1}
    for size, expected in (
        (10, ["unknown", "healthy", "unhealthy", "healthy", "unhealthy"]),
        (2, ["unhealthy", "healthy", "unhealthy"]),
        (1, ["healthy", "unhealthy"]),
    ):
        statuses = iter([Status.HEALTHY, Status.UNHEALTHY, Status.HEALTHY, Status.UNHEALTHY])
        monitor = plugin.monitor({"a": settings}, history_size=size)
        try:
            seen = [await monitor.acheck("a") for _ in range(4)]
            history = monitor.history("a")
            assert len(history) == min(size, 4)
            # Consecutive: each transition starts where the one before it ended.
            chain = [history[0].old.value] + [tr.new.value for tr in history]
            assert chain == expected
            assert history[-1].result is seen[-1] is monitor.last_result("a")
        finally:
            await monitor.aclose()


# -- the plain-call check (``_healthkit_check_now``) -----------------------------------


async def test_noop_offers_a_plain_call_check_that_answers_what_acheck_answers() -> None:
    from healthkit.strategies.noop import NoopConfig, NoopStrategy

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


async def test_the_monitor_calls_the_plain_call_check_instead_of_driving_a_coroutine() -> None:
    plugin = InlinePlugin()
    plugin.now_behaviours["default"] = lambda target: result(target, detail="fine")
    monitor = plugin.monitor({"a": {"strategy": "inline_now", "period": 0.05, "jitter": 0.0}})
    try:
        got = await monitor.acheck("a")
        assert got.status is Status.HEALTHY and got.detail == "fine"
        assert got.latency > 0  # filled in, as for any check
        assert (plugin.now_calls, plugin.calls) == (1, 0)  # no coroutine made
        await monitor.start()
        await wait_until(lambda: monitor.stats().checks >= 5)
        assert plugin.calls == 0 and plugin.now_calls == monitor.stats().checks
        assert monitor.is_ready("a") and monitor.stats().in_flight == 0
    finally:
        await monitor.aclose()


async def test_a_plain_call_check_that_raises_or_returns_junk_is_an_unhealthy_result() -> None:
    plugin = InlinePlugin()

    def boom(target: Target) -> CheckResult:
        raise RuntimeError("sensor on fire")

    plugin.now_behaviours["boom"] = boom
    plugin.now_behaviours["junk"] = lambda target: 42
    settings = {"strategy": "inline_now", "failure_threshold": 1, "period": 0.05, "jitter": 0.0}
    monitor = plugin.monitor(
        {"boom": {**settings, "script": "boom"}, "junk": {**settings, "script": "junk"}}
    )
    try:
        got = await monitor.acheck("boom")
        assert got.status is Status.UNHEALTHY and "sensor on fire" in got.detail
        assert got.error is not None and got.error.type == "RuntimeError"
        junk = await monitor.acheck("junk")
        assert junk.status is Status.UNHEALTHY and "not a CheckResult" in junk.detail
        await monitor.start()
        await wait_until(lambda: monitor.stats().checks >= 8)
        # Still probed on schedule: a failing plain call leaves no model unscheduled.
        assert monitor.overdue() == 0 and not monitor.is_ready("boom")
    finally:
        await monitor.aclose()


class _Sub:
    """Registers subclasses of ``noop``: one overrides ``acheck``, one the plain call,
    and one overrides ``acheck`` with one that awaits."""

    def __init__(self) -> None:
        self.awaiting_calls = 0

    @healthkit.hookimpl
    def healthkit_register_strategies(self, registrar: Any) -> None:
        from healthkit.strategies.noop import NoopConfig, NoopStrategy

        plugin = self

        class OwnAwaiting(NoopStrategy):
            async def acheck(self, target: Target) -> CheckResult:
                plugin.awaiting_calls += 1
                await asyncio.sleep(0)
                return result(target, detail="own awaiting acheck")

        registrar.add("own_await", config=NoopConfig, factory=lambda c, ctx: OwnAwaiting(c))

        class OwnAcheck(NoopStrategy):
            async def acheck(self, target: Target) -> CheckResult:
                return result(target, Status.DEGRADED, detail="own acheck")

        class OwnPlainCall(NoopStrategy):
            def _healthkit_check_now(self, target: Target) -> CheckResult:
                return result(target, Status.DEGRADED, detail="own plain call")

        registrar.add("own_acheck", config=NoopConfig, factory=lambda c, ctx: OwnAcheck(c))
        registrar.add("own_plain", config=NoopConfig, factory=lambda c, ctx: OwnPlainCall(c))


async def test_a_subclass_that_overrides_acheck_is_checked_by_its_acheck() -> None:
    """The plain call a subclass inherits answers for its base: an override of
    ``acheck`` alone runs, inline, as before; an override of the plain call is used."""
    registry = StrategyRegistry(plugins=[_Sub()], entry_points=False)
    raw = {
        "models": {
            "a": {"health_check": {"strategy": "own_acheck"}},
            "p": {"health_check": {"strategy": "own_plain"}},
        }
    }
    monitor = Monitor(HealthKit(load_config(raw, registry=registry), registry=registry))
    try:
        own = await monitor.acheck("a")
        assert (own.status, own.detail) == (Status.DEGRADED, "own acheck")
        plain = await monitor.acheck("p")
        assert (plain.status, plain.detail) == (Status.DEGRADED, "own plain call")
        assert monitor.stats().in_flight == 0  # both inline: no task
    finally:
        await monitor.aclose()


async def test_a_subclass_whose_acheck_awaits_runs_once_in_a_task_not_first_inline() -> None:
    """The inline promise is its base's: the subclass's ``acheck`` is not started inline
    (and closed, and started again in a task when it awaits): it runs once."""
    plugin = _Sub()
    registry = StrategyRegistry(plugins=[plugin], entry_points=False)
    raw = {"models": {"w": {"health_check": {"strategy": "own_await"}}}}
    monitor = Monitor(HealthKit(load_config(raw, registry=registry), registry=registry))
    try:
        got = await monitor.acheck("w")
        assert got.detail == "own awaiting acheck"
        assert plugin.awaiting_calls == 1
    finally:
        await monitor.aclose()
