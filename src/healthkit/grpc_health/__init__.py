"""Serve healthkit's statuses over the gRPC Health Checking Protocol (``grpc.health.v1``).

The other direction from the ``grpc`` strategy: a model server adds a
:class:`HealthServicer` to its own ``grpc.aio`` server, and Kubernetes ``grpc``
probes (or any ``grpc.health.v1`` client) ask it about one model (service name =
model name) or the whole server (service ``""``, the worst status of all models)::

    monitor = healthkit.Monitor(kit)
    servicer = HealthServicer(monitor)
    servicer.add_to_server(server)      # a grpc.aio.Server, before server.start()
    ...
    await servicer.enter_graceful_shutdown()  # ends every Watch stream
    await server.stop(grace=5)

The statuses come from a :class:`StatusSource`: a ``healthkit.Monitor`` is one;
:class:`StatusBoard` is one you set by hand or from ``HealthKit`` reports.
Needs the ``grpc`` extra (``pip install 'model-healthkit[grpc]'``) to serve;
importing this module does not import grpcio, creating a :class:`HealthServicer` does.
"""

from __future__ import annotations

from .._watchdog import Liveness, LivenessReport
from ._board import HEALTH_SERVICE, BoardChange, StatusBoard, StatusSource, serving_status
from ._servicer import HealthServicer

__all__ = [
    "HEALTH_SERVICE",
    "BoardChange",
    "HealthServicer",
    "Liveness",
    "LivenessReport",
    "StatusBoard",
    "StatusSource",
    "serving_status",
]
