"""A FIFO semaphore whose waits end by a timer, never by cancelling anything."""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["Gate"]


class Gate:
    """``capacity`` slots, handed out first come, first served.

    A wait ends when a slot is passed on, when its timer fires or when the gate
    closes; nothing is cancelled to end it (requests cancelled while they waited
    in httpcore's own queue could leak its slots for good: httpcore issue #1093).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0
        self._waiters: deque[asyncio.Future[bool | None]] = deque()

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    async def acquire(self, timeout: float | None) -> bool | None:
        """True when acquired, False when ``timeout`` (None: no limit) passed first,
        None when the gate closed."""
        if self.held < self.capacity and not self.waiting:
            self.held += 1
            return True
        if timeout is not None and timeout <= 0:
            return False
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool | None] = loop.create_future()
        self._waiters.append(fut)
        timer = loop.call_later(timeout, _settle, fut, False) if timeout is not None else None
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.result():
                self.release()  # granted in the same step as the cancellation: pass it on
            raise
        finally:
            if timer is not None:
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
        """Send every waiter back (``acquire`` returns None)."""
        while self._waiters:
            _settle(self._waiters.popleft(), None)


def _settle(fut: asyncio.Future[bool | None], value: bool | None) -> None:
    if not fut.done():
        fut.set_result(value)
