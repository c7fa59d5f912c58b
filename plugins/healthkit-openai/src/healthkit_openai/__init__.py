"""healthkit strategy ``openai``: readiness of OpenAI-compatible model servers.

``GET /health`` and/or ``GET /v1/models`` (the checked model must be listed),
for vLLM, TGI, SGLang and KServe's OpenAI endpoints. The API key comes from an
environment variable named in the config and is never shown.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._config import OpenAIConfig
    from ._strategy import OpenAIStrategy

__all__ = ["OpenAIConfig", "OpenAIStrategy"]

# Each name is imported on first use (PEP 562): healthkit loads the entry point
# (``._plugin``) in every process, and imports the config and strategy only when
# a config uses this strategy.
_PROVIDERS = {"OpenAIConfig": "._config", "OpenAIStrategy": "._strategy"}


def __getattr__(name: str) -> Any:
    module = _PROVIDERS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
