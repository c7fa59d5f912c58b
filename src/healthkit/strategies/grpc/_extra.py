"""Whether the ``grpc`` extra is installed, found without importing it or the config.

Its own module so that registering the built-in strategies (every registry, every
``healthkit check``) learns whether ``grpc`` is usable without importing grpcio or
the ``grpc`` config module.
"""

from __future__ import annotations

import importlib.util

__all__ = ["GRPC_EXTRA_HINT", "missing_grpc_modules"]

#: Why ``grpc`` is unavailable when grpcio, grpcio-health-checking or protobuf is missing.
GRPC_EXTRA_HINT = "install the grpc extra: pip install 'model-healthkit[grpc]'"

#: What ``pip install 'model-healthkit[grpc]'`` brings, by import name.
_EXTRA_MODULES = ("grpc", "grpc_health", "google.protobuf")


def missing_grpc_modules() -> list[str]:
    """Modules of the ``grpc`` extra that cannot be imported here (without importing them)."""
    missing = []
    for name in _EXTRA_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing
