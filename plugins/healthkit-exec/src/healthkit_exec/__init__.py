"""healthkit strategy ``exec``: run a command and map its exit code to a status.

Exit 0 is healthy, 1 degraded, 2 unhealthy, anything else unknown (the
monitoring-plugins convention). The command is an argv list, never a shell.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._config import DEFAULT_PASS_ENV, OUTPUT_LIMIT, OUTPUT_SHOWN, ExecConfig
    from ._strategy import ExecStrategy

__all__ = ["DEFAULT_PASS_ENV", "OUTPUT_LIMIT", "OUTPUT_SHOWN", "ExecConfig", "ExecStrategy"]

# Each name is imported on first use (PEP 562): healthkit loads the entry point
# (``._plugin``) in every process, and imports the config and strategy only when
# a config uses this strategy.
_PROVIDERS = {
    "DEFAULT_PASS_ENV": "._config",
    "OUTPUT_LIMIT": "._config",
    "OUTPUT_SHOWN": "._config",
    "ExecConfig": "._config",
    "ExecStrategy": "._strategy",
}


def __getattr__(name: str) -> Any:
    module = _PROVIDERS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
