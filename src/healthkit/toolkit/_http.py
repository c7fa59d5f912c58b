"""One HTTP client per instance, and one request that ends by one deadline."""

from __future__ import annotations

import asyncio
import math
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .._url import SecretUrl
from ._tls import no_tls_context, tls_context

if TYPE_CHECKING:
    import httpx

__all__ = ["HttpReply", "fetch", "http_client", "http_failure"]


def http_client(
    base_url: SecretUrl,
    *,
    timeout: float,
    max_connections: int = 10,
    headers: Mapping[str, str] | None = None,
    verify: ssl.SSLContext | None = None,
) -> httpx.AsyncClient:
    """The one ``httpx.AsyncClient`` of an instance, for every model that shares its config.

    Credentials in ``base_url`` become basic auth; it holds at most
    ``max_connections`` connections (kept alive between checks), each carrying
    one request at a time while the others wait their turn (see
    ``ConnectionSlots``: httpx's own pool made queued requests fight over each
    freed connection, and now and then starved one past its timeout); redirects are not
    followed (a health endpoint that redirects is misconfigured, and following
    it could ask another host); proxies and ``.netrc`` are not read from the
    environment. ``verify`` defaults to :func:`tls_context` for an ``https``
    URL and :func:`no_tls_context` otherwise: either way shared, not built per client.
    """
    import httpx  # only strategies that speak HTTP pay for it

    from ._connections import ConnectionSlots

    if verify is None:
        verify = tls_context() if base_url.url.startswith("https:") else no_tls_context()
    auth = base_url.auth
    return httpx.AsyncClient(
        base_url=base_url.url,
        timeout=httpx.Timeout(timeout),
        headers=headers,
        auth=httpx.BasicAuth(*auth) if auth else None,
        transport=ConnectionSlots(max_connections, verify=verify),
        follow_redirects=False,
        trust_env=False,
    )


@attrs.frozen
class HttpReply:
    """What one :func:`fetch` got: the status, and the body when it was read."""

    status_code: int
    headers: httpx.Headers
    #: ``None`` when it was not read: too large, or not needed and not readable in time.
    body: bytes | None
    #: The body was needed but is larger than ``max_body_bytes`` (it was not read).
    oversize: bool = False


class _Countdown(dict[str, float | None]):
    """httpx's per-phase timeouts, each what is left until one deadline.

    httpx gives each phase (connect, write, read of the head, read of the body)
    the full timeout, so one request could take several times its budget;
    httpcore reads the timeout of each phase from this mapping when the phase
    starts, so every phase ends by the same deadline.
    """

    _PHASES = ("connect", "read", "write", "pool")

    def __init__(self, deadline: float) -> None:
        super().__init__({phase: None for phase in self._PHASES})
        self._deadline = deadline

    def _left(self) -> float:
        return max(0.0, self._deadline - asyncio.get_running_loop().time())

    def get(self, key: str, default: Any = None) -> Any:
        return self._left() if key in self._PHASES else default

    def __getitem__(self, key: str) -> float | None:
        if key in self._PHASES:
            return self._left()
        raise KeyError(key)


async def _read_body(
    response: httpx.Response, need_body: bool, cap: int
) -> tuple[bytes | None, bool]:
    """At most ``cap`` bytes of the body: ``(body, oversize)``.

    When only the status matters, a small body is still drained (so the
    connection can serve the next check) and anything wrong with it is ignored.
    """
    import httpx

    if response.request.method == "HEAD":
        return b"", False
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > cap:
        return None, need_body
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                return None, need_body
            chunks.append(chunk)
    except httpx.HTTPError:
        if need_body:
            raise
        return None, False
    return b"".join(chunks), False


async def fetch(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    timeout: float,
    max_body_bytes: int,
    need_body: bool = True,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
) -> HttpReply:
    """One request, over within ``timeout`` seconds from now: connect, send, head and body.

    httpx times each read, so a server that drips a byte now and then would
    hold a request for ever; here every phase gets what is left of one
    countdown, and once the request is on a connection a deadline ends it
    whatever the server sends (the connection is closed, never left half-read
    in the pool; nothing is cancelled while it waits for a pool connection).
    Running out of time raises ``httpx.ReadTimeout`` (``WriteTimeout`` while
    sending); when only the status matters (``need_body=False``) and it
    arrived, the reply comes back with the body unread. At most
    ``max_body_bytes`` are read: a larger body is not read (``oversize`` when
    it was needed). Other failures raise as httpx raises them (see
    :func:`http_failure`).
    """
    import anyio
    import httpx

    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    request = client.build_request(
        method, url, headers=headers, json=json, timeout=httpx.Timeout(timeout)
    )
    request.extensions["timeout"] = _Countdown(end)
    scope = anyio.CancelScope()
    phase = ""

    async def trace(event: str, info: Mapping[str, Any]) -> None:
        nonlocal phase
        phase = event
        # The deadline is armed once the request is on a connection: a request cut while
        # queued for one can leak the pool's slot for good (httpcore issue #1093). The
        # connect phase before this point is a single timed operation.
        if scope.deadline == math.inf and "send_request_headers" in event:
            scope.deadline = end

    request.extensions["trace"] = trace
    response: httpx.Response | None = None
    body: bytes | None = None
    oversize = False
    try:
        with scope:
            response = await client.send(request, stream=True)
            body, oversize = await _read_body(response, need_body, max_body_bytes)
    finally:
        if response is not None:
            await response.aclose()
    if scope.cancelled_caught:
        if response is not None and not need_body:
            return HttpReply(response.status_code, response.headers, None)
        late = httpx.WriteTimeout if "send_request" in phase else httpx.ReadTimeout
        raise late(f"no complete response within {timeout:.3g}s", request=request)
    assert response is not None
    return HttpReply(response.status_code, response.headers, body, oversize)


def http_failure(exc: BaseException, *, timeout: float) -> str:
    """Why a request got no HTTP answer, in the words of healthkit's ``http`` strategy.

    ``timed out after 0.5s waiting for the response (ReadTimeout)``,
    ``connection failed: connection refused``, ``TLS error: certificate not
    trusted (...)``, ``request failed: RemoteProtocolError: not HTTP (...)``,
    ``request failed: ReadError: connection reset by peer (...)``: never an
    empty reason, never a bytes repr of what the server sent.
    """
    import httpx

    from ._failure import TIMEOUT_WORDS, failure_words  # imports httpx: only when needed

    if isinstance(exc, httpx.TimeoutException):
        what = TIMEOUT_WORDS.get(type(exc), "waiting")
        return f"timed out after {timeout:g}s {what} ({type(exc).__name__})"
    return failure_words(exc)
