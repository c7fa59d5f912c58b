"""What went wrong, in words: requests that got no HTTP answer, redirects, excerpts of bodies."""

from __future__ import annotations

import errno
import re
import socket
import ssl
from typing import Any

import httpx

from ._pool import Reply

__all__ = ["EXCERPT", "TIMEOUT_WORDS", "cut", "excerpt", "failure_words", "redirect"]

TIMEOUT_WORDS: dict[type[BaseException], str] = {
    httpx.ConnectTimeout: "connecting",
    httpx.ReadTimeout: "waiting for the response",
    httpx.WriteTimeout: "sending the request",
    httpx.PoolTimeout: "waiting for a pool connection",
}


#: Longest excerpt of an upstream value echoed into a detail.
EXCERPT = 80


def excerpt(value: Any) -> str:
    """``repr(value)``, cut to a short excerpt: upstream bodies must not flood a detail."""
    text = repr(value)
    return text if len(text) <= EXCERPT else text[: EXCERPT - 1] + "…"


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in out:
        out.append(seen)
        seen = seen.__cause__ or seen.__context__
    return out


def _errno_in(exc: BaseException, *codes: int) -> bool:
    return any(isinstance(e, OSError) and e.errno in codes for e in _chain(exc))


#: How getaddrinfo says a name did not resolve, when httpx kept only the message.
_DNS_WORDS = ("name or service not known", "name resolution", "nodename nor servname")


def failure_words(exc: BaseException) -> str:
    """Say in words what went wrong with a request that got no HTTP answer."""
    message = _message(exc)
    if isinstance(exc, httpx.ConnectError) or any(isinstance(e, ssl.SSLError) for e in _chain(exc)):
        if _is_tls(exc):
            return f"TLS error: {_tls_words(exc)}"
        if _errno_in(exc, errno.ECONNREFUSED) or "refused" in message.lower():
            return "connection failed: connection refused"
        if any(isinstance(e, socket.gaierror) for e in _chain(exc)) or any(
            words in message.lower() for words in _DNS_WORDS
        ):
            return f"connection failed: DNS name not resolved ({message})"
        if _errno_in(exc, errno.ECONNRESET):
            return "connection failed: connection reset by peer"
        return f"connection failed: {message}"
    name = type(exc).__name__
    if isinstance(exc, httpx.RemoteProtocolError) and "without sending a response" not in message:
        return f"request failed: {name}: not HTTP (the reply is not an HTTP response)"
    if _errno_in(exc, errno.ECONNRESET) or "reset by peer" in message.lower():
        return f"request failed: {name}: connection reset by peer ({message})"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL | httpx.LocalProtocolError):
        return f"request not sent: {name}: {cut(message, 120)}"
    return f"request failed: {name}: {message}"


#: Where in CPython's ssl module an error was raised: no reason, so not shown.
_SSL_SOURCE = re.compile(r"\s*\(_ssl\.c:\d+\)")


def _tls_words(exc: BaseException) -> str:
    for e in _chain(exc):
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"certificate not trusted (CERTIFICATE_VERIFY_FAILED: {e.verify_message})"
    return f"TLS handshake failed ({_SSL_SOURCE.sub('', _message(exc))})"


def redirect(reply: Reply) -> str:
    return (
        f"unexpected HTTP {reply.status_code}: redirect not followed "
        f"(to {_redact_location(reply.headers.get('location', ''))})"
    )


def _redact_location(location: str) -> str:
    """A redirect's target without credentials, query or fragment, and cut short."""
    try:
        url = httpx.URL(location)
    except (httpx.InvalidURL, ValueError, TypeError):
        return "an invalid location"
    shown = url.copy_with(username=None, password=None, query=None, fragment=None)
    text = str(shown)
    if url.userinfo:
        scheme, _, rest = text.partition("://")
        text = f"{scheme}://***@{rest}"
    if url.query or url.fragment:
        text += "?***"
    return cut(text, 120)


def _message(exc: BaseException) -> str:
    """What went wrong; httpx leaves the message empty when the peer just hangs up."""
    for seen in _chain(exc):
        if str(seen):
            return str(seen)
    if isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError | httpx.WriteError):
        return "the server closed the connection without a response"
    return "no details"


def _is_tls(exc: BaseException) -> bool:
    for seen in _chain(exc):
        if (
            isinstance(seen, ssl.SSLError)
            or "SSL" in type(seen).__name__
            or "CERTIFICATE" in str(seen)
        ):
            return True
    return False
