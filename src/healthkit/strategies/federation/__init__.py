"""``healthkit``: read another healthkit's ``/v1/status``, one request for every model.

Federation: N workers share one ``healthkit serve`` sidecar, or one healthkit
aggregates a fleet's (see ``docs/federation.md``). The module is not named
``healthkit`` so that it never shadows the package. ``_config`` holds the
record, ``_strategy`` the instance; each name is imported on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._config import FederationConfig
    from ._strategy import FederationStrategy

__all__ = ["FederationConfig", "FederationStrategy"]

_PROVIDERS = {"FederationConfig": "._config", "FederationStrategy": "._strategy"}


def __getattr__(name: str) -> Any:
    module = _PROVIDERS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
