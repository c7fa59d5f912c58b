"""``http_client``'s transport: one request per connection, the rest waiting in turn.

Against a real loopback server (``FaultServer``, in a thread of its own).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from _http_fault_server import FaultServer
from _monitor_support import wait_until
from healthkit import SecretUrl
from healthkit.toolkit import http_client
from healthkit.toolkit._connections import ConnectionSlots


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(delay=0.1) as srv:
        yield srv


@pytest.fixture
async def client(server: FaultServer) -> AsyncIterator[httpx.AsyncClient]:
    client = http_client(SecretUrl(server.url), timeout=5.0, max_connections=3)
    try:
        yield client
    finally:
        await client.aclose()


def _slots(client: httpx.AsyncClient) -> ConnectionSlots:
    transport = client._transport
    assert isinstance(transport, ConnectionSlots)
    return transport


async def test_requests_beyond_the_slots_wait_their_turn_on_that_many_connections(
    server: FaultServer, client: httpx.AsyncClient
) -> None:
    server.set_mode("slow")  # each answer takes 0.1 s: the twelve requests overlap
    replies = await asyncio.gather(*(client.get(f"/v2/models/m{i}/ready") for i in range(12)))
    assert [r.status_code for r in replies] == [200] * 12
    assert server.total == 12
    assert server.open_connections == 3  # kept alive, never more than max_connections
    assert len(_slots(client)._idle) == 3


async def test_a_light_load_keeps_reusing_one_connection(
    server: FaultServer, client: httpx.AsyncClient
) -> None:
    for i in range(5):
        assert (await client.get(f"/v2/models/m{i}/ready")).status_code == 200
    assert server.total == 5
    assert server.open_connections == 1


async def test_no_slot_within_the_pool_timeout_is_a_pool_timeout(server: FaultServer) -> None:
    client = http_client(SecretUrl(server.url), timeout=5.0, max_connections=1)
    try:
        server.set_mode("hung")
        hung = asyncio.ensure_future(client.get("/v2/models/hung/ready"))
        await wait_until(lambda: server.total == 1)  # the one connection is taken
        with pytest.raises(httpx.PoolTimeout, match=r"no free connection within 0\.2s"):
            await client.get("/v2/models/m/ready", timeout=httpx.Timeout(5.0, pool=0.2))
        # Cancelled mid-request: its slot comes back (its connection closed, so a new one).
        hung.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hung
        server.set_mode("healthy")
        reply = await client.get("/v2/models/m/ready", timeout=httpx.Timeout(5.0, pool=1.0))
        assert reply.status_code == 200
        assert _slots(client).stuck() == 0
    finally:
        await client.aclose()


async def test_a_slot_left_busy_by_its_request_is_replaced_not_handed_out(
    server: FaultServer,
) -> None:
    client = http_client(SecretUrl(server.url), timeout=5.0, max_connections=1)
    slots = _slots(client)
    try:
        response = await client.send(client.build_request("GET", "/v2/models/m/ready"), stream=True)
        [slot] = slots._slots
        # The connection is still busy when its response is given back (as after a
        # cancellation httpcore did not finish): the body's own close is skipped.
        given = response.stream._stream  # type: ignore[attr-defined]  # httpx's BoundAsyncStream
        given._stream = _NoClose(given._stream)
        await response.aclose()
        assert slots._slots == [] and slots._idle == []  # closed in the background
        reply = await client.get("/v2/models/m/ready", timeout=httpx.Timeout(5.0, pool=1.0))
        assert reply.status_code == 200
        assert len(slots._slots) == 1 and slots._slots[0] is not slot
    finally:
        await client.aclose()


class _NoClose(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        return None


async def test_closing_the_client_ends_requests_in_flight_and_waiting(
    server: FaultServer,
) -> None:
    client = http_client(SecretUrl(server.url), timeout=30.0, max_connections=1)
    server.set_mode("hung")
    in_flight = asyncio.ensure_future(client.get("/v2/models/a/ready"))
    await wait_until(lambda: server.total == 1)
    waiting = asyncio.ensure_future(client.get("/v2/models/b/ready"))
    await wait_until(lambda: _slots(client)._gate.waiting == 1)  # it queues for the connection
    await client.aclose()
    _, pending = await asyncio.wait({in_flight, waiting}, timeout=5.0)
    assert not pending
    with pytest.raises(RuntimeError, match="closed"):
        waiting.result()
    assert in_flight.exception() is not None
    assert server.total == 1


async def test_a_closed_transport_opens_no_connection(server: FaultServer) -> None:
    client = http_client(SecretUrl(server.url), timeout=5.0, max_connections=2)
    transport = _slots(client)
    await client.aclose()
    request = httpx.Request("GET", f"{server.url}/v2/models/m/ready")
    with pytest.raises(RuntimeError, match="closed"):
        await transport.handle_async_request(request)
    assert server.total == 0 and transport._slots == []
