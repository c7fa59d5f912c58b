"""The status page's Server-Sent Events stream: transitions and summaries, fanned out to clients.

The fan-out never slows a probe: the monitor's transition listener only appends
to each client's bounded queue; a client whose queue is full is dropped (its
browser reconnects and reloads).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from .._monitor import Transition
from ._status_views import _iso, _StatusData

log = logging.getLogger("healthkit.asgi")

#: Events queued per SSE client before it counts as too slow and is dropped.
CLIENT_QUEUE = 1000
#: SSE clients served at once; more get a 503.
MAX_CLIENTS = 100
#: Seconds between keep-alive comments (they also reveal a client that went away).
HEARTBEAT = 15.0
#: Seconds one write to a client may take before the client is dropped.
SEND_TIMEOUT = 10.0
#: Seconds between summary events (counts by status, server readiness).
SUMMARY_PERIOD = 5.0


class _Client:
    """One SSE connection: a bounded queue the listener fills and the writer empties."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.queue: collections.deque[str] = collections.deque()
        self.wake = asyncio.Event()
        self.closed = False
        self.dropped = False

    def offer(self, chunk: str) -> None:
        if self.closed:
            return
        if len(self.queue) >= self.size:
            # Too slow: drop it rather than buffer without bound or wait for it.
            self.dropped = True
            self.queue.clear()
            self.close()
            return
        self.queue.append(chunk)
        self.wake.set()

    def close(self) -> None:
        self.closed = True
        self.wake.set()


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class _StatusEvents(_StatusData):
    clients: set[_Client]
    dropped: int
    queue_size: int
    max_clients: int
    _listening: bool
    _summary_task: asyncio.Task[None] | None

    def _on_transition(self, transition: Transition) -> None:
        # Runs in the monitor's listener call: build the event once, append to each
        # client's queue; never waits for any client.
        if not self.clients:
            return
        try:
            row = self._redacted(self.row(transition.model))
        except KeyError:  # removed by a reload meanwhile
            return
        event = _sse(
            "transition",
            {
                "model": row,
                "old": transition.old.value,
                "new": transition.new.value,
                "at": _iso(transition.at),
            },
        )
        for client in list(self.clients):
            client.offer(event)
            if client.dropped and client in self.clients:
                self.clients.discard(client)
                self.dropped += 1
                log.info("status page: dropped a slow event-stream client")

    async def _summaries(self) -> None:
        last: dict[str, Any] | None = None
        while self.clients:
            await asyncio.sleep(SUMMARY_PERIOD)
            summary = self.summary()
            if summary != last:
                last = summary
                for client in list(self.clients):
                    client.offer(_sse("summary", summary))

    def _listen(self) -> None:
        if not self._listening:
            self.monitor.add_listener(self._on_transition)
            self._listening = True
        if self._summary_task is None or self._summary_task.done():
            self._summary_task = asyncio.get_running_loop().create_task(
                self._summaries(), name="healthkit status page summaries"
            )

    async def events(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /status/events``: a raw ASGI endpoint, so a slow client is cut, not awaited."""
        await self._started()
        if scope.get("method") == "HEAD":  # the headers only: a stream has no end to wait for
            response = Response(media_type="text/event-stream")
            await response(scope, receive, send)
            return
        if len(self.clients) >= self.max_clients:
            response = JSONResponse({"error": "too many status page clients"}, status_code=503)
            await response(scope, receive, send)
            return
        client = _Client(self.queue_size)
        self.clients.add(client)
        self._listen()

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    client.close()
                    return

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-cache"),
                        (b"x-accel-buffering", b"no"),
                    ],
                }
            )
            client.offer("retry: 1000\n" + _sse("summary", self.summary()))
            while True:
                try:
                    await asyncio.wait_for(client.wake.wait(), HEARTBEAT)
                except asyncio.TimeoutError:
                    client.queue.append(": keep-alive\n\n")
                client.wake.clear()
                if client.closed:
                    break
                chunk = "".join(client.queue)
                client.queue.clear()
                try:
                    await asyncio.wait_for(
                        send(
                            {
                                "type": "http.response.body",
                                "body": chunk.encode(),
                                "more_body": True,
                            }
                        ),
                        SEND_TIMEOUT,
                    )
                except (asyncio.TimeoutError, OSError):
                    client.close()
                    return
            body = _sse("dropped", {"reason": "too slow"}).encode() if client.dropped else b""
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(
                    send({"type": "http.response.body", "body": body, "more_body": False}),
                    SEND_TIMEOUT,
                )
        finally:
            self.clients.discard(client)
            watcher.cancel()

    def close_streams(self) -> None:
        """End every event stream (a server shutting down waits for open responses)."""
        for client in list(self.clients):
            client.close()
