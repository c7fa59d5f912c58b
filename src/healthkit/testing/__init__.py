"""Test helpers for strategy plugins: a conformance suite, loopback servers and a pytest plugin.

Run the conformance suite against a strategy in a few lines::

    from healthkit.testing import BadConfig, StrategyConformance

    class TestMyConformance(StrategyConformance):
        strategy = "my"

        @pytest.fixture
        def valid_config(self): ...

        @pytest.fixture
        def bad_configs(self): ...

Loopback servers to point a strategy at: :class:`SilentServer` (never
answers), :class:`OipServer` (Open Inference Protocol v2 and KServe v1 over
HTTP, in a thread; ``healthkit demo`` serves it too) and, with the ``grpc``
extra, :class:`OipServicer` run by :func:`serve_grpc` (OIP v2 over gRPC, in the
running event loop).

The pytest plugin (``healthkit.testing._pytest_plugin``, registered through the
``pytest11`` entry point) only adds fixtures such as ``healthkit_silent_server``.
It loads in every pytest run, so this package imports its parts lazily.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._conformance import BadConfig, StrategyConformance
    from ._oip_grpc import OipServicer, serve_grpc
    from ._oip_http import OipServer
    from ._resources import ResourceSnapshot, wait_released
    from ._servers import SilentServer

__all__ = [
    "BadConfig",
    "OipServer",
    "OipServicer",
    "ResourceSnapshot",
    "SilentServer",
    "StrategyConformance",
    "serve_grpc",
    "wait_released",
]

_WHERE = {
    "BadConfig": "._conformance",
    "StrategyConformance": "._conformance",
    "OipServer": "._oip_http",
    "OipServicer": "._oip_grpc",
    "serve_grpc": "._oip_grpc",
    "ResourceSnapshot": "._resources",
    "wait_released": "._resources",
    "SilentServer": "._servers",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
