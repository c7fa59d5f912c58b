"""``healthkit``: read another healthkit's ``/v1/status``, one request for every model.

Federation: N workers share one ``healthkit serve`` sidecar, or one healthkit
aggregates a fleet's (see ``docs/federation.md``). The module is not named
``healthkit`` so that it never shadows the package. ``_config`` holds the
record, ``_strategy`` the instance.
"""

from __future__ import annotations

from ._config import FederationConfig
from ._strategy import FederationStrategy

__all__ = ["FederationConfig", "FederationStrategy"]
