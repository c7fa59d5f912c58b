"""Config of the ``tcp`` strategy."""

from __future__ import annotations

import codecs
import os
from typing import Any

import attrs

from healthkit import validators as v

__all__ = ["TcpConfig"]


def _host(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a host name or address, got {value!r}")
    host = value.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # "[::1]" as written in URLs
    if not host:
        raise ValueError("must not be empty")
    if any(c in host for c in "/@ ") or (":" in host and not _looks_ipv6(host)):
        raise ValueError(
            f"expected a host name or address (no scheme, port or path), got {value!r}"
        )
    return host


def _looks_ipv6(host: str) -> bool:
    return all(c in "0123456789abcdef:." for c in host)


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    if not 1 <= value <= 65535:
        raise ValueError(f"must be between 1 and 65535, got {value!r}")
    return value


def _encoding(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected an encoding name, got {value!r}")
    try:
        # Canonical name, so "UTF8" and "utf-8" are one config.
        return codecs.lookup(value).name
    except LookupError:
        raise ValueError(f"unknown encoding {value!r}") from None


def _optional_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {value!r}")


def _optional_file(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected a file path, got {value!r}")
    if not os.path.isfile(value):
        raise ValueError(f"file not found: {value!r}")
    return value


@attrs.frozen(kw_only=True)
class TcpConfig:
    """Config of the ``tcp`` strategy (see ``docs/plugins/tcp.md``).

    ``send`` is hidden from reprs: it may hold a password (``AUTH ...``).
    """

    #: Host name or IP address to connect to.
    host: str = attrs.field(converter=_host)
    #: TCP port.
    port: int = attrs.field(converter=_port)
    #: Seconds for the whole probe: connect, TLS handshake, send and expect.
    timeout: float = attrs.field(default=1.0, validator=v.gt(0))
    #: Text sent once connected (encoded with ``encoding``); nothing when absent.
    send: str | None = attrs.field(default=None, converter=_optional_text, repr=False)
    #: Text that must arrive (within the first 64 KiB) for the check to pass.
    expect: str | None = attrs.field(default=None, converter=_optional_text)
    #: How ``send`` and ``expect`` become bytes; ``latin-1`` maps U+0000-U+00FF to single bytes.
    encoding: str = attrs.field(default="utf-8", converter=_encoding)
    #: Perform a TLS handshake after connecting.
    tls: bool = False
    #: Verify the server's certificate and name (``tls`` only; on by default).
    verify: bool = True
    #: PEM file of the CAs to trust instead of the system's (``tls`` only).
    ca_bundle: str | None = attrs.field(default=None, converter=_optional_file)
    #: Name sent as SNI and checked against the certificate; default: ``host`` (``tls`` only).
    server_name: str | None = attrs.field(default=None, converter=_optional_text)

    def __attrs_post_init__(self) -> None:
        if not self.tls:
            for key in ("ca_bundle", "server_name"):
                if getattr(self, key) is not None:
                    raise ValueError(f"{key}: only allowed when tls = true")
            if not self.verify:
                raise ValueError("verify: only allowed when tls = true")
        for key in ("send", "expect"):
            text = getattr(self, key)
            if text is None:
                continue
            if not text:
                raise ValueError(f"{key}: must not be empty")
            try:
                text.encode(self.encoding)
            except UnicodeEncodeError:
                # Never echo ``send``: it may carry a password.
                raise ValueError(f"{key}: cannot be encoded as {self.encoding}") from None

    @property
    def send_bytes(self) -> bytes | None:
        return None if self.send is None else self.send.encode(self.encoding)

    @property
    def expect_bytes(self) -> bytes | None:
        return None if self.expect is None else self.expect.encode(self.encoding)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
