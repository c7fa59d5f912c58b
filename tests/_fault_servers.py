"""Fault servers of the permanent fault suite (``tests/test_fault_suite_*.py``).

HTTP faults are answers of :class:`_http_fault_server.FaultServer` (its ``reply``
hook); TLS is that server over an ``ssl`` context made from the ``tls_files``
fixture's trustme CA. Faults a byte stream must produce below HTTP (a partial
HTTP/2 handshake, an SSH banner, a plaintext server answering a TLS hello) come
from :class:`RawServer`, a threaded TCP listener. gRPC faults are a real
grpcio server whose behaviour each config picks with its ``x-fault`` metadata.

Servers that can echo what the client sent echo its ``authorization``: every
cell carries a secret, and the suite asserts it never shows in a result, even
when the upstream repeats it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from _http_fault_server import FaultServer, Request, reset, response

#: The secret every cell configures (a header, metadata, an API key, ``send``, ``env``).
TOKEN = "s3cr3t-fault-token-4b1d9e"
BEARER = f"Bearer {TOKEN}"
#: The model every cell checks.
MODEL = "m"
#: A second model sharing a batch cell's config (a monitor batches two or more).
BATCH_PEER = "m2"
#: RFC 6761: never resolves, and asking leaves the machine with no traffic.
INVALID_HOST = "no-such-host.invalid"
#: Seconds one attempt may take in every cell; short, so that the suite stays fast.
TIMEOUT = 0.5
#: A slow server answers after this long: well past ``TIMEOUT``.
SLOW = 3 * TIMEOUT
#: A drip-feeding server sends one byte this often: each read gets a byte well
#: within ``TIMEOUT``, so only a deadline on the whole answer notices.
DRIP_INTERVAL = 0.1
#: A huge body announces this many bytes ...
HUGE_DECLARED = 1 << 30
#: ... and sends this many (then stalls), so a client without a cap holds 32 MiB at most.
HUGE_SENT = 32 << 20

GARBAGE = b"\x00\xff\xfe\x1b[31m<<garbage>>\x80\x81 "
SSH_BANNER = b"SSH-2.0-OpenSSH_9.6 "


def _echo(request: Request) -> bytes:
    return request.headers.get("authorization", "").encode("latin-1")


# -- HTTP answers (FaultServer.reply) ------------------------------------------------------

#: What a healthy server answers on each path the suite's configs ask.
HEALTHY_BODIES: dict[str, bytes] = {
    f"/v2/models/{MODEL}/ready": b"{}",
    "/v2/health/ready": b"{}",
    f"/v1/models/{MODEL}": b'{"name": "m", "ready": true}',
    "/v2/repository/index": b'[{"name": "m", "state": "READY"}]',
    f"/status/{MODEL}": b'{"ready": true}',
    "/health": b"{}",
    "/v1/models": b'{"object": "list", "data": [{"id": "m"}]}',
}


async def healthy(request: Request, writer: asyncio.StreamWriter) -> bool:
    body = HEALTHY_BODIES.get(request.path.split("?", 1)[0])
    writer.write(response(200, body) if body is not None else response(404, b"{}"))
    await writer.drain()
    return True


async def slow(request: Request, writer: asyncio.StreamWriter) -> bool:
    await asyncio.sleep(SLOW)
    return await healthy(request, writer)


async def reset_mid_response(request: Request, writer: asyncio.StreamWriter) -> bool:
    # Half a status line, then RST: no client can read a complete answer out of it
    # (not even tcp's expect "HTTP/1.1 200").
    writer.write(b"HTTP/1.1 2")
    await writer.drain()
    reset(writer)
    return False


async def drip(request: Request, writer: asyncio.StreamWriter) -> bool:
    for byte in response(200, HEALTHY_BODIES.get(request.path, b"{}")):
        writer.write(bytes([byte]))
        await writer.drain()  # raises once the client has gone
        await asyncio.sleep(DRIP_INTERVAL)
    return True


async def server_error(request: Request, writer: asyncio.StreamWriter) -> bool:
    writer.write(response(500, b'{"error": "backend failed for ' + _echo(request) + b'"}'))
    await writer.drain()
    return True


async def garbage_body(request: Request, writer: asyncio.StreamWriter) -> bool:
    writer.write(response(200, GARBAGE + _echo(request) + GARBAGE))
    await writer.drain()
    return True


async def not_http(request: Request, writer: asyncio.StreamWriter) -> bool:
    # Another protocol's greeting, with a blank line after the noise so that an HTTP
    # client has a whole "head" to parse (without one, it reads "disconnected").
    writer.write(SSH_BANNER + _echo(request) + b"\r\n" + GARBAGE + b"\r\n\r\n")
    await writer.drain()
    return False


async def huge_body(request: Request, writer: asyncio.StreamWriter) -> bool:
    head = response(200, b"", headers={"Content-Length": str(HUGE_DECLARED)})
    writer.write(head)
    chunk = b"x" * 65536
    for _ in range(HUGE_SENT // len(chunk)):
        writer.write(chunk)
        await writer.drain()
    await asyncio.Event().wait()  # stalls until the server stops
    return False


async def huge_unsized_body(request: Request, writer: asyncio.StreamWriter) -> bool:
    # No Content-Length: the body ends when the connection does, so only a client that
    # counts what it reads can stop early.
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
    chunk = b"x" * 65536
    for _ in range(HUGE_SENT // len(chunk)):
        writer.write(chunk)
        await writer.drain()
    await asyncio.Event().wait()  # stalls until the server stops
    return False


async def redirect_loop(request: Request, writer: asyncio.StreamWriter) -> bool:
    # Back to the same path, with the client's credential in the query string.
    location = request.path.split("?", 1)[0] + "?token=" + _echo(request).decode("latin-1")
    writer.write(response(302, b"", headers={"Location": location}))
    await writer.drain()
    return True


#: HTTP faults served by a FaultServer: fault -> its answer (``None``: the server's
#: own ``hung`` mode, which reads the request and never answers).
HTTP_REPLIES: dict[str, Any] = {
    "none": healthy,
    "reset": reset_mid_response,
    "hang": None,
    "slow": slow,
    "drip": drip,
    "5xx": server_error,
    "garbage": garbage_body,
    "non-http": not_http,
    "huge": huge_body,
    "huge-unsized": huge_unsized_body,
    "redirect-loop": redirect_loop,
}


class TlsFaultServer(FaultServer):
    """A FaultServer behind TLS, with the certificate of ``context``."""

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__()
        self._tls = context

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, ssl=self._tls, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]


# -- raw TCP --------------------------------------------------------------------------------

#: ``handler(conn, stopping)`` serves one connection; it must return soon after
#: ``stopping`` is set (``conn`` has a short timeout, so ``recv`` polls).
Handler = Callable[[socket.socket, threading.Event], None]


class RawServer:
    """A TCP listener on 127.0.0.1 that hands every connection to ``handler`` in a thread."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._listener.settimeout(0.05)
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="raw-fault-server", daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def start(self) -> RawServer:
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._acceptor.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(0.05)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._handler(conn, self._stopping)
        except OSError:
            pass  # the client went away: that is its right
        finally:
            abort(conn)


def abort(conn: socket.socket) -> None:
    """Close with RST (SO_LINGER 0)."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def recv(conn: socket.socket, stopping: threading.Event) -> bytes | None:
    """Bytes from ``conn``; ``b""`` when the client closed, None once the server stops."""
    while not stopping.is_set():
        try:
            return conn.recv(65536)
        except TimeoutError:
            continue
    return None


def idle(conn: socket.socket, stopping: threading.Event) -> None:
    """Read and drop until the client closes or the server stops."""
    while recv(conn, stopping):
        pass


def plaintext_http(conn: socket.socket, stopping: threading.Event) -> None:
    """A plain HTTP/1.1 server's answer to anything it cannot parse (a TLS hello)."""
    if recv(conn, stopping):
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


#: An HTTP/2 SETTINGS frame with no settings: the server's half of the handshake.
H2_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
H2_SETTINGS_ACK = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_H2_HEADERS = 0x1
_H2_SETTINGS = 0x4


def h2_reset_mid_call(conn: socket.socket, stopping: threading.Event) -> None:
    """Complete the HTTP/2 handshake, wait for the call's HEADERS, then reset the connection."""
    conn.sendall(H2_SETTINGS)
    buf = b""
    pos = len(H2_PREFACE)  # frames start after the client's preface
    while True:
        chunk = recv(conn, stopping)
        if not chunk:
            return
        buf += chunk
        while len(buf) - pos >= 9:
            length, kind, flags = (
                int.from_bytes(buf[pos : pos + 3], "big"),
                buf[pos + 3],
                buf[pos + 4],
            )
            if kind == _H2_HEADERS:
                return  # the call is on the wire: RawServer resets the connection
            if kind == _H2_SETTINGS and not flags & 0x1:
                conn.sendall(H2_SETTINGS_ACK)
            pos += 9 + length


def h2_drip(conn: socket.socket, stopping: threading.Event) -> None:
    """Drip the server's SETTINGS frame a byte at a time, then say nothing more."""
    for byte in H2_SETTINGS:
        if stopping.wait(2 * DRIP_INTERVAL):
            return
        conn.sendall(bytes([byte]))
    idle(conn, stopping)


def ssh_banner(conn: socket.socket, stopping: threading.Event) -> None:
    """Not HTTP at all: an SSH server's greeting, then binary noise."""
    conn.sendall(SSH_BANNER + BEARER.encode() + b"\r\n" + GARBAGE)
    idle(conn, stopping)


# -- gRPC -------------------------------------------------------------------------------------

#: The methods a ``grpc`` check may call (health-v1 and the OIP v2 ones).
GRPC_METHODS = {
    "grpc.health.v1.Health": ("Check",),
    "inference.GRPCInferenceService": ("ModelReady", "ServerReady", "ServerLive"),
}
#: ``HealthCheckResponse(SERVING)`` and ``ModelReadyResponse(ready=True)`` encode alike:
#: field 1, varint 1.
SERVING = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)
#: Past grpc's default 4 MiB receive limit.
GRPC_HUGE = 5 << 20


def _grpc_fault(request: bytes, context: Any) -> bytes:
    metadata = dict(context.invocation_metadata() or ())
    fault = metadata.get("x-fault", "none")
    echo = str(metadata.get("authorization", ""))
    if fault == "hang":
        while context.is_active():
            time.sleep(0.02)
        return b""
    if fault == "slow":
        end = time.monotonic() + SLOW
        while context.is_active() and time.monotonic() < end:
            time.sleep(0.02)
    elif fault == "5xx":
        # The server's message repeats the caller's credential.
        context.abort(grpc.StatusCode.INTERNAL, f"backend failed for {echo}")
    elif fault == "garbage":
        return b"\xff\xff\xff\xff" + echo.encode()
    elif fault == "huge":
        return b"\x00" * GRPC_HUGE
    return bytes(SERVING.SerializeToString())


@contextlib.contextmanager
def grpc_fault_server(credentials: Any = None) -> Iterator[int]:
    """A threaded grpcio server answering every health call by the caller's ``x-fault``."""
    raw = {"request_deserializer": bytes, "response_serializer": bytes}
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    for service, methods in GRPC_METHODS.items():
        handlers = {m: grpc.unary_unary_rpc_method_handler(_grpc_fault, **raw) for m in methods}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None).wait(5)
