"""The ``http`` strategy's config: one frozen record, with its converters and checks."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from ... import validators as v
from ..._frozen import FrozenMap
from ..._secret import Secret
from ..._url import SecretUrl
from ...toolkit import retry_deadline

__all__ = ["HttpConfig", "secrets_of", "uses_tls"]

#: HTTP header names are RFC 9110 tokens.
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

_CONTROL_NAMES = {0: "NUL", 9: "tab", 10: "line feed", 13: "carriage return", 127: "DEL"}


def _unsendable(value: str) -> str | None:
    """Why httpx could not send ``value`` as a header value, in words that never quote it.

    httpx encodes values as ASCII and h11 rejects CR, LF, NUL, other whitespace
    controls and leading or trailing blanks; the other control characters pass
    h11 but are not valid field content (RFC 9110), so they are refused too.
    """
    for i, ch in enumerate(value):
        code = ord(ch)
        if code > 126 and code != 127:
            return f"a non-ASCII character at position {i + 1}"
        if (code < 32 and ch != "\t") or code == 127:
            name = _CONTROL_NAMES.get(code, f"\\x{code:02x}")
            where = "at the end" if i == len(value) - 1 else f"at position {i + 1}"
            hint = (
                " (secrets read from files often end in a newline: strip it)" if code == 10 else ""
            )
            return f"a control character ({name}) {where}{hint}"
    if value != value.strip(" \t"):
        return "leading or trailing blanks"
    return None


def _check_header(name: str, value: str) -> None:
    if not set(name) <= _TOKEN_CHARS:
        raise ValueError(f"header name {name!r} is not a valid HTTP header name")
    problem = _unsendable(value)
    if problem is not None:
        # Name only: the value is a secret and is never echoed, not even in part.
        raise ValueError(f"header {name!r}: the value (not shown) cannot be sent: it has {problem}")


def _headers(value: Any) -> FrozenMap[str, Secret]:
    if isinstance(value, FrozenMap) and all(isinstance(x, Secret) for x in value.values()):
        return value
    if not isinstance(value, Mapping):
        raise TypeError("expected a table of header names to string values")
    out: dict[str, Secret] = {}
    for name, raw in value.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"header names must be non-empty strings, got {name!r}")
        if name.lower() in out:
            raise ValueError(f"header {name!r} given twice (names are case-insensitive)")
        if isinstance(raw, Secret):
            secret = raw
        elif isinstance(raw, str):
            secret = Secret(raw)
        else:
            # Never echo the value: it may be a token.
            raise TypeError(f"header {name!r}: expected a string value")
        _check_header(name, secret.get_secret_value())
        out[name.lower()] = secret
    return FrozenMap(out)


def _status_ranges(value: Any) -> tuple[tuple[int, int], ...]:
    """Parse ``[200, "204", "200-299", "2xx"]`` into inclusive ranges."""
    if isinstance(value, int | str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise TypeError(f"expected a list of status codes or ranges, got {value!r}")
    out: list[tuple[int, int]] = []
    for item in value:
        if isinstance(item, tuple) and len(item) == 2:
            lo, hi = item
        elif isinstance(item, int) and not isinstance(item, bool):
            lo = hi = item
        elif (
            isinstance(item, str) and item.strip().lower().endswith("xx") and len(item.strip()) == 3
        ):
            digit = item.strip()[0]
            if not digit.isdigit():
                raise ValueError(f"bad status range {item!r}")
            lo, hi = int(digit) * 100, int(digit) * 100 + 99
        elif isinstance(item, str):
            parts = item.split("-")
            try:
                lo, hi = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (0, -1)
            except ValueError:
                raise ValueError(
                    f"bad status {item!r}; use a code (200), a range ('200-299') or a class ('2xx')"
                ) from None
        else:
            raise TypeError(f"expected a status code or range, got {item!r}")
        if not (100 <= lo <= hi <= 599):
            raise ValueError(f"status range {item!r} must lie within 100-599")
        out.append((lo, hi))
    # Merge overlapping and adjacent ranges: "2xx" and ["200-250", "251-299"] mean the same
    # and must give equal configs (and one shared instance).
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(out):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return tuple(merged)


def _optional_str(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {value!r}")


def _path_template(value: Any) -> str | None:
    """A ``generic`` path: only ``{model}`` and ``{version}`` may be filled in."""
    text = _optional_str(value)
    if text is None:
        return None
    return v.format_template(text, fields=("model", "version"))


def _method(value: Any) -> str:
    if not isinstance(value, str) or value.upper() not in ("GET", "HEAD", "POST"):
        raise ValueError(f"must be one of 'GET', 'HEAD', 'POST', got {value!r}")
    return value.upper()


@attrs.frozen(kw_only=True)
class HttpConfig:
    """Config of the ``http`` strategy (see ``docs/config.md``)."""

    #: Upstream server, e.g. ``http://predictor:8080``; credentials in it are kept secret.
    base_url: SecretUrl = attrs.field(converter=SecretUrl)
    #: ``v2`` (Open Inference Protocol), ``v1`` (KServe v1) or ``generic``.
    protocol: Literal["v2", "v1", "generic"] = "v2"
    #: Seconds for one attempt: the health timeout, never the inference timeout.
    timeout: float = attrs.field(default=1.0, validator=v.gt(0))
    #: ``generic`` only: path or URL template with ``{model}`` and ``{version}``.
    path: str | None = attrs.field(default=None, converter=_path_template)
    #: ``generic`` only: HTTP method.
    method: str = attrs.field(default="GET", converter=_method)
    #: ``generic`` only: statuses that mean healthy (codes, ``"200-299"`` or ``"2xx"``).
    expected_status: tuple[tuple[int, int], ...] = attrs.field(
        default=((200, 299),), converter=_status_ranges, validator=v.non_empty
    )
    #: ``generic`` only: statuses that mean degraded.
    degraded_status: tuple[tuple[int, int], ...] = attrs.field(default=(), converter=_status_ranges)
    #: ``generic`` only: dotted path of a JSON field that must be present and true.
    json_field: str | None = attrs.field(default=None, converter=_optional_str)
    #: Verify TLS certificates (on by default).
    verify: bool = True
    #: CA bundle (PEM) to verify the server with, instead of the system's.
    ca_bundle: str | None = attrs.field(default=None, converter=_optional_str)
    #: Client certificate (PEM) for mutual TLS, and its key if in another file.
    client_cert: str | None = attrs.field(default=None, converter=_optional_str)
    client_key: str | None = attrs.field(default=None, converter=_optional_str)
    #: Extra request headers; values are secret (names are case-insensitive).
    headers: FrozenMap[str, Secret] = attrs.field(factory=FrozenMap, converter=_headers)
    #: Extra attempts after a connection error, timeout or 5xx, inside one check.
    retries: int = attrs.field(default=0, validator=v.ge(0))
    #: First backoff (seconds) between attempts; doubles each time, with jitter.
    backoff: float = attrs.field(default=0.05, validator=v.ge(0))
    backoff_max: float = attrs.field(default=1.0, validator=v.ge(0))
    #: Connection pool size of the one client shared by every model of this config.
    max_connections: int = attrs.field(default=10, validator=v.ge(1))
    #: Largest response body read, in bytes; a bigger one is unhealthy where the
    #: body is needed and left unread where only the status matters.
    max_body_bytes: int = attrs.field(default=65536, validator=v.ge(1))
    #: ``v2`` only: let a monitor answer every model of this config with one
    #: ``POST /v2/repository/index`` per period instead of one request per model.
    batch: bool = False
    #: ``batch`` only: largest repository index read, in bytes. The index lists every
    #: model the predictor serves, not only this config's, so it has a bound of its own.
    max_index_bytes: int = attrs.field(default=8 * 1024 * 1024, validator=v.ge(1))

    def check_deadline(self, timeout: float) -> float:
        """The hard cap's base (``healthkit.DeadlineConfig``): every attempt, and the
        longest pause between two (``backoff_max`` plus up to ``backoff`` of jitter)."""
        return retry_deadline(self, timeout)

    def __attrs_post_init__(self) -> None:
        if self.protocol == "generic" and not self.path:
            raise ValueError("path: required when protocol = 'generic'")
        if self.protocol != "generic":
            for key in ("path", "json_field"):
                if getattr(self, key) is not None:
                    raise ValueError(f"{key}: only allowed when protocol = 'generic'")
        if self.batch and self.protocol != "v2":
            raise ValueError("batch: only allowed when protocol = 'v2'")
        if self.client_key and not self.client_cert:
            raise ValueError("client_key: needs client_cert")
        if self.method == "HEAD" and (self.protocol == "v1" or self.json_field is not None):
            needs = "protocol = 'v1'" if self.protocol == "v1" else "json_field"
            raise ValueError(f"method: HEAD gets no body, which {needs} reads; use GET")
        for lo, hi in self.degraded_status:
            if any(lo <= e_hi and e_lo <= hi for e_lo, e_hi in self.expected_status):
                raise ValueError(
                    f"degraded_status: {lo}-{hi} overlaps expected_status; "
                    "a status cannot mean both healthy and degraded"
                )


def uses_tls(config: HttpConfig) -> bool:
    """Whether a client of ``config`` may speak TLS, and so needs a real TLS context.

    An ``https`` base URL, a ``generic`` path that is a URL of its own, or TLS
    files named in the config (a file that cannot be read fails loudly, even
    for an ``http://`` upstream).
    """
    if config.base_url.url.startswith("https:") or "://" in (config.path or ""):
        return True
    return bool(config.ca_bundle or config.client_cert)


def secrets_of(config: HttpConfig) -> tuple[str, ...]:
    """Every secret of the config as it could come back in an upstream's text, longest first.

    Whole header values and their words, the URL's user and password, and the
    basic-auth token; fragments under 4 characters are left (they would mask
    ordinary words and numbers).
    """
    found: set[str] = set()
    for secret in config.headers.values():
        value = secret.get_secret_value()
        found.add(value)
        found.update(value.split())
    auth = config.base_url.auth
    if auth is not None:
        found.update(auth)
        found.add(base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    return tuple(sorted((s for s in found if len(s) >= 4), key=len, reverse=True))
