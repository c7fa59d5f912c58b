"""The shared client of an ``http`` instance: the gate in front of the pool and one
generation of the client (the request itself is ``healthkit.toolkit.fetch``)."""

from __future__ import annotations

import asyncio
from collections import deque

import httpx

from ...toolkit import HttpReply

__all__ = ["Client", "Gate", "GateTimeout", "Reply"]

#: What one request got (the toolkit's, under the name the strategy's modules use).
Reply = HttpReply


class GateTimeout(Exception):
    """The check's budget ran out while it waited for a free connection (never entered httpx)."""

    def __init__(self, waited: float, in_flight: int) -> None:
        super().__init__(f"no free connection within {waited:.3g}s")
        self.in_flight = in_flight


class Gate:
    """A FIFO semaphore whose waits end by a timer, never by cancelling anything.

    Checks queue here, not in httpcore's pool: a request cancelled while it waits
    for a pool connection can leak the slot for good (httpcore issue #1093).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0
        self._waiters: deque[asyncio.Future[bool | None]] = deque()

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    async def acquire(self, timeout: float) -> bool | None:
        """True when acquired, False when ``timeout`` passed first, None when the gate closed."""
        if self.held < self.capacity and not self.waiting:
            self.held += 1
            return True
        if timeout <= 0:
            return False
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool | None] = loop.create_future()
        self._waiters.append(fut)
        timer = loop.call_later(timeout, _settle, fut, False)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.result():
                self.release()  # granted in the same step as the cancellation: pass it on
            raise
        finally:
            timer.cancel()
            if fut in self._waiters:
                self._waiters.remove(fut)

    def release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(True)  # the slot passes straight to the next waiter
                return
        self.held -= 1

    def close(self) -> None:
        """Send every waiter back (to retry on a new client)."""
        while self._waiters:
            _settle(self._waiters.popleft(), None)


def _settle(fut: asyncio.Future[bool | None], value: bool | None) -> None:
    if not fut.done():
        fut.set_result(value)


class Client:
    """One generation of the instance's client: the httpx client, its gate, its requests."""

    def __init__(self, client: httpx.AsyncClient, capacity: int) -> None:
        self.client = client
        self.gate = Gate(capacity)
        #: Requests inside httpx now: id -> (monotonic start, its timeout).
        self.requests: dict[int, tuple[float, float]] = {}
        self.drained: asyncio.Event | None = None

    def leaked_slots(self) -> int:
        """Pool connections busy with no request of ours on them: slots httpcore leaked.

        Every request goes through the gate, and its connection is idle or closed
        again before the request leaves: so a pool may hold at most as many busy
        connections as there are requests inside httpx. ``_pool`` is httpx's
        private attribute; without it (another httpx) this finds nothing.
        """
        pool = getattr(self.client._transport, "_pool", None)
        connections = getattr(pool, "connections", None)
        if not isinstance(connections, list):
            return 0
        busy = 0
        for conn in connections:
            try:
                if not conn.is_idle() and not conn.is_closed():
                    busy += 1
            except Exception:  # an httpcore of another shape: no evidence either way
                return 0
        return max(0, busy - len(self.requests))

    def overdue(self, now: float, margin: float) -> int:
        """Requests that outlived their timeout by ``margin``: httpx is not ending them."""
        return sum(1 for began, limit in self.requests.values() if now - began > 2 * limit + margin)
