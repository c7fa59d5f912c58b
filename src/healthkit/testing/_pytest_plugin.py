"""healthkit's pytest plugin, registered through the ``pytest11`` entry point.

It loads in every pytest run of an environment where healthkit is installed,
so it only defines fixtures: it adds no options, hooks, markers or output, and
imports what a fixture needs only when the fixture runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .._registry import StrategyRegistry
    from ._oip_http import OipServer
    from ._servers import SilentServer

__all__ = [
    "healthkit_oip_server",
    "healthkit_refused_port",
    "healthkit_refused_url",
    "healthkit_registry",
    "healthkit_silent_server",
]


@pytest.fixture
def healthkit_silent_server() -> Iterator[SilentServer]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers.

    Point a strategy at it to test timeouts (``.address``, ``.host``, ``.port``, ``.url``).
    """
    from ._servers import SilentServer

    with SilentServer() as server:
        yield server


@pytest.fixture
def healthkit_refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 where connecting is refused: bound, never listening.

    Held for the test, so nothing else can take it meanwhile. For a
    ``failing_config``: ``{"host": "127.0.0.1", "port": healthkit_refused_port}``.
    """
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


@pytest.fixture
def healthkit_refused_url(healthkit_refused_port: int) -> str:
    """``http://127.0.0.1:PORT`` where connecting is refused (``healthkit_refused_port``)."""
    return f"http://127.0.0.1:{healthkit_refused_port}"


@pytest.fixture
def healthkit_oip_server() -> Iterator[OipServer]:
    """A started :class:`~healthkit.testing.OipServer`: Open Inference Protocol v2 and KServe v1.

    Serves ``alpha`` (ready), ``beta`` (not ready) and ``flaky`` (ready every other
    request) at ``.url``, in a thread; ``set_state``/``remove`` change its models,
    ``delay`` slows every answer and ``requests`` counts what it got. Stopped
    after the test, even when it fails.
    """
    from ._oip_http import OipServer

    server = OipServer({"alpha": "ready", "beta": "not_ready", "flaky": "flaky"})
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def healthkit_registry() -> StrategyRegistry:
    """A fresh registry: built-in strategies plus every installed plugin (entry points)."""
    from .._registry import StrategyRegistry

    return StrategyRegistry()
