"""Shared fixtures: real loopback servers (HTTP, TLS, silent, closing) and a recording test plugin.

Everything here starts real sockets on 127.0.0.1 with port 0 and stops them in a
``finally``; nothing is mocked. The ``rec`` strategy is an in-process plugin whose
instances record how often they were created, checked and closed, so resolver and
facade tests can prove sharing, concurrency caps and exactly-once closing.
"""

from __future__ import annotations

import asyncio
import http.server
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
import trustme

from healthkit import (
    CheckResult,
    Status,
    StrategyContext,
    StrategyRegistrar,
    StrategyRegistry,
    StrategySpec,
    Target,
    hookimpl,
    parse_spec,
)
from healthkit.strategies.http import HttpStrategy
from healthkit.testing import OipServer, SilentServer

# -- the recording test strategy ------------------------------------------------------


@attrs.frozen(kw_only=True)
class RecConfig:
    """Config of the ``rec`` test strategy: every field changes the spec."""

    key: int = 0
    #: Child specs acquired through the resolver, like a composite does.
    children: tuple[StrategySpec, ...] = ()
    #: The factory raises (after acquiring the children).
    fail: bool = False
    #: What a check does: a status value, or "raise", "hang", "garbage".
    behaviour: str = "healthy"
    #: Seconds each check sleeps (to overlap concurrent checks).
    delay: float = 0.0


class RecStrategy:
    """A ``rec`` instance: counts checks in flight and closes."""

    def __init__(self, recorder: Recorder, config: RecConfig, children: Sequence[object]) -> None:
        self.recorder = recorder
        self.config = config
        self.children = tuple(children)
        self.closes = 0
        self.checks = 0

    async def acheck(self, target: Target) -> CheckResult:
        rec = self.recorder
        self.checks += 1
        rec.in_flight += 1
        rec.max_in_flight = max(rec.max_in_flight, rec.in_flight)
        try:
            if self.config.delay:
                await asyncio.sleep(self.config.delay)
            behaviour = self.config.behaviour
            if behaviour == "raise":
                raise RuntimeError("rec exploded")
            if behaviour == "hang":
                await asyncio.Event().wait()
            if behaviour == "garbage":
                return "not a result"  # type: ignore[return-value]
            return CheckResult(
                status=Status(behaviour),
                strategy="rec",
                target=target,
                detail=f"key {self.config.key}",
            )
        finally:
            rec.in_flight -= 1

    async def aclose(self) -> None:
        self.closes += 1


class Recorder:
    """An in-process plugin contributing strategy ``rec``; records every instance it builds."""

    def __init__(self, strategy_name: str = "rec", *, creation_delay: float = 0.0) -> None:
        self.__name__ = f"recorder-{strategy_name}"
        self.strategy_name = strategy_name
        self.creation_delay = creation_delay
        self.created: list[RecStrategy] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    @hookimpl
    def healthkit_register_strategies(self, registrar: StrategyRegistrar) -> None:
        registrar.add(
            self.strategy_name, config=RecConfig, factory=self.create, description="test strategy"
        )

    def create(self, config: RecConfig, context: StrategyContext) -> RecStrategy:
        if self.creation_delay:
            # Widen the window in which a racing second creation would happen.
            time.sleep(self.creation_delay)
        children = [context.acquire(spec) for spec in config.children]
        if config.fail:
            raise RuntimeError(f"factory of key {config.key} failed")
        instance = RecStrategy(self, config, children)
        with self._lock:
            self.created.append(instance)
        return instance

    def live(self) -> list[RecStrategy]:
        return [i for i in self.created if i.closes == 0]


def rec(key: int = 0, **kwargs: Any) -> StrategySpec:
    """A ``rec`` spec."""
    return StrategySpec(strategy="rec", config=RecConfig(key=key, **kwargs))


@pytest.fixture(scope="session")
def rec_tools() -> Any:
    """The ``rec`` plugin classes, for tests (hypothesis) that build their own registries."""

    class Tools:
        Recorder = Recorder
        RecConfig = RecConfig
        RecStrategy = RecStrategy
        spec = staticmethod(rec)

    return Tools


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def rec_registry(recorder: Recorder) -> StrategyRegistry:
    """Built-ins plus ``rec``; no entry points, so installed plugins cannot interfere."""
    registry = StrategyRegistry(plugins=[recorder], entry_points=False, disabled=())
    assert not registry.failures, registry.failures
    return registry


@pytest.fixture
def registry() -> StrategyRegistry:
    """Built-in strategies only."""
    return StrategyRegistry(entry_points=False, disabled=())


@pytest.fixture
async def make_http(registry: StrategyRegistry) -> AsyncIterator[Callable[..., HttpStrategy]]:
    """Build ``HttpStrategy`` instances from raw config keys, by the strategy's own factory
    (``batch = true`` gives the batch class); all closed afterwards."""
    made: list[HttpStrategy] = []

    def build(**raw: Any) -> HttpStrategy:
        spec = parse_spec({"strategy": "http", **raw}, registry=registry)
        strategy = HttpStrategy.create(spec.config, None)  # type: ignore[arg-type]
        made.append(strategy)
        return strategy

    try:
        yield build
    finally:
        for strategy in made:
            await strategy.aclose()


# -- loopback servers ------------------------------------------------------------------


# ``oip_server`` and ``refused_url`` are short names for the pytest plugin's fixtures
# (healthkit.testing), which plugin tests use too: one definition of each.


@pytest.fixture
def oip_server(healthkit_oip_server: OipServer) -> OipServer:
    """``alpha`` ready, ``beta`` not ready, ``flaky`` ready every other request."""
    return healthkit_oip_server


#: Decides the reply to one request: (method, path, request number for this path) ->
#: (status, body, content type).
Script = Callable[[str, str, int], tuple[int, bytes, str]]


class ScriptedServer:
    """A threaded HTTP/1.1 server whose replies come from a script; records every request."""

    def __init__(self, script: Script, *, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.requests: Counter[str] = Counter()
        self.methods: list[str] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _reply(self) -> None:
                with owner._lock:
                    owner.requests[self.path] += 1
                    n = owner.requests[self.path]
                    owner.methods.append(self.command)
                    owner.headers.append({k.lower(): v for k, v in self.headers.items()})
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                status, body, content_type = owner.script(self.command, self.path, n)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_HEAD = _reply

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[socket.socket, Any]:
                sock, addr = super().get_request()
                if tls is not None:
                    # Handshake in the handler thread, so a failing client cannot stall accept().
                    sock = tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                return sock, addr

            def handle_error(self, request: Any, client_address: Any) -> None:
                return None  # a rejected TLS handshake is expected in some tests

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    """Start scripted servers: ``scripted(script, tls=None)``; all stopped afterwards."""
    started: list[ScriptedServer] = []

    def start(script: Script, *, tls: ssl.SSLContext | None = None) -> ScriptedServer:
        server = ScriptedServer(script, tls=tls).start()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


class ClosingServer:
    """A TCP server that accepts connections and closes them at once, without a response."""

    def __init__(self) -> None:
        self.accepted = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    """Accepts TCP connections and never answers (a hung upstream)."""
    with SilentServer() as server:
        yield server


@pytest.fixture
def closing_server() -> Iterator[ClosingServer]:
    """Accepts TCP connections and closes them at once, without a response."""
    server = ClosingServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def refused_url(healthkit_refused_url: str) -> str:
    """A loopback URL whose port is bound but not listening, so connecting is refused."""
    return healthkit_refused_url


# -- TLS --------------------------------------------------------------------------------


@attrs.frozen
class TlsFiles:
    ca: trustme.CA
    ca_path: Path
    other_ca_path: Path
    client_cert_path: Path

    def server_context(self, *, require_client_cert: bool = False) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            self.ca.configure_trust(ctx)
        return ctx


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A test CA (its PEM on disk), an unrelated CA, and a client cert+key issued by the CA."""
    base = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    ca_path = base / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    other_path = base / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_path))
    client_path = base / "client.pem"
    ca.issue_cert("client@example.org").private_key_and_cert_chain_pem.write_to_path(
        str(client_path)
    )
    return TlsFiles(ca=ca, ca_path=ca_path, other_ca_path=other_path, client_cert_path=client_path)
