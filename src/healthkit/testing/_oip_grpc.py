"""A small Open Inference Protocol (v2) gRPC server on loopback, for the demo and the tests.

The gRPC sibling of :class:`~healthkit.testing.OipServer`: a real ``grpc.aio`` server in
the running event loop, whose models can be flipped between ready and not
ready, which can be made slow or fail its next calls with a status code, and
which counts the calls (and keeps the metadata) it gets. Needs the ``grpc`` extra.
Since it lives in the loop that starts it, it suits async tests, not fixtures of
the conformance suite (whose tests run their own event loops).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

import grpc
import grpc.aio

from ..strategies.grpc._oip import add_oip_servicer, pb

__all__ = ["OipServicer", "serve_grpc"]


class OipServicer:
    """``inference.GRPCInferenceService`` health calls over a dict of model -> ready.

    An unknown model is answered NOT_FOUND, like KServe does. ``ready`` (the
    server) defaults to "every model is ready".
    """

    def __init__(
        self, models: Mapping[str, bool] | None = None, *, live: bool = True, delay: float = 0.0
    ) -> None:
        self.models: dict[str, bool] = dict(models or {})
        self.live = live
        #: Forces ``ServerReady``; ``None`` derives it from the models.
        self.ready: bool | None = None
        #: Seconds every call sleeps before answering (a slow or hung server).
        self.delay = delay
        #: Calls received, by method name.
        self.calls: Counter[str] = Counter()
        #: The metadata of every call received, in order.
        self.metadata: list[dict[str, str]] = []
        self._failures: list[tuple[grpc.StatusCode, str]] = []

    def fail_next(self, code: grpc.StatusCode, times: int = 1, details: str = "injected") -> None:
        """Answer the next ``times`` calls with status ``code``."""
        self._failures.extend([(code, details)] * times)

    def add_to_server(self, server: Any) -> None:
        add_oip_servicer(server, self)

    async def _enter(self, method: str, context: Any) -> None:
        self.calls[method] += 1
        self.metadata.append({k: str(v) for k, v in context.invocation_metadata() or ()})
        if self.delay:
            await asyncio.sleep(self.delay)
        if self._failures:
            code, details = self._failures.pop(0)
            await context.abort(code, details)

    async def ServerLive(self, request: Any, context: Any) -> Any:
        await self._enter("ServerLive", context)
        return pb.ServerLiveResponse(live=self.live)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        await self._enter("ServerReady", context)
        ready = all(self.models.values()) if self.ready is None else self.ready
        return pb.ServerReadyResponse(ready=self.live and ready)

    async def ModelReady(self, request: Any, context: Any) -> Any:
        await self._enter("ModelReady", context)
        if request.name not in self.models:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"model {request.name!r} not found")
        return pb.ModelReadyResponse(ready=self.models[request.name])

    async def RepositoryIndex(self, request: Any, context: Any) -> Any:
        await self._enter("RepositoryIndex", context)
        entries = [
            pb.RepositoryIndexResponse.ModelIndex(
                name=name, state="READY" if ready else "UNAVAILABLE"
            )
            for name, ready in sorted(self.models.items())
            if ready or not request.ready
        ]
        return pb.RepositoryIndexResponse(models=entries)


Registration = Callable[[Any], object]


@contextlib.asynccontextmanager
async def serve_grpc(
    servicers: Iterable[OipServicer | Registration],
    *,
    port: int = 0,
    credentials: Any = None,
) -> AsyncIterator[tuple[Any, str]]:
    """Run a ``grpc.aio`` server on 127.0.0.1 with ``servicers``; yield ``(server, "host:port")``.

    Each item is an :class:`OipServicer` or a callable that registers something
    on the server (``lambda s: add_HealthServicer_to_server(h, s)``). Pass
    ``grpc.ssl_server_credentials(...)`` for TLS. The server is stopped without
    grace on exit, so open streams never hold it up.
    """
    server = grpc.aio.server()
    for item in servicers:
        if isinstance(item, OipServicer):
            item.add_to_server(server)
        else:
            item(server)
    address = f"127.0.0.1:{port}"
    if credentials is None:
        bound = server.add_insecure_port(address)
    else:
        bound = server.add_secure_port(address, credentials)
    if not bound:
        raise OSError(f"cannot bind a gRPC server to {address}")
    await server.start()
    try:
        yield server, f"127.0.0.1:{bound}"
    finally:
        await server.stop(grace=None)
