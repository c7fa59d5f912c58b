"""``http``: Open Inference Protocol v2, KServe v1, or a generic URL template, over httpx.

One module a job: ``_config`` (the config record), ``_pool`` (the gate, the
countdown deadline, one generation of the shared client), ``_words`` (failures
in words), ``_interpret`` (what an answer means), ``_strategy`` (the instance:
requests, retries, self-healing, batches).
"""

from __future__ import annotations

from ._config import HttpConfig
from ._strategy import HttpBatchStrategy, HttpStrategy

__all__ = ["HttpBatchStrategy", "HttpConfig", "HttpStrategy"]
