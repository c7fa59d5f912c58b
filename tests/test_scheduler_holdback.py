"""The scheduler holds background probes back while the runner's queue is full.

Models whose strategy checks in a task of its own used to get a runner job and a
future each as soon as they came due: ten thousand models due at once queued
ten thousand jobs. Now the scheduler submits only while ``Runner.room()`` allows
(at most ``max_in_flight`` background probes queued, so running plus queued stay
within twice the budget) and holds the rest, oldest first, until the runner has
room again. These tests pin what that must keep:
the queue stays bounded, every held model is still probed exactly once, inline
strategies are not held behind task ones, held models count as overdue, and a
monitor closed while it holds probes leaves nothing behind.

Private attributes (``_runner``, ``_scheduler``, ``_checks``) are read on
purpose: the queue length and the held probes are what the change is about.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from _monitor_support import ScriptedPlugin, healthy, wait_until
from healthkit import CheckResult, HealthKit, Monitor, Status, Target, load_config

#: A probe that hangs answers after this long: far beyond any bound a test waits.
HUNG = 30.0
#: Long enough that no model comes due a second time during a test.
LONG_PERIOD = 60.0


def build(plugin: ScriptedPlugin, models: dict[str, dict[str, Any]], **kw: Any) -> Monitor:
    """A monitor of ``models`` (health_check settings each, ``strategy`` included)."""
    registry = plugin.registry()
    raw = {"models": {name: {"health_check": hc} for name, hc in models.items()}}
    return Monitor(HealthKit(load_config(raw, registry=registry), registry=registry), **kw)


def held_checks(plugin: ScriptedPlugin) -> asyncio.Event:
    """Register the ``hold`` script: each check waits for the returned event."""
    release = asyncio.Event()

    async def hold(target: Target) -> CheckResult:
        await release.wait()
        return healthy(target)

    plugin.behaviours["hold"] = hold
    return release


def task_models(
    count: int, *, prefix: str = "m", period: float = LONG_PERIOD, **extra: Any
) -> dict[str, dict[str, Any]]:
    """``count`` models of the scripted (task) strategy, all due at once when started."""
    settings = {
        "strategy": "scripted",
        "script": "hold",
        "timeout": HUNG,
        "period": period,
        "jitter": 0.0,
        "initial_delay": 0.0,
        **extra,
    }
    return {f"{prefix}{i}": dict(settings) for i in range(count)}


@contextlib.asynccontextmanager
async def holding(
    models: dict[str, dict[str, Any]], max_in_flight: int
) -> AsyncIterator[tuple[ScriptedPlugin, asyncio.Event, Monitor]]:
    """A monitor of ``models`` whose ``hold`` checks wait for the yielded event; however
    the test ends, the checks are released and the monitor closed."""
    plugin = ScriptedPlugin()
    release = held_checks(plugin)
    monitor = build(plugin, models, max_in_flight=max_in_flight)
    try:
        yield plugin, release, monitor
    finally:
        release.set()
        await monitor.aclose()


async def started_and_full(monitor: Monitor, plugin: ScriptedPlugin, max_in_flight: int) -> None:
    """Start ``monitor`` and wait until the budget is full and every due model was handled.

    The heap empties once the scheduler has taken every due model (launched,
    queued or held); nothing comes due again within the test's period.
    """
    await monitor.start()
    await wait_until(
        lambda: plugin.concurrent == max_in_flight and not monitor._scheduler._heap,
        timeout=5.0,
    )


async def test_probes_due_at_once_queue_at_most_twice_the_budget() -> None:
    count, budget = 300, 4
    async with holding(task_models(count), budget) as (plugin, _, monitor):
        runner = monitor._runner
        await started_and_full(monitor, plugin, budget)
        assert runner.running == budget
        # Before the holdback every due model was queued: 296 jobs here.
        assert runner.queued <= budget, (runner.running, runner.queued)
        assert runner.running + runner.queued <= 2 * budget
        # One shared future per submitted check, not one per due model.
        assert len(monitor._checks.shared) <= 2 * budget, len(monitor._checks.shared)
        # The rest are held, each once, and still scheduled (not marked running).
        held = monitor._scheduler._held
        assert len(held) == count - runner.running - runner.queued
        assert len({name for _, name in held}) == len(held)
        probing = [m for m in monitor.models if monitor._models.get(m).probing]
        assert len(probing) == runner.running + runner.queued
        # The scheduler sleeps until the runner has room: it asked to be woken.
        assert runner.on_room is not None
        assert sum(plugin.calls.values()) == budget


@pytest.mark.parametrize("budget", [1, 4])  # 1: the runner wakes the scheduler per free slot
async def test_every_held_model_is_probed_exactly_once_after_the_release(budget: int) -> None:
    count = 300
    models = task_models(count)
    async with holding(models, budget) as (plugin, release, monitor):
        runner = monitor._runner
        scheduler = monitor._scheduler
        await started_and_full(monitor, plugin, budget)
        release.set()
        await wait_until(lambda: all(monitor.last_result(m) is not None for m in models))
        await wait_until(lambda: runner.running == 0 and runner.queued == 0)
        # No model starved and none was probed twice (a held entry plus a rescheduled one).
        assert len(plugin.calls) == count
        assert set(plugin.calls.values()) == {1}, {
            t.model: n for t, n in plugin.calls.items() if n != 1
        }
        assert monitor.stats().checks == count
        assert all(monitor.status(m) is Status.HEALTHY for m in models)
        # Lateness is recorded once per probe, when it launches (not also when held).
        assert len(scheduler.lateness) == count
        # Nothing left held, nobody waiting for room, every model scheduled a period on.
        assert not scheduler._held
        assert runner.on_room is None
        assert not monitor._checks.shared
        now = asyncio.get_running_loop().time()
        for m in models:
            st = monitor._models.get(m)
            assert not st.probing
            assert now < st.due <= now + LONG_PERIOD
        assert monitor.overdue() == 0
        assert monitor.is_live()


async def test_inline_probes_are_not_held_behind_task_probes() -> None:
    count, budget = 40, 2
    noop = {"strategy": "noop", "period": 0.05, "jitter": 0.0}
    # Due with the task models, and due while they are already held.
    now_noop = {f"now{i}": {**noop, "initial_delay": 0.0} for i in range(20)}
    late_noop = {f"late{i}": {**noop, "initial_delay": 0.1} for i in range(20)}
    tasks = task_models(count)
    async with holding({**tasks, **now_noop, **late_noop}, budget) as (plugin, release, monitor):
        await monitor.start()
        await wait_until(lambda: plugin.concurrent == budget)
        inline = [*now_noop, *late_noop]
        await wait_until(lambda: all(monitor.last_result(m) is not None for m in inline))
        # The budget is still full and the task probes still held.
        assert plugin.concurrent == budget
        assert len(monitor._scheduler._held) == count - 2 * budget
        assert all(monitor.last_result(m) is None for m in tasks if not _probing(monitor, m))
        # Inline models keep their period while task probes are held.
        first = {m: monitor.last_result(m) for m in inline}
        await wait_until(lambda: all(monitor.last_result(m) is not first[m] for m in inline))
        assert len(monitor._scheduler._held) == count - 2 * budget
        assert all(monitor.status(m) is Status.HEALTHY for m in inline)
        release.set()
        await wait_until(lambda: all(monitor.last_result(m) is not None for m in tasks))
        assert set(plugin.calls.values()) == {1}


def _probing(monitor: Monitor, model: str) -> bool:
    return monitor._models.get(model).probing


async def test_held_probes_count_as_overdue_until_they_run() -> None:
    count, budget, period = 20, 2, 0.2
    models = task_models(count, period=period)
    async with holding(models, budget) as (plugin, release, monitor):
        runner = monitor._runner
        await started_and_full(monitor, plugin, budget)
        # Queued and held probes are late; the running ones are not.
        await wait_until(lambda: monitor.overdue() == count - budget, timeout=5.0)
        held = len(monitor._scheduler._held)
        assert held == count - budget - runner.queued
        assert held > 0
        release.set()
        await wait_until(lambda: all(monitor.last_result(m) is not None for m in models))
        await wait_until(lambda: monitor.overdue() == 0, timeout=5.0)
        # The held probes' lateness is measured when they launch: more than a period.
        assert monitor.stats().lateness_max > period


async def test_closing_while_probes_are_held_leaves_nothing_behind() -> None:
    count, budget = 50, 2
    async with holding(task_models(count), budget) as (plugin, _, monitor):
        runner = monitor._runner
        await started_and_full(monitor, plugin, budget)
        assert monitor._scheduler._held
        assert runner.on_room is not None
        # Bounded only to fail instead of hanging: close cancels the hung checks.
        await asyncio.wait_for(monitor.aclose(), 10.0)
        assert runner.on_room is None
        assert runner.running == 0 and runner.queued == 0
        assert plugin.concurrent == 0
        # Neither the queued nor the held probes were launched by the close.
        assert sum(plugin.calls.values()) == budget
        task = monitor._scheduler.task
        assert task is not None and task.done()
        left = [
            t for t in asyncio.all_tasks() if t.get_name().startswith("healthkit") and not t.done()
        ]
        assert left == []
        assert monitor.overdue() == 0
        assert not monitor.is_live()


async def test_on_demand_checks_do_not_starve_held_background_probes() -> None:
    # The budget is fair: the check whose target has the oldest result goes first, so a
    # model probed in the background gets its turn between on-demand checks of others.
    plugin = ScriptedPlugin()

    async def brief(target: Target) -> CheckResult:
        await asyncio.sleep(0)
        return healthy(target)

    plugin.behaviours["brief"] = brief
    base = {"strategy": "scripted", "script": "brief", "jitter": 0.0}
    # Checked only on demand (never in the background within the test), never cached.
    on_demand = {**base, "period": LONG_PERIOD, "initial_delay": LONG_PERIOD, "cache_ttl": 0.0}
    hot = {f"hot{i}": dict(on_demand) for i in range(4)}
    cold = {f"cold{i}": {**base, "period": 0.01} for i in range(3)}
    monitor = build(plugin, {**hot, **cold}, max_in_flight=1)

    def calls(model: str) -> int:
        return plugin.calls.get(Target(model=model), 0)

    try:
        await monitor.start()
        await wait_until(lambda: all(monitor.last_result(m) is not None for m in cold))
        before = {m: calls(m) for m in cold}

        def served() -> bool:
            return all(calls(m) - before[m] >= 3 for m in cold)

        async def hammer(model: str) -> None:
            # Bounded by a count, not a time: the old queue served the cold models
            # three times each within about 300 on-demand checks.
            while not served() and sum(calls(h) for h in hot) < 3000:
                await monitor.acheck(model)

        await asyncio.gather(*(hammer(m) for m in hot))
        assert served(), ({m: calls(m) - before[m] for m in cold}, sum(calls(h) for h in hot))
    finally:
        await monitor.aclose()
