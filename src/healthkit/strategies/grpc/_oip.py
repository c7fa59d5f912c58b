"""The gRPC methods healthkit calls, spelled out by hand (no generated ``_pb2_grpc``).

Both sides use these tables: the strategy builds its client calls from them,
and :func:`add_oip_servicer` serves an Open Inference Protocol servicer with
them. Writing the four method paths here keeps grpcio's generated-code version
gate out of the package (see ``healthkit/_proto/README.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from ..._proto import grpc_predict_v2_pb2 as pb

__all__ = [
    "CLIENT_METHODS",
    "HEALTH_CHECK",
    "HEALTH_SERVICE",
    "MODEL_READY",
    "OIP_METHODS",
    "OIP_SERVICE",
    "REPOSITORY_INDEX",
    "SERVER_LIVE",
    "SERVER_READY",
    "add_oip_servicer",
    "pb",
]

OIP_SERVICE = "inference.GRPCInferenceService"
HEALTH_SERVICE = "grpc.health.v1.Health"

#: Method name -> (request class, response class) of the OIP calls healthkit knows.
OIP_METHODS: Mapping[str, tuple[Any, Any]] = {
    "ServerLive": (pb.ServerLiveRequest, pb.ServerLiveResponse),
    "ServerReady": (pb.ServerReadyRequest, pb.ServerReadyResponse),
    "ModelReady": (pb.ModelReadyRequest, pb.ModelReadyResponse),
    "RepositoryIndex": (pb.RepositoryIndexRequest, pb.RepositoryIndexResponse),
}

SERVER_LIVE = f"/{OIP_SERVICE}/ServerLive"
SERVER_READY = f"/{OIP_SERVICE}/ServerReady"
MODEL_READY = f"/{OIP_SERVICE}/ModelReady"
REPOSITORY_INDEX = f"/{OIP_SERVICE}/RepositoryIndex"
HEALTH_CHECK = f"/{HEALTH_SERVICE}/Check"

#: Full method path -> (request class, response class), for client calls.
CLIENT_METHODS: Mapping[str, tuple[Any, Any]] = {
    **{f"/{OIP_SERVICE}/{name}": types for name, types in OIP_METHODS.items()},
    HEALTH_CHECK: (health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse),
}


def add_oip_servicer(server: Any, servicer: object) -> None:
    """Serve ``servicer``'s OIP methods (async ``ServerLive(request, context)``, ...) on ``server``.

    Methods the servicer lacks are answered UNIMPLEMENTED by grpc itself.
    """
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name),
            request_deserializer=request.FromString,
            response_serializer=response.SerializeToString,
        )
        for name, (request, response) in OIP_METHODS.items()
        if callable(getattr(servicer, name, None))
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(OIP_SERVICE, handlers),))
