"""URLs whose credentials stay secret, normalized so equal URLs compare equal."""

from __future__ import annotations

from typing import Any

import httpx

from ._secret import Secret

__all__ = ["SecretUrl"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


class SecretUrl:
    """An ``http(s)`` URL with any ``user:password@`` part split off into a :class:`Secret`.

    Normalized: scheme and host lower-cased, default port dropped, no trailing
    slash, so ``HTTP://Host:80/`` equals ``http://host``. ``str`` and ``repr``
    never show the credentials.
    """

    __slots__ = ("_password", "_url", "_username")

    _url: str
    _username: Secret | None
    _password: Secret | None

    def __init__(self, url: str | SecretUrl) -> None:
        if isinstance(url, SecretUrl):
            self._url, self._username, self._password = url._url, url._username, url._password
            return
        if not isinstance(url, str):
            raise TypeError(f"expected a URL string, got {type(url).__name__}")
        try:
            parsed = httpx.URL(url.strip())
        except httpx.InvalidURL as exc:
            raise ValueError(f"invalid URL: {exc}") from None
        if parsed.scheme not in _DEFAULT_PORTS or not parsed.host:
            raise ValueError(
                f"must be an http:// or https:// URL with a host, got {_redact(url)!r}"
            )
        if parsed.port is not None and not 0 < parsed.port <= 65535:
            raise ValueError(f"port must be 1-65535, got {parsed.port}")
        if any(ch.isspace() or ch == "%" for ch in parsed.host):
            raise ValueError(f"invalid host in {_redact(url)!r}")
        port = None if parsed.port in (None, _DEFAULT_PORTS[parsed.scheme]) else parsed.port
        path = parsed.path.rstrip("/")
        clean = parsed.copy_with(username=None, password=None, port=port, path=path or "/")
        text: str = str(clean)
        if not path:
            text = text.rstrip("/")
        self._url = text
        self._username = Secret(parsed.username) if parsed.username else None
        self._password = Secret(parsed.password) if parsed.password else None

    @property
    def url(self) -> str:
        """The URL without credentials: safe to log."""
        return self._url

    @property
    def auth(self) -> tuple[str, str] | None:
        """``(username, password)`` for basic auth, or ``None``."""
        if self._username is None and self._password is None:
            return None
        user = self._username.get_secret_value() if self._username else ""
        password = self._password.get_secret_value() if self._password else ""
        return user, password

    def _key(self) -> tuple[Any, ...]:
        return (self._url, self._username, self._password)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SecretUrl):
            return self._key() == other._key()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        if self.auth is None:
            return self._url
        scheme, rest = self._url.split("://", 1)
        return f"{scheme}://***@{rest}"

    def __repr__(self) -> str:
        return f"SecretUrl({str(self)!r})"


def _redact(url: str) -> str:
    """``url`` with any ``user:password@`` part masked (the password may contain ``@``)."""
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    if "@" not in authority:
        return url
    return f"{scheme}://***@{authority.rsplit('@', 1)[1]}{tail}"
