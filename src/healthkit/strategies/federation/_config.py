"""The ``healthkit`` (federation) strategy's config record."""

from __future__ import annotations

from typing import Any

import attrs

from ... import validators as v
from ..._frozen import FrozenMap
from ..._secret import Secret
from ..._url import SecretUrl
from ...toolkit import retry_deadline
from ..http._config import _headers, _optional_str

__all__ = ["FederationConfig"]


def _path(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/") or "://" in value:
        raise ValueError(f"expected a path starting with '/', got {value!r}")
    return value


@attrs.frozen(kw_only=True)
class FederationConfig:
    """Config of the ``healthkit`` strategy (see ``docs/federation.md``)."""

    #: The other healthkit (``healthkit serve``, or an app with healthkit's routes).
    base_url: SecretUrl = attrs.field(converter=SecretUrl)
    #: Seconds for one attempt at the status request.
    timeout: float = attrs.field(default=1.0, validator=v.gt(0))
    #: Seconds: an upstream result older than this (its age plus this request's time)
    #: is ``unknown``, never a stale ``healthy``.
    max_age: float = attrs.field(default=30.0, validator=v.gt(0))
    #: Where the status API is served (``create_router`` mounted under a prefix, say).
    path: str = attrs.field(default="/v1/status", converter=_path)
    #: Extra request headers; values are secret.
    headers: FrozenMap[str, Secret] = attrs.field(factory=FrozenMap, converter=_headers)
    verify: bool = True
    ca_bundle: str | None = attrs.field(default=None, converter=_optional_str)
    #: Extra attempts after a connection error, timeout or 5xx, inside one check.
    retries: int = attrs.field(default=0, validator=v.ge(0))
    backoff: float = attrs.field(default=0.05, validator=v.ge(0))
    backoff_max: float = attrs.field(default=1.0, validator=v.ge(0))
    #: Largest status body read (about 250 bytes per model upstream).
    max_body_bytes: int = attrs.field(default=4 * 1024 * 1024, validator=v.ge(1))

    def check_deadline(self, timeout: float) -> float:
        """Every attempt and the pauses between them (``healthkit.DeadlineConfig``)."""
        return retry_deadline(self, timeout)
