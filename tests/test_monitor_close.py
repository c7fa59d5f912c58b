"""``Monitor.aclose`` is bounded even when a user's async listener will not stop."""

from __future__ import annotations

import asyncio
import contextlib
import time

from _monitor_support import ScriptedPlugin, unhealthy, wait_until
from healthkit import HealthKit, Monitor, Target, Transition


async def test_aclose_leaves_behind_a_listener_that_swallows_cancellation() -> None:
    plugin = ScriptedPlugin()

    async def down(target: Target) -> object:
        return unhealthy(target)

    plugin.behaviours["down"] = down
    raw = {"models": {"a": {"health_check": {"strategy": "scripted", "script": "down"}}}}
    monitor = Monitor(HealthKit.from_config(raw, registry=plugin.registry()))
    started = asyncio.Event()
    release = asyncio.Event()

    async def stubborn(tr: Transition) -> None:
        started.set()
        while not release.is_set():
            # A broken listener: it never lets go until released.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

    monitor.add_listener(stubborn)
    await monitor.start()
    try:
        await wait_until(started.is_set)
        begun = time.monotonic()
        await asyncio.wait_for(monitor.aclose(), timeout=10)
        assert time.monotonic() - begun < 3  # the grace, not forever
    finally:
        release.set()
