"""A check the checker itself starved is no evidence: no model goes not ready for it.

The outage detector already ignores timeouts caused by a blocked event loop;
each model's own thresholds must too. Otherwise a checker starved of CPU (a
burst of work on the loop, a plugin that blocks it) calls healthy models down,
one ``failure_threshold`` at a time, while the upstream answered at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from _monitor_support import http_config, wait_until
from healthkit import HealthKit, Monitor, Status, Transition
from healthkit.testing import OipServer

MODELS = [f"m{i}" for i in range(10)]


@pytest.fixture
def upstream() -> Iterator[OipServer]:
    with OipServer(dict.fromkeys(MODELS, "ready")) as server:
        yield server


async def test_starved_cuts_turn_no_model_not_ready(upstream: OipServer) -> None:
    timeout = 0.2
    config = http_config(
        upstream.url,
        MODELS,
        period=0.05,
        timeout=timeout,
        failure_threshold=2,
        jitter=0.0,
        cache_ttl=0.0,
    )
    monitor = Monitor(HealthKit.from_config(config), max_in_flight=4)
    went_down: list[Transition] = []
    monitor.add_listener(lambda tr: went_down.append(tr) if not tr.new.is_ok else None)
    starved_results = 0
    try:
        await monitor.start()
        await wait_until(lambda: monitor.stats().ready == len(MODELS), timeout=10.0)
        for _ in range(6):
            await wait_until(lambda: monitor.stats().in_flight > 0, timeout=5.0, interval=0.001)
            # The checker's loop starved (a blocking call on it, on purpose): every check
            # in flight is cut.
            time.sleep(timeout * 2)  # noqa: ASYNC251
            await asyncio.sleep(0.01)
            starved_results += sum(
                1
                for m in MODELS
                if (r := monitor.last_result(m)) is not None and r.status is Status.UNKNOWN
            )
        assert monitor.stats().timeouts >= 2  # checks were cut...
        assert went_down == []  # ...and no model was called down for it
        # A starved cut is not stored as the model's answer either: its last result is real.
        assert starved_results == 0
        # Past max_stale without a real answer, readiness is unknown, never a stale
        # healthy; the first fresh answers after the starvation make every model ready.
        await wait_until(lambda: all(monitor.is_ready(m) for m in MODELS), timeout=5.0)
        assert went_down == []
    finally:
        await monitor.aclose()
