"""The shared HTTP pool never jams: checks cut at their deadline leave no stuck slot behind.

httpcore leaks a pool slot when a request is cancelled while it waits for a
connection (httpcore issue #1093): with enough of those the pool holds
``max_connections`` connections stuck in CONNECTING and every later request ends
in ``PoolTimeout``, for good. The ``http`` strategy queues checks at a gate of its
own before they reach httpcore, lets httpx enforce the deadline, and rebuilds its
client when it finds it starved anyway. Everything here runs against a real
loopback server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator

import httpx
import pytest

from _http_fault_server import FaultServer
from _monitor_support import http_config
from healthkit import HealthKit, Monitor, StrategyRegistry, Target, parse_spec
from healthkit._guard import guarded_check
from healthkit._metrics import MonitorMetrics
from healthkit.strategies.http import HttpStrategy
from healthkit.toolkit._connections import ConnectionSlots


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(delay=0.45) as srv:
        yield srv


def _strategy(url: str, **raw: object) -> HttpStrategy:
    spec = parse_spec(
        {"strategy": "http", "base_url": url, **raw}, registry=StrategyRegistry(entry_points=False)
    )
    return HttpStrategy(spec.config)


async def _churn(strategy: HttpStrategy, *, seconds: float, budget: int = 64) -> None:
    """Keep ``budget`` checks in flight for ``seconds``, each cut a little after its timeout.

    Like a monitor over many models: a new check starts whenever one ends, so
    start times (and deadlines) spread out and cuts land at every moment of a
    request's life, including while it waits for a pool connection.
    """
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds
    deadline = strategy.config.timeout + min(0.1 * strategy.config.timeout, 0.25)

    async def worker(n: int) -> None:
        i = 0
        while loop.time() < stop:
            i += 1
            await guarded_check(strategy, "http", Target(model=f"m{n}-{i}"), timeout=deadline)

    await asyncio.gather(*(worker(n) for n in range(budget)))


async def test_checks_cut_while_queued_for_a_connection_do_not_jam_the_pool(
    server: FaultServer,
) -> None:
    strategy = _strategy(server.url, timeout=0.5)
    try:
        server.set_mode("slow")  # answers in 0.45 s: just under the timeout
        await _churn(strategy, seconds=4.0)
        server.set_mode("healthy")
        before = server.total
        result = await guarded_check(strategy, "http", Target(model="m0"), timeout=2.0)
        assert result.status.value == "healthy", result
        assert server.total > before, "the check never reached the server"
    finally:
        await strategy.aclose()


def _pool_states(slot: httpx.AsyncHTTPTransport) -> list[str]:
    """httpcore's view of one connection slot's pool (private attributes: only tests look)."""
    return [conn.info() for conn in slot._pool.connections]  # type: ignore[attr-defined]


async def _jam(client: httpx.AsyncClient, *, size: int) -> None:
    """Jam every connection slot of ``client``: leave each one idle with its connection busy.

    That is what a leaked slot looks like (httpcore issue #1093 left connections
    stuck in CONNECTING). The client's own requests cannot do it: each waits for a
    slot of its own outside httpcore, and a slot whose connection is still busy
    when its response closes is replaced. So a request goes straight to each
    slot, past that queue, and its response is never read or closed: the
    connection stays ACTIVE with no request of the client's on it.
    """
    transport = client._transport
    assert isinstance(transport, ConnectionSlots)
    slots = [transport._new_slot() for _ in range(size)]
    transport._idle.extend(slots)
    for slot in slots:
        # Not closed: closing it would close the slot. The client's own close does.
        direct = httpx.AsyncClient(transport=slot, base_url=client.base_url)
        await direct.send(direct.build_request("GET", "/v2/models/jam/ready"), stream=True)
        [state] = _pool_states(slot)
        assert "ACTIVE" in state, state
    assert transport.stuck() == size


async def test_a_jammed_client_is_rebuilt_and_checks_reach_the_server_again(
    server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    strategy = _strategy(server.url, timeout=0.5, max_connections=4)
    try:
        server.set_mode("slow")
        jammed = strategy.client
        await _jam(jammed, size=4)
        server.set_mode("healthy")
        # The fault is real: the raw client hands out a stuck slot.
        with pytest.raises(httpx.PoolTimeout):
            await jammed.get("/v2/health/ready", timeout=0.2)
        before = server.total
        with caplog.at_level(logging.WARNING, logger="healthkit.strategies.http"):
            result = await strategy.acheck(Target(model="m0"))
        assert result.status.value == "healthy", result
        assert server.total == before + 1
        assert strategy.client_rebuilds == 1
        assert strategy.client is not jammed
        [record] = [r for r in caplog.records if r.name == "healthkit.strategies.http"]
        assert record.levelno == logging.WARNING and "rebuilt" in record.getMessage()
        # The old client is closed in the background, without a check waiting for it.
        await _wait_for(lambda: jammed.is_closed)
        # Later checks use the new client and need no further rebuild.
        for i in range(10):
            assert (await strategy.acheck(Target(model=f"m{i}"))).status.value == "healthy"
        assert strategy.client_rebuilds == 1
    finally:
        await strategy.aclose()
    assert jammed.is_closed and strategy.client.is_closed


async def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_rebuilds_are_exported_as_a_prometheus_counter(server: FaultServer) -> None:
    config = http_config(server.url, ["m0", "m1"], timeout=0.5, period=60.0, initial_delay=60.0)
    kit = HealthKit.from_config(config)
    monitor = Monitor(kit)
    try:
        await monitor.start()
        metrics = MonitorMetrics(monitor)
        assert 'healthkit_client_rebuilds_total{strategy="http"} 0.0' in metrics.render().decode()
        instance = kit.resolver.get("m0")
        assert isinstance(instance, HttpStrategy)
        server.set_mode("slow")
        await _jam(instance.client, size=instance.config.max_connections)
        server.set_mode("healthy")
        assert (await monitor.acheck("m1")).status.value == "healthy"
        assert 'healthkit_client_rebuilds_total{strategy="http"} 1.0' in metrics.render().decode()
    finally:
        await monitor.aclose()
