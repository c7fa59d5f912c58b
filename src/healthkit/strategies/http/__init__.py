"""``http``: Open Inference Protocol v2, KServe v1, or a generic URL template, over httpx.

One module a job: ``_config`` (the config record), ``_pool`` (the gate, the
countdown deadline, one generation of the shared client), ``_words`` (failures
in words), ``_interpret`` (what an answer means), ``_strategy`` (the instance:
requests, retries, self-healing, batches).

Each name is imported on first use (PEP 562): importing ``_config`` alone (the
``healthkit`` federation strategy does) does not load the instance's modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._config import HttpConfig
    from ._strategy import HttpBatchStrategy, HttpStrategy

__all__ = ["HttpBatchStrategy", "HttpConfig", "HttpStrategy"]

_PROVIDERS = {
    "HttpConfig": "._config",
    "HttpBatchStrategy": "._strategy",
    "HttpStrategy": "._strategy",
}


def __getattr__(name: str) -> Any:
    module = _PROVIDERS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
