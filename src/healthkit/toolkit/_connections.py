"""An httpx transport whose connections each carry one request at a time, handed out in turn.

httpx's own pool offers a freed connection to every request queued for one;
all but one find it taken (``ConnectionNotAvailable``), queue again and retry.
Under a steady load of ``max_connections`` requests that was about three
retries a request, and now and then two requests kept bouncing off each other
for over a second: a health check timed out against a server that answered
everything it was sent. Here each request waits in one FIFO queue for a
connection of its own, so httpcore's pool never has two requests to share out.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import httpx

from .._gate import Gate

__all__ = ["ConnectionSlots"]


class ConnectionSlots(httpx.AsyncBaseTransport):
    """At most ``size`` connections, one request on each at a time; the rest wait in turn.

    Each slot is an httpx transport of one keep-alive connection, made when
    first needed. The slot used last is reused first, so a light load keeps
    few connections open. A request waits for a slot at most its ``pool``
    timeout (``httpx.PoolTimeout``), and a wait is never cut by cancelling
    anything inside httpcore. A slot whose connection is still busy when its
    response is closed (a cancellation that httpcore did not finish) is closed
    and replaced, never handed out again.
    """

    def __init__(self, size: int, *, verify: ssl.SSLContext) -> None:
        self._verify = verify
        self._gate = Gate(size)
        self._idle: list[httpx.AsyncHTTPTransport] = []
        self._slots: list[httpx.AsyncHTTPTransport] = []
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:  # else a free slot would open a connection nothing closes
            raise RuntimeError("the transport is closed")
        timeouts = request.extensions.get("timeout") or {}
        wait = timeouts.get("pool")
        granted = await self._gate.acquire(wait)
        if not granted:
            if granted is None or self._closed:
                raise RuntimeError("the transport is closed")
            raise httpx.PoolTimeout(f"no free connection within {wait:.3g}s", request=request)
        try:
            slot = self._idle.pop() if self._idle else self._new_slot()
        except BaseException:
            self._gate.release()
            raise
        try:
            response = await slot.handle_async_request(request)
        except BaseException:
            self._give_back(slot)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_GivenBackOnClose(response.stream, self, slot),
            extensions=response.extensions,
        )

    def _new_slot(self) -> httpx.AsyncHTTPTransport:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        slot = httpx.AsyncHTTPTransport(verify=self._verify, limits=limits)
        self._slots.append(slot)
        return slot

    def _give_back(self, slot: httpx.AsyncHTTPTransport) -> None:
        if self._closed:
            return
        if _busy(slot):
            self._slots.remove(slot)
            task = asyncio.get_running_loop().create_task(slot.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        else:
            self._idle.append(slot)
        self._gate.release()

    def stuck(self) -> int:
        """Connections of idle slots that are not idle: busy with no request of ours on
        them (a leaked slot; ``_give_back`` lets none in, so only a request sent to a
        slot directly leaves one)."""
        return sum(_busy(slot) for slot in self._idle)

    async def aclose(self) -> None:
        self._closed = True
        self._gate.close()
        slots, self._slots, self._idle = self._slots, [], []
        for slot in slots:
            await slot.aclose()
        if self._closing:
            await asyncio.wait(set(self._closing))


def _busy(slot: httpx.AsyncHTTPTransport) -> int:
    """Connections of ``slot`` neither idle nor closed. ``_pool`` is httpx's private
    attribute; without it (another httpx) this finds none."""
    connections = getattr(getattr(slot, "_pool", None), "connections", None)
    if not isinstance(connections, list):
        return 0
    busy = 0
    for conn in connections:
        try:
            if not conn.is_idle() and not conn.is_closed():
                busy += 1
        except Exception:  # an httpcore of another shape: no evidence either way
            return 0
    return busy


class _GivenBackOnClose(httpx.AsyncByteStream):
    """The response body; closing it gives the slot back (once)."""

    def __init__(
        self,
        stream: httpx.AsyncByteStream,
        owner: ConnectionSlots,
        slot: httpx.AsyncHTTPTransport,
    ) -> None:
        self._stream = stream
        self._owner: ConnectionSlots | None = owner
        self._slot = slot

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            owner, self._owner = self._owner, None
            if owner is not None:
                owner._give_back(self._slot)
