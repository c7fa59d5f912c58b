"""Config of the ``openai`` strategy."""

from __future__ import annotations

import os
import re
from typing import Any

import attrs

from healthkit import SecretUrl
from healthkit import validators as v

__all__ = ["ENDPOINTS", "OpenAIConfig"]

#: What a check may ask: the server's ``/health`` and its ``/v1/models`` list.
ENDPOINTS = ("health", "models")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _endpoints(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise TypeError(f"expected a list of 'health' and/or 'models', got {value!r}")
    if not value:
        raise ValueError("must not be empty")
    for item in value:
        if item not in ENDPOINTS:
            raise ValueError(f"must be 'health' and/or 'models', got {item!r}")
    # Checked in a fixed order, so ["models", "health"] is the same config.
    return tuple(e for e in ENDPOINTS if e in value)


def _path(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a path, got {value!r}")
    if not value.startswith("/") or "://" in value or "?" in value or "#" in value:
        raise ValueError(f"must be a path starting with '/', got {value!r}")
    return value


def _api_key_env(_inst: Any, _attr: Any, value: str | None) -> None:
    if value is None:
        return
    if not _ENV_NAME.match(value):
        raise ValueError(f"must be an environment variable name, got {value!r}")
    if not os.environ.get(value):
        # Name the variable, never a value.
        raise ValueError(f"environment variable {value!r} is not set")


def _optional_str(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {value!r}")


def _optional_file(value: Any) -> str | None:
    path = _optional_str(value)
    if path is not None and not os.path.isfile(path):
        raise ValueError(f"file not found: {path!r}")
    return path


@attrs.frozen(kw_only=True)
class OpenAIConfig:
    """Config of the ``openai`` strategy (see ``docs/plugins/openai.md``)."""

    #: The server, e.g. ``http://vllm:8000`` (or ``http://kserve/openai`` for KServe's
    #: OpenAI routes); credentials in it are kept secret.
    base_url: SecretUrl = attrs.field(converter=SecretUrl)
    #: What to ask, in this order: ``health`` (``GET health_path`` answers 200) and
    #: ``models`` (``GET models_path`` lists the checked model).
    endpoints: tuple[str, ...] = attrs.field(default=ENDPOINTS, converter=_endpoints)
    #: Path of the health endpoint, relative to ``base_url``.
    health_path: str = attrs.field(default="/health", converter=_path)
    #: Path of the model list, relative to ``base_url``.
    models_path: str = attrs.field(default="/v1/models", converter=_path)
    #: Name of the environment variable holding the API key (sent as a bearer token).
    api_key_env: str | None = attrs.field(
        default=None, converter=_optional_str, validator=_api_key_env
    )
    #: Seconds for the whole check: both requests share one countdown.
    timeout: float = attrs.field(default=1.0, validator=v.gt(0))
    #: Verify TLS certificates (on by default).
    verify: bool = True
    #: CA bundle (PEM) to verify the server with, instead of the system's.
    ca_bundle: str | None = attrs.field(default=None, converter=_optional_file)
    #: Connection pool size of the one client every model of this config shares.
    max_connections: int = attrs.field(default=10, validator=v.ge(1))
    #: Largest response body read, in bytes; a bigger model list is unhealthy (a bigger
    #: ``/health`` body is left unread: only its status matters).
    max_body_bytes: int = attrs.field(default=1 << 20, validator=v.ge(1))

    def __attrs_post_init__(self) -> None:
        if self.ca_bundle is not None and not self.verify:
            raise ValueError("ca_bundle: only allowed when verify = true")
