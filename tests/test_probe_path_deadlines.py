"""One timer cuts every running check at its own deadline.

The runner keeps the running checks' deadlines in a heap with one timer for the
earliest (a timer per check cost a handle, a push into the loop's heap and a
cancellation per probe). Whatever order checks start in, each is cut at its own
deadline, never early, and finished checks are not held until their deadline.
"""

from __future__ import annotations

import asyncio
from typing import Any

from _monitor_support import ScriptedPlugin, healthy
from healthkit import CheckResult, HealthKit, Monitor, Target, load_config
from healthkit._monitor import deadline_for


def _monitor(plugin: ScriptedPlugin, models: dict[str, dict[str, Any]], **kw: Any) -> Monitor:
    registry = plugin.registry()
    raw = {
        "models": {
            name: {"health_check": {"strategy": "scripted", "cache_ttl": 0.0, **settings}}
            for name, settings in models.items()
        }
    }
    return Monitor(HealthKit(load_config(raw, registry=registry), registry=registry), **kw)


async def test_hung_checks_are_cut_each_at_its_own_deadline_whatever_order_they_start_in() -> None:
    plugin = ScriptedPlugin()
    never = asyncio.Event()

    async def hang(target: Target) -> CheckResult:
        await never.wait()
        raise AssertionError("never set")

    plugin.behaviours["hang"] = hang
    # The longest first: the earlier deadlines that follow must bring the timer forward.
    timeouts = {"slow": 0.6, "fast": 0.2, "middle": 0.4}
    monitor = _monitor(plugin, {m: {"script": "hang", "timeout": t} for m, t in timeouts.items()})
    loop = asyncio.get_running_loop()
    ended: dict[str, float] = {}

    async def check(model: str) -> CheckResult:
        result = await monitor.acheck(model)
        ended[model] = loop.time()
        return result

    try:
        started = loop.time()
        results = dict(zip(timeouts, await asyncio.gather(*map(check, timeouts)), strict=True))
        for model, result in results.items():
            deadline = deadline_for(
                monitor.kit.config.models[model].check, monitor.kit.config.models[model].monitor
            )
            assert result.detail == f"check timed out after {deadline:g}s (cut by the monitor)"
            assert ended[model] - started >= deadline, "cut before its deadline"
        # Each at its own deadline: the shortest first, none held until the longest.
        assert sorted(ended, key=ended.__getitem__) == ["fast", "middle", "slow"]
        assert monitor._runner.running == 0
        assert monitor._runner._cutter is None
    finally:
        await monitor.aclose()


async def test_finished_checks_are_not_held_until_their_deadline() -> None:
    plugin = ScriptedPlugin()

    async def answer(target: Target) -> CheckResult:
        await asyncio.sleep(0)
        return healthy(target)

    plugin.behaviours["ok"] = answer
    monitor = _monitor(plugin, {f"m{i}": {"script": "ok", "timeout": 30.0} for i in range(40)})
    try:
        held = 0
        for _ in range(20):
            results = await asyncio.gather(*(monitor.acheck(f"m{i}") for i in range(40)))
            assert all(r.detail == "ok" for r in results)
            held = max(held, len(monitor._runner._deadlines))
        # 800 checks of a 30 s deadline ran; at most twice the running ones are held.
        assert monitor.stats().checks == 800
        assert held <= 2 * 64 + 40, held
        assert monitor._runner.running == 0
    finally:
        await monitor.aclose()


async def test_a_hung_check_is_still_cut_after_many_quick_ones_finished_before_it() -> None:
    plugin = ScriptedPlugin()
    never = asyncio.Event()

    async def answer(target: Target) -> CheckResult:
        await asyncio.sleep(0)
        return healthy(target)

    async def hang(target: Target) -> CheckResult:
        await never.wait()
        raise AssertionError("never set")

    plugin.behaviours["ok"] = answer
    plugin.behaviours["hang"] = hang
    models = {f"m{i}": {"script": "ok", "timeout": 0.2} for i in range(100)}
    models["stuck"] = {"script": "hang", "timeout": 0.3}
    monitor = _monitor(plugin, models)
    try:
        stuck = asyncio.ensure_future(monitor.acheck("stuck"))
        for _ in range(3):
            await asyncio.gather(*(monitor.acheck(f"m{i}") for i in range(100)))
        result = await stuck
        assert "cut by the monitor" in result.detail
        assert monitor._runner.running == 0
    finally:
        await monitor.aclose()
