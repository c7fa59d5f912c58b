"""Config of the ``grpc`` strategy; importable without grpcio."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from ... import validators as v
from ..._frozen import FrozenMap
from ..._secret import Secret
from ...toolkit import retry_deadline
from ._extra import missing_grpc_modules

__all__ = ["GrpcConfig", "GrpcTls", "missing_grpc_modules"]

#: Target prefixes that grpc-core resolves itself (name resolvers), passed through as they are.
_TARGET_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:")

#: Legal gRPC metadata keys (lower case); ``-bin`` keys carry bytes, which a config cannot.
_METADATA_KEY = re.compile(r"^[0-9a-z_.-]+$")


def _target(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string 'host:port', got {value!r}")
    text = value.strip()
    if text.startswith(_TARGET_SCHEMES):
        return text
    host, sep, port = text.rpartition(":")
    ok = bool(sep and host and port.isdigit() and 0 < int(port) < 65536)
    if "/" in host or (":" in host and not (host.startswith("[") and host.endswith("]"))):
        ok = False
    if not ok:
        raise ValueError(
            f"expected 'host:port' (or a gRPC target such as 'dns:///host:port' or "
            f"'unix:/path'), got {value!r}"
        )
    return text


def _optional_str(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {value!r}")


@attrs.frozen(kw_only=True)
class GrpcTls:
    """TLS settings of a ``grpc`` channel. Files are PEM, read when the channel is opened."""

    #: CA certificates to verify the server with; ``None`` uses gRPC's default roots.
    root_certs: str | None = attrs.field(default=None, converter=_optional_str)
    #: Client certificate chain for mutual TLS (needs ``client_key``).
    client_cert: str | None = attrs.field(default=None, converter=_optional_str)
    #: Private key of ``client_cert``.
    client_key: str | None = attrs.field(default=None, converter=_optional_str)
    #: Host name to verify the server certificate against, instead of the target's host.
    server_name: str | None = attrs.field(default=None, converter=_optional_str)

    def __attrs_post_init__(self) -> None:
        if bool(self.client_cert) != bool(self.client_key):
            raise ValueError("client_cert and client_key: set both for mutual TLS, or neither")
        if self.server_name is not None and not self.server_name.strip():
            raise ValueError("server_name: must not be empty")


_TLS_KEYS = tuple(f.name for f in attrs.fields(GrpcTls))


def _tls(value: Any) -> GrpcTls | None:
    """``false``/absent: plaintext; ``true``: TLS with default roots; a table: TLS with settings."""
    if value is None or value is False:
        return None
    if value is True:
        return GrpcTls()
    if isinstance(value, GrpcTls):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"expected true, false or a table of TLS settings, got {value!r}")
    unknown = sorted(str(k) for k in value if k not in _TLS_KEYS)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}; valid keys: {', '.join(_TLS_KEYS)}")
    for key, item in value.items():
        if item is not None and not isinstance(item, str):
            raise TypeError(f"{key}: expected a string, got {item!r}")
    return GrpcTls(**value)


def _metadata(value: Any) -> FrozenMap[str, Secret]:
    if isinstance(value, FrozenMap) and all(isinstance(x, Secret) for x in value.values()):
        return value
    if not isinstance(value, Mapping):
        raise TypeError("expected a table of metadata keys to string values")
    out: dict[str, Secret] = {}
    for key, raw in value.items():
        if not isinstance(key, str) or not _METADATA_KEY.match(key.lower()):
            raise ValueError(f"metadata key {key!r}: use letters, digits, '-', '_' and '.' only")
        key = key.lower()
        if key.startswith("grpc-"):
            raise ValueError(f"metadata key {key!r}: 'grpc-' keys are reserved by gRPC")
        if key.endswith("-bin"):
            raise ValueError(f"metadata key {key!r}: binary ('-bin') values are not supported")
        if isinstance(raw, Secret):
            out[key] = raw
        elif isinstance(raw, str):
            out[key] = Secret(raw)
        else:
            # Never echo the value: it may be a token.
            raise TypeError(f"metadata {key!r}: expected a string value")
    return FrozenMap(out)


def _service(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return v.format_template(value, fields=("model", "version"), what="service template")


@attrs.frozen(kw_only=True)
class GrpcConfig:
    """Config of the ``grpc`` strategy (see ``docs/grpc.md``)."""

    #: The upstream gRPC server, ``host:port`` (or a gRPC target such as ``dns:///host:port``).
    target: str = attrs.field(converter=_target)
    #: ``v2`` (Open Inference Protocol ``inference.GRPCInferenceService``) or ``health-v1``
    #: (``grpc.health.v1.Health/Check``).
    protocol: Literal["v2", "health-v1"] = attrs.field(
        default="v2", validator=v.one_of(("v2", "health-v1"))
    )
    #: ``health-v1`` only: the service name to ask about, a template with ``{model}`` and
    #: ``{version}``; ``""`` asks about the whole server. Default ``"{model}"``.
    service: str | None = attrs.field(default=None, converter=_service)
    #: Deadline of one call, in seconds: the health timeout, never the inference timeout.
    timeout: float = attrs.field(default=1.0, validator=v.gt(0))
    #: Plaintext when absent or ``false``; ``true`` or a table of settings turns TLS on.
    tls: GrpcTls | None = attrs.field(default=None, converter=_tls)
    #: Metadata sent with every call; values are secret (keys are lower-cased).
    metadata: FrozenMap[str, Secret] = attrs.field(factory=FrozenMap, converter=_metadata)
    #: Extra attempts after UNAVAILABLE or DEADLINE_EXCEEDED, inside one check.
    retries: int = attrs.field(default=0, validator=v.ge(0))
    #: First backoff (seconds) between attempts; doubles each time, with jitter.
    backoff: float = attrs.field(default=0.05, validator=v.ge(0))
    backoff_max: float = attrs.field(default=1.0, validator=v.ge(0))

    def check_deadline(self, timeout: float) -> float:
        """The hard cap's base (``healthkit.DeadlineConfig``): every attempt, and the
        longest pause between two (``backoff_max`` plus up to ``backoff`` of jitter)."""
        return retry_deadline(self, timeout)

    def __attrs_post_init__(self) -> None:
        if self.protocol != "health-v1" and self.service is not None:
            raise ValueError("service: only allowed when protocol = 'health-v1'")
        if self.protocol == "health-v1" and self.service is None:
            # The documented default spelled out, so ``service`` omitted and
            # ``service = "{model}"`` are one config (one shared instance).
            object.__setattr__(self, "service", "{model}")

    @property
    def service_template(self) -> str:
        """The ``health-v1`` service template in effect."""
        return "{model}" if self.service is None else self.service
