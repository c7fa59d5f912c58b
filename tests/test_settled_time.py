"""Checks that end close together are observed at one loop time, never a later one.

Ten thousand http checks end a few milliseconds apart; each model kept a float of
its own for ``observed`` and another for ``fresh_until`` (48 bytes a model). Results
that end within ``_SAME_TIME`` (and 1 % of their ``cache_ttl``) after the first of
them now share that first one's time: a result can look at most that much older
than it is (revalidated and stale that much sooner), never newer.
"""

from __future__ import annotations

import asyncio

from _monitor_support import ScriptedPlugin, wait_until
from healthkit import CheckResult, Status, Target
from healthkit._monitoring._checks import _SAME_TIME


async def test_checks_ending_together_share_their_observed_and_fresh_until_floats() -> None:
    plugin = ScriptedPlugin()
    release = asyncio.Event()

    async def held(target: Target) -> CheckResult:
        await release.wait()
        return CheckResult(status=Status.HEALTHY, strategy="scripted", target=target)

    plugin.behaviours["s"] = held
    monitor = plugin.monitor([f"m{i}" for i in range(5)], period=3600.0)
    loop = asyncio.get_running_loop()
    try:
        checks = [asyncio.ensure_future(monitor.acheck(m)) for m in monitor.models]
        await wait_until(lambda: plugin.concurrent == 5)
        before = loop.time()
        release.set()
        await asyncio.gather(*checks)
        after = loop.time()
        states = [monitor._models.states[m] for m in monitor.models]
        first = states[0]
        assert all(st.observed is first.observed for st in states)
        assert all(st.fresh_until is first.fresh_until for st in states)
        # The time of the first of them: never later than when each one ended.
        assert before <= first.observed <= after
        assert monitor.is_ready("m4")
    finally:
        await monitor.aclose()


async def test_a_check_ending_later_gets_its_own_time() -> None:
    plugin = ScriptedPlugin()

    async def ok(target: Target) -> CheckResult:
        return CheckResult(status=Status.HEALTHY, strategy="scripted", target=target)

    plugin.behaviours["s"] = ok
    monitor = plugin.monitor(["m0", "m1"], period=3600.0)
    loop = asyncio.get_running_loop()
    try:
        await monitor.acheck("m0")
        first = monitor._models.states["m0"].observed
        # Past the window (polled, not slept for a fixed time).
        await wait_until(lambda: loop.time() - first > _SAME_TIME)
        await monitor.acheck("m1")
        later = monitor._models.states["m1"].observed
        assert later is not first and later - first > _SAME_TIME
    finally:
        await monitor.aclose()


async def test_a_short_cache_ttl_narrows_the_window() -> None:
    """With ``cache_ttl`` 0 no two results share a time: a result is never shown as
    older than 1 % of how long it is meant to be reused."""
    plugin = ScriptedPlugin()
    monitor = plugin.monitor(["m0"], cache_ttl=0.0)
    checks = monitor._checks
    try:
        assert checks._settled_at(100.0, 0.0) == 100.0
        assert checks._settled_at(100.000001, 0.0) == 100.000001
        # cache_ttl 0.1: within 1 ms (1 %) shares, beyond it does not.
        assert checks._settled_at(200.0, 0.1) == 200.0
        assert checks._settled_at(200.0009, 0.1) == 200.0
        assert checks._settled_at(200.0015, 0.1) == 200.0015
        # Never a later time: a clock reading before the last one is its own.
        assert checks._settled_at(199.0, 1.0) == 199.0
    finally:
        await monitor.aclose()
