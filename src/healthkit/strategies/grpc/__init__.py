"""``grpc``: the gRPC Health Checking Protocol or the Open Inference Protocol v2, over grpc.aio.

The config classes import without grpcio, so a config can be validated (and the
missing ``grpc`` extra reported) anywhere; :class:`GrpcStrategy` needs the extra
and is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..._strategy import StrategyContext
from ._config import GrpcConfig, GrpcTls, missing_grpc_modules

if TYPE_CHECKING:
    from ._strategy import GrpcStrategy

__all__ = [
    "GRPC_EXTRA_HINT",
    "GrpcConfig",
    "GrpcStrategy",
    "GrpcTls",
    "create_grpc_strategy",
    "missing_grpc_modules",
]

#: Why ``grpc`` is unavailable when grpcio, grpcio-health-checking or protobuf is missing.
GRPC_EXTRA_HINT = "install the grpc extra: pip install 'healthkit[grpc]'"


def create_grpc_strategy(config: GrpcConfig, context: StrategyContext) -> GrpcStrategy:
    """The ``grpc`` factory; imports grpcio only now."""
    from ._strategy import GrpcStrategy

    return GrpcStrategy(config)


def __getattr__(name: str) -> Any:
    # Importing grpcio costs time and needs the extra: only when the strategy is asked for.
    if name == "GrpcStrategy":
        from ._strategy import GrpcStrategy

        return GrpcStrategy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
