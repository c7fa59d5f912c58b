"""A loopback HTTP/1.1 predictor whose behaviour switches at run time (the pool and response tests).

It runs an asyncio server in a thread of its own, so the client under test never
shares its event loop. Modes:

- ``healthy``: every request is answered ``200`` at once;
- ``slow``: answered after ``delay`` seconds;
- ``hung``: the request is read and never answered (the connection stays open
  until the mode changes or the client gives up);
- ``refused``: the listening socket is closed and open connections are reset, so
  connecting is refused; leaving ``refused`` listens on the same port again.

``reply`` may be set to a coroutine function that answers a request itself (for
huge bodies, garbage, redirects, resets): it gets the request and the raw writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

MODES = ("healthy", "slow", "hung", "refused")


@attrs.frozen
class Request:
    method: str
    #: The request target exactly as it came on the wire (no normalisation).
    path: str
    headers: dict[str, str]


#: A custom responder: returns True to keep the connection open for more requests.
Reply = Callable[[Request, asyncio.StreamWriter], Awaitable[bool]]


def response(status: int, body: bytes = b"", *, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} X"]
    extra = {
        "Content-Length": str(len(body)),
        "Content-Type": "application/json",
        **(headers or {}),
    }
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0): the client sees 'connection reset by peer'."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # Closed already (the peer went first): there is nothing left to reset.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultServer:
    def __init__(self, *, delay: float = 0.45) -> None:
        self.mode = "healthy"
        self.delay = delay
        self.reply: Reply | None = None
        self.requests: Counter[str] = Counter()
        self.received: list[Request] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unhang = asyncio.Event()
        self.port = 0

    # -- control (from the test's thread) -----------------------------------------------

    def start(self) -> FaultServer:
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        try:
            self._call(self._shutdown())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def set_mode(self, mode: str) -> None:
        assert mode in MODES, mode
        self._call(self._set_mode(mode))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    @property
    def open_connections(self) -> int:
        return len(self._writers)

    def _call(self, coro: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)  # type: ignore[arg-type]

    # -- the server (in its own loop) -------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True, backlog=2048
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            reset(writer)
        self._writers.clear()

    async def _shutdown(self) -> None:
        self._unhang.set()
        await self._close_listener()
        # A connection accepted just before the listener closed gets its handler on a
        # later loop pass; stopping the loop first would leave its transport unclosed
        # (a ResourceWarning in whichever test runs the garbage collector next).
        for _ in range(3):
            await asyncio.sleep(0)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for writer in list(self._writers):
                reset(writer)

    async def _set_mode(self, mode: str) -> None:
        old, self.mode = self.mode, mode
        if old == "hung" and mode != "hung":
            self._unhang.set()
            self._unhang = asyncio.Event()
        if mode == "refused" and old != "refused":
            await self._close_listener()
        elif old == "refused" and mode != "refused":
            await self._listen()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            while await self._one(reader, writer):
                pass
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        except asyncio.CancelledError:
            pass  # the server is stopping
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.transport.abort()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        if length:
            await reader.readexactly(length)
        request = Request(method=method, path=path, headers=headers)
        with self._lock:
            self.requests[path] += 1
            self.received.append(request)
            del self.received[:-200]  # only the recent ones: endurance runs send many
        if self.reply is not None:
            return await self.reply(request, writer)
        mode = self.mode
        if mode == "hung":
            await self._unhang.wait()
            return False
        if mode == "slow":
            await asyncio.sleep(self.delay)
        if self.mode == "refused":
            return False
        writer.write(response(200, b"{}"))
        await writer.drain()
        return True
