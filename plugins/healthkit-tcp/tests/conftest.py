"""Real TCP (and TLS) servers on 127.0.0.1 for the ``tcp`` strategy's tests.

Servers run in threads, so the conformance suite (which runs its own event
loops) and async tests can both use them. A refused port and a silent server come
from healthkit's pytest plugin (``healthkit_refused_port``, ``healthkit_silent_server``).
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
import trustme

#: Serves one accepted connection (already TLS-wrapped when the server uses TLS).
Handler = Callable[[socket.socket], None]


class TcpServer:
    """A threaded loopback server running ``handler`` per connection; records what it received."""

    def __init__(self, handler: Handler, *, tls: ssl.SSLContext | None = None) -> None:
        self.received: list[bytes] = []
        self._lock = threading.Lock()

        class RequestHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                if tls is not None:
                    try:
                        sock = tls.wrap_socket(sock, server_side=True)
                    except (ssl.SSLError, OSError):
                        return  # a client that rejects our certificate
                try:
                    handler(sock)
                except OSError:
                    pass  # the client went away: normal for a probe
                finally:
                    if sock is not self.request:
                        sock.close()  # the TLS wrapper owns the descriptor now

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            # The default backlog (5) drops concurrent probes' SYNs: 1 s retransmits.
            request_queue_size = 128

        self._server = Server(("127.0.0.1", 0), RequestHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    def record(self, data: bytes) -> None:
        with self._lock:
            self.received.append(data)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> TcpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def wait_for_eof(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while sock.recv(4096):
            pass


@pytest.fixture
def tcp_server() -> Iterator[Callable[..., TcpServer]]:
    """Start servers: ``tcp_server(handler, tls=None)``; every one is stopped afterwards."""
    started: list[TcpServer] = []

    def start(handler: Handler, *, tls: ssl.SSLContext | None = None) -> TcpServer:
        server = TcpServer(handler, tls=tls).start()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def pong_server(tcp_server: Callable[..., TcpServer]) -> TcpServer:
    """Answers ``+PONG`` once it has read ``PING\\r\\n``, like a Redis server."""
    server: TcpServer

    def handle(sock: socket.socket) -> None:
        data = read_until(sock, b"PING\r\n")
        server.record(data)
        if data.endswith(b"PING\r\n"):
            sock.sendall(b"+PONG\r\n")
        wait_for_eof(sock)

    server = tcp_server(handle)
    return server


@pytest.fixture
def echo_once_server(tcp_server: Callable[..., TcpServer]) -> TcpServer:
    """Echoes the first chunk it reads, then hangs up."""

    def handle(sock: socket.socket) -> None:
        sock.sendall(sock.recv(4096))

    return tcp_server(handle)


@attrs.frozen
class Tls:
    ca: trustme.CA
    ca_path: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
        return ctx


@pytest.fixture(scope="session")
def tcp_tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("tcp-tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return Tls(ca=ca, ca_path=path)


@pytest.fixture
def tls_banner_server(tcp_server: Callable[..., TcpServer], tcp_tls: Tls) -> TcpServer:
    """A TLS server (certificate for 127.0.0.1 and localhost) that greets with ``HELLO``."""

    def handle(sock: socket.socket) -> None:
        sock.sendall(b"HELLO\r\n")
        wait_for_eof(sock)

    return tcp_server(handle, tls=tcp_tls.server_context())
