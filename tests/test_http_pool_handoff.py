"""Checks that queue for the shared client's connections get one without a fight.

httpcore's pool hands a freed connection to every request queued for one; all
but one of them find it taken (``ConnectionNotAvailable``), go back to the
queue and try again. Under a steady load of ``max_connections`` checks that
cost about three retries a request, and now and then two requests bounced off
each other for over a second, until the monitor cut them: a model reported
down (``check timed out``) whose server answered everything it was sent. The
``http`` strategy's client therefore gives each request a connection of its
own. Against a real loopback server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpcore._async.connection_pool as httpcore_pool
import pytest

from _http_fault_server import FaultServer
from healthkit import StrategyRegistry, Target, parse_spec
from healthkit._guard import guarded_check
from healthkit.strategies.http import HttpStrategy


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def bounces(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts requests httpcore sent back to its queue (a spy: the real method still runs)."""
    counted = [0]
    real = httpcore_pool.AsyncPoolRequest.clear_connection

    def clear_connection(self: httpcore_pool.AsyncPoolRequest) -> None:
        counted[0] += 1
        real(self)

    monkeypatch.setattr(httpcore_pool.AsyncPoolRequest, "clear_connection", clear_connection)
    return counted


async def test_a_full_pool_answers_every_check_without_requeueing_requests(
    server: FaultServer, bounces: list[int]
) -> None:
    spec = parse_spec(
        {"strategy": "http", "base_url": server.url, "timeout": 0.5, "max_connections": 4},
        registry=StrategyRegistry(entry_points=False),
    )
    strategy = HttpStrategy(spec.config)
    results = []

    async def worker(n: int) -> None:
        for i in range(60):
            target = Target(model=f"m{n}-{i}")
            results.append(await guarded_check(strategy, "http", target, timeout=0.6))

    try:
        await asyncio.gather(*(worker(n) for n in range(16)))
    finally:
        await strategy.aclose()
    down = [r for r in results if r.status.value != "healthy"]
    assert not down, down[:3]
    assert len(results) == server.total == 960
    assert bounces[0] == 0
