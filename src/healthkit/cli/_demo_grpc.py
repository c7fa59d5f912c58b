"""The gRPC half of ``healthkit demo``: a real Open Inference Protocol server on loopback."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

__all__ = ["grpc_demo"]


@contextlib.asynccontextmanager
async def grpc_demo(models: Mapping[str, bool]) -> AsyncIterator[str | None]:
    """Serve ``models`` (name -> ready) over gRPC v2 on 127.0.0.1; yield ``"127.0.0.1:PORT"``.

    Yields ``None`` when the ``grpc`` extra is not installed, so the demo goes
    on without a gRPC model. The server is stopped when the block exits.
    """
    try:
        from ..testing._oip_grpc import OipServicer, serve_grpc
    except ImportError:
        yield None
        return
    async with serve_grpc([OipServicer(models)]) as (_server, address):
        yield address
