"""Why a request got no HTTP answer, in words: refused, not resolved, reset, TLS, not HTTP."""

from __future__ import annotations

import errno
import re
import socket
import ssl

import httpx

from ._results import cut

__all__ = ["TIMEOUT_WORDS", "failure_words"]

TIMEOUT_WORDS: dict[type[BaseException], str] = {
    httpx.ConnectTimeout: "connecting",
    httpx.ReadTimeout: "waiting for the response",
    httpx.WriteTimeout: "sending the request",
    httpx.PoolTimeout: "waiting for a pool connection",
}


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
