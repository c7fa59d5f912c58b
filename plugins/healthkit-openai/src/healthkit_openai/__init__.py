"""healthkit strategy ``openai``: readiness of OpenAI-compatible model servers.

``GET /health`` and/or ``GET /v1/models`` (the checked model must be listed),
for vLLM, TGI, SGLang and KServe's OpenAI endpoints. The API key comes from an
environment variable named in the config and is never shown.
"""

from ._config import OpenAIConfig
from ._strategy import OpenAIStrategy

__all__ = ["OpenAIConfig", "OpenAIStrategy"]
