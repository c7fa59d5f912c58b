"""Loopback servers for tests that need a target which never answers."""

from __future__ import annotations

import selectors
import socket
import threading
from types import TracebackType

__all__ = ["SilentServer"]


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts connections and never answers.

    What it receives is read and dropped; a connection is closed as soon as its
    client closes, so a leak check after the client's close sees no socket of
    this server's left over. Use it as a context manager (or ``start``/``close``).
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._accepted = 0
        self._lock = threading.Lock()

    # -- addresses -------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("server is not running")
        return int(self._listener.getsockname()[1])

    @property
    def address(self) -> str:
        """``host:port``."""
        return f"{self._host}:{self.port}"

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.address}"

    @property
    def accepted(self) -> int:
        """How many connections were accepted so far."""
        with self._lock:
            return self._accepted

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> SilentServer:
        if self._listener is not None:
            return self
        self._listener = socket.create_server((self._host, 0), backlog=64)
        self._listener.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="silent-server", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None and self._wake_w is not None:
            self._stop.set()
            self._wake_w.send(b"x")
            self._thread.join()
        for sock in (self._listener, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._listener = self._wake_r = self._wake_w = None
        self._thread = None

    def __enter__(self) -> SilentServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the thread ------------------------------------------------------------

    def _serve(self) -> None:
        assert self._listener is not None and self._wake_r is not None
        conns: set[socket.socket] = set()
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            try:
                while not self._stop.is_set():
                    for key, _ in sel.select():
                        sock = key.fileobj
                        assert isinstance(sock, socket.socket)
                        if sock is self._wake_r:
                            continue
                        if sock is self._listener:
                            try:
                                conn, _addr = sock.accept()
                            except BlockingIOError:
                                continue
                            conn.setblocking(False)
                            conns.add(conn)
                            sel.register(conn, selectors.EVENT_READ)
                            with self._lock:
                                self._accepted += 1
                            continue
                        try:
                            data = sock.recv(65536)
                        except BlockingIOError:
                            continue
                        except OSError:
                            data = b""
                        if not data:
                            sel.unregister(sock)
                            conns.discard(sock)
                            sock.close()
            finally:
                for conn in conns:
                    sel.unregister(conn)
                    conn.close()
