"""healthkit strategy ``tcp``: can a TCP (optionally TLS) connection be made, and does it answer?

Installed, it registers through the ``healthkit`` entry point; use it by name::

    [models.alpha.health_check]
    strategy = "tcp"
    host = "predictor"
    port = 8080
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._config import TcpConfig
    from ._strategy import TcpStrategy

__all__ = ["TcpConfig", "TcpStrategy"]

# Each name is imported on first use (PEP 562): healthkit loads the entry point
# (``._plugin``) in every process, and imports the config and strategy only when
# a config uses this strategy.
_PROVIDERS = {"TcpConfig": "._config", "TcpStrategy": "._strategy"}


def __getattr__(name: str) -> Any:
    module = _PROVIDERS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
