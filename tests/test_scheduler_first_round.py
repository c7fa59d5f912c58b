"""The first round of probes is spread from the moment it is scheduled, not from before.

Scheduling 100,000 models took 0.2 s; due times were computed from the loop time
read before that work, so every model whose first probe fell inside it started
late by up to that much (probe lateness p99 ~0.2 s at 100,000 models).
"""

from __future__ import annotations

import asyncio

import pytest

from healthkit import HealthKit, Monitor, MonitorSettings, ServerConfig, StrategySpec
from healthkit._config import ModelConfig
from healthkit._monitoring._scheduler import Scheduler
from healthkit.strategies.noop import NoopConfig


def _config(models: int) -> ServerConfig:
    spec = StrategySpec(strategy="noop", config=NoopConfig())
    monitor = MonitorSettings(period=60.0)
    return ServerConfig(
        default=spec,
        default_monitor=monitor,
        models={f"m{i}": ModelConfig(name=f"m{i}", check=spec, monitor=monitor) for i in range(50)},
    )


async def test_first_due_times_start_after_the_scheduling_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    drawn: list[float] = []

    def slow_first_delay(self: Scheduler, settings: MonitorSettings) -> float:
        # Scheduling that takes time (as 100,000 models do): let the clock move.
        start = loop.time()
        while loop.time() - start < 0.002:
            pass
        drawn.append(loop.time())
        return 0.0  # "probe at once"

    monkeypatch.setattr(Scheduler, "first_delay", slow_first_delay)
    monitor = Monitor(HealthKit(_config(50)))
    try:
        await monitor.start()
        dues = [st.due for st in monitor._models.states.values()]
        # Probed at once may mean "already running": those have no due time left.
        assert drawn, "first_delay was not used"
        pending = [d for d in dues if d != float("inf")]
        assert pending, "every first probe ran during start()"
        # Every first probe is due at or after the last delay was drawn: none of them
        # is late by the time it took to schedule the others.
        assert min(pending) >= max(drawn)
    finally:
        await monitor.aclose()
