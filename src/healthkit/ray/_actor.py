"""The shared monitor: one healthkit :class:`~healthkit.Monitor` inside one Ray actor.

This module does not import Ray: :mod:`healthkit.ray._replica` wraps
:class:`SharedMonitor` with ``ray.remote`` when a replica first needs it, so the
class stays a plain, testable Python class.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from .._config import ServerConfig
from .._healthkit import HealthKit
from .._monitor import Monitor

__all__ = ["SharedMonitor"]


class SharedMonitor:
    """Probes every model of ``config`` on its schedule and hands out snapshots.

    Every replica asks this one object, so the upstream sees each model's
    background probe once per ``period``, whatever the number of replicas. A
    snapshot is answered from memory (:meth:`healthkit.Monitor.status` and
    :meth:`~healthkit.Monitor.is_ready`): asking never triggers an upstream check.

    ``epoch`` names this incarnation: a restarted or recreated actor has a new
    one and starts from ``unknown``, like any new monitor.
    """

    def __init__(self, config: ServerConfig, *, max_in_flight: int = 64) -> None:
        self._config = config
        self._max_in_flight = max_in_flight
        self._monitor: Monitor | None = None
        self._starting: asyncio.Lock | None = None
        self.epoch = uuid.uuid4().hex

    async def _running(self) -> Monitor:
        # Started on the first call: Ray runs an async actor's methods in its event
        # loop, which is not running yet while __init__ runs.
        if self._monitor is not None:
            return self._monitor
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._monitor is None:
                monitor = Monitor(HealthKit(self._config), max_in_flight=self._max_in_flight)
                try:
                    await monitor.start()
                except BaseException:
                    await monitor.aclose()
                    raise
                self._monitor = monitor
        return self._monitor

    async def snapshot(self) -> dict[str, Any]:
        """Every model's thresholded status and readiness, as plain data.

        ``{"epoch": str, "taken_at": wall-clock seconds, "models": {name:
        {"status": "healthy"|..., "ready": bool}}}``. No detail, endpoint or
        error text crosses the actor boundary: a replica only answers readiness.
        """
        monitor = await self._running()
        models = {
            name: {"status": monitor.status(name).value, "ready": monitor.is_ready(name)}
            for name in monitor.models
        }
        return {"epoch": self.epoch, "taken_at": time.time(), "models": models}

    async def aclose(self) -> None:
        """Stop probing and close every strategy instance."""
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            await monitor.aclose()

    def __repr__(self) -> str:
        return f"<SharedMonitor epoch={self.epoch[:8]} monitor={self._monitor!r}>"
