"""A background probe cut while the checker's own event loop was starved says nothing
about the upstream (its result is ``unknown`` and is not counted): the model is probed
again soon, not a whole period later. Before, a model whose first probe starved had no
result for a period (an hour at ``period = 3600``)."""

from __future__ import annotations

import asyncio
import time

from _monitor_support import ScriptedPlugin, healthy, wait_until
from healthkit import CheckResult, HealthKit, Monitor, Status, Target, load_config


def _monitor(
    plugin: ScriptedPlugin, *, models: tuple[str, ...] = ("m",), batch: bool = False
) -> Monitor:
    registry = plugin.registry()
    check = {
        "strategy": "scripted_batch" if batch else "scripted",
        "script": "s",
        "timeout": 0.3,
        "period": 3600.0,
        "jitter": 0.0,
    }
    raw = {"models": {m: {"health_check": check} for m in models}}
    return Monitor(HealthKit(load_config(raw, registry=registry), registry=registry))


def _starving_once(plugin: ScriptedPlugin) -> list[int]:
    """Script ``s``: the first check starves the checker, later ones answer healthy.
    Returns the list whose only item counts the calls."""
    calls = [0]

    async def starving_once(target: Target) -> CheckResult:
        calls[0] += 1
        if calls[0] == 1:
            # The checker's loop is blocked well past the check's deadline (a stand-in
            # for a process the OS did not schedule), then the check hangs: the
            # monitor cuts it late, and the timeout is the checker's own doing.
            time.sleep(0.8)  # noqa: ASYNC251 - the fault under test: a blocked loop
            await asyncio.sleep(30)
        return healthy(target)

    plugin.behaviours["s"] = starving_once
    return calls


async def test_a_probe_starved_by_the_checkers_own_loop_is_retried_soon() -> None:
    plugin = ScriptedPlugin()
    calls = _starving_once(plugin)
    async with _monitor(plugin) as monitor:
        # The starved probe counted nothing: still no result, still not ready.
        await wait_until(lambda: monitor.stats().timeouts >= 1)
        assert monitor.last_result("m") is None
        # Probed again within seconds (a deadline later), not after the 3600 s period.
        await wait_until(lambda: monitor.last_result("m") is not None, timeout=10.0)
        assert calls == [2]
        assert monitor.status("m") is Status.HEALTHY


async def test_a_probe_that_timed_out_on_its_own_waits_its_period() -> None:
    # The upstream really hung (the loop ran fine): that is evidence, counted, and the
    # next probe keeps the period; only the checker's own starvation is retried early.
    plugin = ScriptedPlugin()
    calls = 0

    async def hangs(target: Target) -> CheckResult:
        nonlocal calls
        calls += 1
        await asyncio.sleep(30)
        return healthy(target)

    plugin.behaviours["s"] = hangs
    async with _monitor(plugin) as monitor:
        await wait_until(lambda: monitor.last_result("m") is not None, timeout=10.0)
        result = monitor.last_result("m")
        assert result is not None and result.status is Status.UNHEALTHY
        st = monitor._models.get("m")
        loop_now = asyncio.get_running_loop().time()
        assert st.due - loop_now > 3000  # a period away (with jitter 0)
        assert calls == 1


async def test_a_batch_probe_starved_by_the_checkers_own_loop_is_retried_soon() -> None:
    plugin = ScriptedPlugin()
    _starving_once(plugin)
    async with _monitor(plugin, models=("a", "b"), batch=True) as monitor:
        await wait_until(lambda: monitor.stats().timeouts >= 1)
        assert plugin.batch_calls and len(plugin.batch_calls[0]) == 2  # one call for both
        await wait_until(
            lambda: all(monitor.last_result(m) is not None for m in ("a", "b")), timeout=10.0
        )
        assert all(monitor.status(m) is Status.HEALTHY for m in ("a", "b"))
