"""``grpc``: the gRPC Health Checking Protocol or the Open Inference Protocol v2, over grpc.aio.

The config classes import without grpcio, so a config can be validated (and the
missing ``grpc`` extra reported) anywhere; :class:`GrpcStrategy` needs the extra
and is imported on first use. Every name is imported on first use (PEP 562), so
finding whether the extra is installed (``_extra``) imports nothing else.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from ._extra import GRPC_EXTRA_HINT, missing_grpc_modules

if TYPE_CHECKING:
    from ..._strategy import StrategyContext
    from ._config import GrpcConfig, GrpcTls
    from ._strategy import GrpcStrategy

__all__ = [
    "GRPC_EXTRA_HINT",
    "GrpcConfig",
    "GrpcStrategy",
    "GrpcTls",
    "create_grpc_strategy",
    "missing_grpc_modules",
]

#: What healthkit sets ``GRPC_VERBOSITY`` to when the user did not (see :func:`_quiet_grpc_core`).
_GRPC_VERBOSITY_DEFAULT = "ERROR"


def _quiet_grpc_core() -> bool:
    """Keep grpc-core's own stderr logging to errors, unless the user chose otherwise.

    grpc-core (grpcio >= 1.6x, through abseil) prints ``I...`` lines on stderr for
    every failed TLS handshake, repeating what the check result already says in
    words. It reads ``GRPC_VERBOSITY`` once, when ``grpc`` is first imported, so
    this runs just before healthkit's first import of grpcio: when the first
    ``grpc`` strategy is created, never at healthkit's import. A ``GRPC_VERBOSITY``
    already in the environment is left alone, and so is a process that imported
    grpcio earlier (its logging is settled). Returns whether it set the variable.
    """
    if "GRPC_VERBOSITY" in os.environ or "grpc" in sys.modules:
        return False
    os.environ["GRPC_VERBOSITY"] = _GRPC_VERBOSITY_DEFAULT
    return True


def create_grpc_strategy(config: GrpcConfig, context: StrategyContext) -> GrpcStrategy:
    """The ``grpc`` factory; imports grpcio only now."""
    _quiet_grpc_core()
    from ._strategy import GrpcStrategy

    return GrpcStrategy(config)


def __getattr__(name: str) -> Any:
    # The config module on first use too: registering the built-ins (every
    # ``healthkit check``) needs only missing_grpc_modules.
    if name in ("GrpcConfig", "GrpcTls"):
        from . import _config

        return getattr(_config, name)
    # Importing grpcio costs time and needs the extra: only when the strategy is asked for.
    if name == "GrpcStrategy":
        _quiet_grpc_core()
        from ._strategy import GrpcStrategy

        return GrpcStrategy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
