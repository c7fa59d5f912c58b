"""The shared client of an ``http`` instance: the gate in front of the pool and one
generation of the client (the request itself is ``healthkit.toolkit.fetch``)."""

from __future__ import annotations

import asyncio

import httpx

from ..._gate import Gate
from ...toolkit import HttpReply

__all__ = ["Client", "GateTimeout", "Reply"]

#: What one request got (the toolkit's, under the name the strategy's modules use).
Reply = HttpReply


class GateTimeout(Exception):
    """The check's budget ran out while it waited for a free connection (never entered httpx)."""

    def __init__(self, waited: float, in_flight: int) -> None:
        super().__init__(f"no free connection within {waited:.3g}s")
        self.in_flight = in_flight


class Client:
    """One generation of the instance's client: the httpx client, its gate, its requests."""

    def __init__(self, client: httpx.AsyncClient, capacity: int) -> None:
        self.client = client
        self.gate = Gate(capacity)
        #: Requests inside httpx now: id -> (monotonic start, its timeout).
        self.requests: dict[int, tuple[float, float]] = {}
        self.drained: asyncio.Event | None = None

    def leaked_slots(self) -> int:
        """Connections busy with no request of ours on them: slots httpcore leaked.

        Every request goes through the gate and gets a connection of its own, idle
        or closed again before the request leaves (see ``ConnectionSlots.stuck``).
        A client with another transport finds nothing.
        """
        stuck = getattr(self.client._transport, "stuck", None)
        return int(stuck()) if callable(stuck) else 0

    def overdue(self, now: float, margin: float) -> int:
        """Requests that outlived their timeout by ``margin``: httpx is not ending them."""
        return sum(1 for began, limit in self.requests.values() if now - began > 2 * limit + margin)
