"""Building blocks for strategy authors: results, retries, TLS contexts, the declared deadline.

The built-in strategies and the bundled plugins use these; a plugin may too
(plugins must not import healthkit's private modules). Each piece is small and
does one thing:

- :class:`ResultBuilder` turns (target, status, detail, exception) into a
  :class:`~healthkit.CheckResult` carrying the strategy's name, optionally
  masking secrets an upstream echoed back;
- :func:`retrying` is the retry policy of one check on tenacity (exponential
  backoff from ``backoff`` up to ``backoff_max``, plus up to ``backoff`` of
  jitter), and :func:`retry_deadline` the matching ``check_deadline`` (see
  :class:`~healthkit.DeadlineConfig`), so the monitor's hard cap covers every
  attempt and pause;
- :func:`tls_context` builds an ``ssl.SSLContext`` once per distinct set of TLS
  settings and shares it between instances (a context with the system's CAs
  costs tens of milliseconds and most of a megabyte); :func:`no_tls_context`
  is the shared stand-in for a client that never speaks TLS;
- :func:`http_client` is an ``httpx.AsyncClient`` set up as healthkit's own
  strategies use theirs (one pool, no redirects, nothing from the environment);
  :func:`fetch` sends one request that ends by one deadline, head and body
  alike, and reads a capped body; :func:`http_failure` says in words why a
  request got no HTTP answer;
- :func:`secret_masker` masks a config's secrets in text an upstream sent,
  and :func:`printable` / :func:`excerpt` make such text safe and short to show
  (no terminal escapes, no bytes reprs);
- :class:`FrozenMap` is the hashable mapping a config converter returns for a
  table (a plain dict would stop equal configs from sharing an instance), and
  :func:`guarded_check` runs one ``acheck`` as healthkit does (exceptions, hangs
  and garbage become ``unhealthy`` results), for a plugin's tests.
"""

from __future__ import annotations

import asyncio
import math
import os
import ssl
import threading
import unicodedata
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

import attrs

from ._frozen import FrozenMap
from ._guard import guarded_check
from ._result import CheckResult, ErrorInfo, RequestInfo, Target
from ._status import Status
from ._url import SecretUrl

if TYPE_CHECKING:
    import httpx
    import tenacity

__all__ = [
    "FrozenMap",
    "HttpReply",
    "ResultBuilder",
    "RetrySettings",
    "excerpt",
    "fetch",
    "guarded_check",
    "http_client",
    "http_failure",
    "no_tls_context",
    "printable",
    "retry_deadline",
    "retrying",
    "secret_masker",
    "tls_context",
]


# -- results -------------------------------------------------------------------------------


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@attrs.frozen
class ResultBuilder:
    """Makes the results of one strategy: ``results(target, status, detail, error)``.

    ``error`` is an exception (it becomes an :class:`~healthkit.ErrorInfo` of its
    type and message) or an ``ErrorInfo`` taken as it is. ``scrub``, when given,
    is applied to the detail and the error message (say, to mask a token an
    upstream echoed back); ``error_limit`` cuts long error messages. ``endpoint``
    (a URL without credentials, or ``host:port``) says in every result what was
    contacted.
    """

    #: The strategy's name, as every result reports it.
    strategy: str
    scrub: Callable[[str], str] | None = attrs.field(default=None, kw_only=True)
    error_limit: int | None = attrs.field(default=None, kw_only=True)
    endpoint: str | None = attrs.field(default=None, kw_only=True)

    def __call__(
        self,
        target: Target,
        status: Status,
        detail: str,
        error: BaseException | ErrorInfo | None = None,
        *,
        error_type: str | None = None,
        request: RequestInfo | None = None,
    ) -> CheckResult:
        """A result; ``error_type`` replaces the error's type name (``"TimeoutError"``, say).

        ``request`` is the request the check made (see :class:`~healthkit.RequestInfo`).
        """
        info = ErrorInfo.from_exception(error) if isinstance(error, BaseException) else error
        if info is not None:
            message = info.message
            if self.error_limit is not None:
                message = _cut(message, self.error_limit)
            if self.scrub is not None:
                message = self.scrub(message)
            if message != info.message or error_type is not None:
                info = ErrorInfo(type=error_type or info.type, message=message)
        return CheckResult(
            status=status,
            strategy=self.strategy,
            target=target,
            detail=detail if self.scrub is None else self.scrub(detail),
            error=info,
            endpoint=self.endpoint,
            request=request,
        )


# -- upstream text ---------------------------------------------------------------------------


def secret_masker(*sources: object, extra: Iterable[str] = ()) -> Callable[[str], str]:
    """A function that masks (``***``) every secret of ``sources`` in a text.

    The secrets are every :class:`~healthkit.Secret` and the credentials of every
    :class:`~healthkit.SecretUrl` in ``sources`` (configs are walked field by
    field, mappings and sequences item by item) and each string of ``extra``;
    each is matched in every form a library message or an echoing upstream may
    show it: as it is, stripped, repr-escaped, percent-encoded, and the credential
    of ``Bearer <token>`` alone. Values shorter than four characters are left
    alone (masking them would garble ordinary words). Pass it as
    ``ResultBuilder(name, scrub=...)``, or apply it to upstream text before
    cutting an excerpt of it (a cut through a secret would show its first part).
    """
    from ._redact import Redactor  # its config imports reach back into this module

    return Redactor(cast(Any, sources), extra=extra)


#: Unicode's pictures of the C0 controls and DEL: visible, and inert in a terminal.
_PICTURES = {code: chr(0x2400 + code) for code in range(32)} | {0x7F: "\u2421"}


def printable(text: str | bytes, *, keep: str = "") -> str:
    """``text`` made safe to print in a terminal, a log line or a table.

    Bytes are decoded as UTF-8 (what does not decode becomes U+FFFD). Control
    characters become their Unicode pictures (NUL ``␀``, ESC ``␛``, CR ``␍``,
    LF ``␊``, DEL ``␡``), except those in ``keep`` (say ``"\\n\\t"`` for
    multi-line output); other invisible or formatting characters (C1
    controls, bidirectional overrides, zero-width ones) become U+FFFD and
    other spaces a plain space. Never a bytes repr, never an escape sequence.
    """
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", errors="replace")
    out = []
    for ch in text:
        code = ord(ch)
        if ch in keep:
            out.append(ch)
        elif code in _PICTURES:
            out.append(_PICTURES[code])
        elif ch.isprintable():
            out.append(ch)
        elif unicodedata.category(ch) == "Zs":
            out.append(" ")
        else:
            out.append("\ufffd")
    return "".join(out)


def excerpt(text: str | bytes, limit: int = 80, *, tail: bool = False, keep: str = "") -> str:
    """A :func:`printable` excerpt of ``text``, at most ``limit`` characters.

    A longer text is cut with ``…``: its first ``limit - 1`` characters, or with
    ``tail`` its last ones (where a command's error usually is). Mask secrets
    before (see :func:`secret_masker`): a cut through one would show a part.
    """
    shown = printable(text, keep=keep)
    if len(shown) <= limit:
        return shown
    if tail:
        return "…" + shown[len(shown) - limit + 1 :]
    return shown[: limit - 1] + "…"


# -- retries ---------------------------------------------------------------------------------


class RetrySettings(Protocol):
    """The retry fields of a config: extra attempts and the backoff between them."""

    @property
    def retries(self) -> int:
        """Extra attempts after a retryable failure, inside one check."""
        ...

    @property
    def backoff(self) -> float:
        """First pause (seconds); it doubles each time, and up to this much jitter is added."""
        ...

    @property
    def backoff_max(self) -> float:
        """Longest pause before jitter (seconds)."""
        ...


def retry_deadline(settings: RetrySettings, timeout: float) -> float:
    """What ``check_deadline(timeout)`` returns for a config retried with :func:`retrying`.

    Every attempt (``timeout`` each) and the longest pause between two
    (``backoff_max`` plus up to ``backoff`` of jitter)::

        def check_deadline(self, timeout: float) -> float:
            return retry_deadline(self, timeout)
    """
    pauses = (settings.backoff_max + settings.backoff) * settings.retries
    return timeout * (settings.retries + 1) + pauses


def retrying(
    settings: RetrySettings,
    *,
    retry: type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool],
) -> tenacity.AsyncRetrying:
    """The attempts of one check: ``async for attempt in retrying(cfg, retry=...)``.

    ``retry`` names the exception types worth another attempt, or is a predicate
    on the exception. The last failure is re-raised as it is. Exponential backoff
    from ``backoff`` up to ``backoff_max``, plus up to ``backoff`` of jitter,
    built from ``wait_exponential`` + ``wait_random`` (which every supported
    tenacity has; ``wait_exponential_jitter(initial=...)`` warns on 9.1+).
    """
    import tenacity  # only strategies that retry pay for it

    condition: tenacity.retry_base = (
        tenacity.retry_if_exception_type(retry)
        if isinstance(retry, type | tuple)
        else tenacity.retry_if_exception(retry)
    )
    return tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(settings.retries + 1),
        wait=tenacity.wait_exponential(multiplier=settings.backoff, max=settings.backoff_max)
        + tenacity.wait_random(0, settings.backoff),
        retry=condition,
        reraise=True,
    )


# -- TLS -------------------------------------------------------------------------------------

# Contexts by settings, held weakly: one lives as long as an instance uses it, so nothing is
# kept for configs that are gone, and a reload after a certificate rotation (the files'
# size/mtime/inode are in the key) builds a fresh one.
_contexts: weakref.WeakValueDictionary[tuple[Any, ...], ssl.SSLContext] = (
    weakref.WeakValueDictionary()
)
_contexts_lock = threading.Lock()


def _file_key(path: str | None) -> tuple[Any, ...] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return (path,)  # building will fail and say why; nothing is cached then
    return (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _tls_files(ca_bundle: str | None, client_cert: str | None, client_key: str | None) -> str:
    files = {"ca_bundle": ca_bundle, "client_cert": client_cert, "client_key": client_key}
    return ", ".join(f"{k}={v!r}" for k, v in files.items() if v) or "system CAs"


def _build(
    verify: bool, ca_bundle: str | None, client_cert: str | None, client_key: str | None
) -> ssl.SSLContext:
    try:
        if verify:
            ctx = ssl.create_default_context(cafile=ca_bundle)
        else:
            # Nothing is verified, so no CA is loaded (loading the system's costs the most).
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if client_cert:
            ctx.load_cert_chain(client_cert, client_key)
    except (OSError, ssl.SSLError) as exc:
        # ssl's own errors do not name the file ("[Errno 2] No such file or directory").
        where = _tls_files(ca_bundle, client_cert, client_key)
        raise ValueError(f"TLS setup failed ({where}): {exc}") from exc
    return ctx


def _shared(key: tuple[Any, ...], build: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    # Per thread: a client library may set options on the context at every connection
    # (httpcore sets ALPN), which must not race with a handshake on another thread
    # (isolation = "thread" runs instances on worker threads).
    key = (threading.get_ident(), *key)
    with _contexts_lock:
        ctx = _contexts.get(key)
    if ctx is None:
        ctx = build()
        with _contexts_lock:
            ctx = _contexts.setdefault(key, ctx)
    return ctx


def tls_context(
    *,
    verify: bool = True,
    ca_bundle: str | None = None,
    client_cert: str | None = None,
    client_key: str | None = None,
) -> ssl.SSLContext:
    """A client ``ssl.SSLContext``, shared with every caller that asks for the same settings.

    ``verify`` checks the server's certificate and name against ``ca_bundle``
    (a PEM file), else the system's CAs; ``client_cert`` (and ``client_key``
    when the key is in another file) is presented for mutual TLS. A file that
    cannot be read raises ``ValueError`` naming it. Treat the context as
    read-only: others share it.
    """
    key = (
        "tls",
        verify,
        _file_key(ca_bundle) if verify else None,
        _file_key(client_cert),
        _file_key(client_key),
    )
    return _shared(
        key, lambda: _build(verify, ca_bundle if verify else None, client_cert, client_key)
    )


def _no_tls() -> ssl.SSLContext:
    # Verifies, and trusts no CA: an https request made through it by mistake fails, loudly.
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def no_tls_context() -> ssl.SSLContext:
    """The shared context for a client that never speaks TLS (an ``http://`` upstream).

    httpx builds a context for every client unless given one; this one costs
    next to nothing. It trusts no CA, so an ``https`` request made through it
    fails certificate verification rather than passing unverified.
    """
    return _shared(("none",), _no_tls)


# -- HTTP clients ------------------------------------------------------------------------------


def http_client(
    base_url: SecretUrl,
    *,
    timeout: float,
    max_connections: int = 10,
    headers: Mapping[str, str] | None = None,
    verify: ssl.SSLContext | None = None,
) -> httpx.AsyncClient:
    """The one ``httpx.AsyncClient`` of an instance, for every model that shares its config.

    Credentials in ``base_url`` become basic auth; the pool holds at most
    ``max_connections`` (all kept alive between checks); redirects are not
    followed (a health endpoint that redirects is misconfigured, and following
    it could ask another host); proxies and ``.netrc`` are not read from the
    environment. ``verify`` defaults to :func:`tls_context` for an ``https``
    URL and :func:`no_tls_context` otherwise: either way shared, not built per client.
    """
    import httpx  # only strategies that speak HTTP pay for it

    if verify is None:
        verify = tls_context() if base_url.url.startswith("https:") else no_tls_context()
    auth = base_url.auth
    return httpx.AsyncClient(
        base_url=base_url.url,
        timeout=httpx.Timeout(timeout),
        verify=verify,
        headers=headers,
        auth=httpx.BasicAuth(*auth) if auth else None,
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
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

    from .strategies.http._words import TIMEOUT_WORDS, failure_words

    if isinstance(exc, httpx.TimeoutException):
        what = TIMEOUT_WORDS.get(type(exc), "waiting")
        return f"timed out after {timeout:g}s {what} ({type(exc).__name__})"
    return failure_words(exc)
