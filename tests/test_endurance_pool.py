"""Endurance: 1,000 models on one real predictor that goes slow, hung, refused and back.

The regression test of the shared-pool jam: a monitor over 1,000 models with one
``http`` instance (one client, ``max_connections = 10``) against a loopback
predictor cycled through slow (answers at 0.9 x timeout), hung (reads the request
and never answers), refused (stops listening) and healthy. After each recovery the
predictor must see requests again and every model must be healthy again within
two periods, and across cycles neither file descriptors nor asyncio tasks may grow.
Before the fix, the first slow phase left the pool jammed for good (every check
``PoolTimeout``, the predictor never asked again). Bounded: about a minute.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import pytest

from _http_fault_server import FaultServer
from _monitor_support import http_config
from healthkit import HealthKit, Monitor, Status

MODELS = [f"model-{i:04d}" for i in range(1000)]
TIMEOUT = 1.0
#: 1,000 checks per period must fit the CPU of a small shared machine: each check
#: costs a few milliseconds of client, monitor and server time in this one process.
PERIOD = 5.0
#: How long each fault lasts: long enough for a jam to build (it took seconds).
FAULT = 4.0


@pytest.fixture
def predictor() -> Iterator[FaultServer]:
    with FaultServer(delay=0.9 * TIMEOUT) as server:
        yield server


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _quiet_counts(monitor: Monitor, samples: int = 50) -> tuple[int, int]:
    """(fds, tasks but the monitor's running checks), the least seen over a few samples:
    checks come and go, leaks stay. A running check's task is no leak: on a loaded
    machine the budget (64 checks) can stay full for the whole second sampled, and a
    count of all tasks then read 66 against a baseline of 2."""
    fds, tasks = [], []
    for _ in range(samples):
        fds.append(_fds())
        tasks.append(len(asyncio.all_tasks()) - monitor.stats().in_flight)
        await asyncio.sleep(0.02)
    return min(fds), min(tasks)


async def _all_healthy(monitor: Monitor, predictor: FaultServer, within: float) -> float:
    """Wait until the predictor got requests again and every model is healthy."""
    start = time.monotonic()
    before = predictor.total
    while True:
        healthy = sum(monitor.status(m) is Status.HEALTHY for m in MODELS)
        if healthy == len(MODELS) and predictor.total > before:
            return time.monotonic() - start
        waited = time.monotonic() - start
        if waited > within:
            result = monitor.last_result(next(m for m in MODELS if not monitor.is_ready(m)))
            raise AssertionError(
                f"{len(MODELS) - healthy} models still not healthy {waited:.1f}s after the "
                f"predictor recovered; requests since: {predictor.total - before}; "
                f"one of them: {result}"
            )
        await asyncio.sleep(0.05)


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_the_shared_pool_recovers_from_every_fault_without_growing(
    predictor: FaultServer,
) -> None:
    kit = HealthKit.from_config(
        http_config(predictor.url, MODELS, period=PERIOD, timeout=TIMEOUT, jitter=0.1)
    )
    monitor = Monitor(kit)
    try:
        await monitor.start()
        await _all_healthy(monitor, predictor, within=2 * PERIOD)
        [instance] = {kit.resolver.get(m) for m in MODELS}  # one shared client
        baseline = await _quiet_counts(monitor)
        seen: list[tuple[str, float, int, int]] = []
        for mode in ("slow", "hung", "refused", "slow"):
            predictor.set_mode(mode)
            await asyncio.sleep(FAULT)
            predictor.set_mode("healthy")
            took = await _all_healthy(monitor, predictor, within=2 * PERIOD)
            fds, tasks = await _quiet_counts(monitor)
            seen.append((mode, took, fds, tasks))
            print(
                f"{mode:8s} recovered in {took:.2f}s; fds {fds} (from {baseline[0]}), "
                f"tasks {tasks} (from {baseline[1]}), "
                f"client rebuilds {getattr(instance, 'client_rebuilds', '?')}"
            )
        # A constant slack: the pool's 10 connections and the server's ends of them
        # may be open or not at any moment; a leak grows with every cycle.
        for mode, _took, fds, tasks in seen:
            assert fds <= baseline[0] + 24, (mode, fds, baseline, seen)
            assert tasks <= baseline[1] + 10, (mode, tasks, baseline, seen)
    finally:
        await monitor.aclose()
