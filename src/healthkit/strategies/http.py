"""``http``: Open Inference Protocol v2, KServe v1, or a generic URL template, over httpx."""

from __future__ import annotations

import asyncio
import base64
import errno
import itertools
import json as _jsonlib
import logging
import socket
import ssl
import string
import time
import urllib.parse
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs
import httpx
import tenacity

from .. import validators as v
from .._frozen import FrozenMap
from .._result import CheckResult, ErrorInfo, Target
from .._secret import Secret
from .._status import Status
from .._strategy import StrategyContext
from .._url import SecretUrl

__all__ = ["HttpBatchStrategy", "HttpConfig", "HttpStrategy"]

log = logging.getLogger("healthkit.strategies.http")

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


_TEMPLATE_FIELDS = ("model", "version")


def _path_template(value: Any) -> str | None:
    """A ``generic`` path: only ``{model}`` and ``{version}`` may be filled in."""
    text = _optional_str(value)
    if text is None:
        return None
    allowed = "use only {model} and {version}; write {{ and }} for literal braces"
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"bad template {text!r}: {exc}; {allowed}") from None
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in _TEMPLATE_FIELDS or spec or conversion:
            raise ValueError(f"bad template field {{{field}}} in {text!r}; {allowed}")
    return text


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

    def check_deadline(self, timeout: float) -> float:
        """The hard cap's base (``healthkit.DeadlineConfig``): every attempt, and the
        longest pause between two (``backoff_max`` plus up to ``backoff`` of jitter)."""
        return timeout * (self.retries + 1) + (self.backoff_max + self.backoff) * self.retries

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


def _ssl_context(config: HttpConfig) -> ssl.SSLContext | bool:
    if not config.verify and not config.client_cert:
        return False
    try:
        ctx = (
            ssl.create_default_context(cafile=config.ca_bundle)
            if config.verify
            else ssl.create_default_context()
        )
        if not config.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if config.client_cert:
            ctx.load_cert_chain(config.client_cert, config.client_key)
    except (OSError, ssl.SSLError) as exc:
        # ssl's own errors do not name the file ("[Errno 2] No such file or directory").
        raise ValueError(f"TLS setup failed ({_tls_files(config)}): {exc}") from exc
    return ctx


def _tls_files(config: HttpConfig) -> str:
    files = {"ca_bundle": config.ca_bundle, "client_cert": config.client_cert}
    files["client_key"] = config.client_key
    return ", ".join(f"{k}={v!r}" for k, v in files.items() if v) or "system CAs"


def _quote(part: str) -> str:
    quoted = urllib.parse.quote(part, safe="")
    if quoted in (".", ".."):
        # A dot segment would be resolved away ("/check/.." is "/"): encode the dots,
        # which URL normalisation (httpx's and the server's) leaves alone.
        return quoted.replace(".", "%2E")
    return quoted


#: Longest excerpt of an upstream value echoed into a detail.
_EXCERPT = 80


def _excerpt(value: Any) -> str:
    """``repr(value)``, cut to a short excerpt: upstream bodies must not flood a detail."""
    text = repr(value)
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


class _RetryableStatus(Exception):
    def __init__(self, reply: _Reply) -> None:
        super().__init__(f"HTTP {reply.status_code}")
        self.reply = reply


class _GateTimeout(Exception):
    """The check's budget ran out while it waited for a free connection (never entered httpx)."""

    def __init__(self, waited: float, in_flight: int) -> None:
        super().__init__(f"no free connection within {waited:.3g}s")
        self.in_flight = in_flight


def _retrying(cfg: HttpConfig) -> tenacity.AsyncRetrying:
    """Attempts of one check: exponential backoff from ``backoff`` up to ``backoff_max``, jittered.

    Built from ``wait_exponential`` + ``wait_random``, which every supported tenacity
    has (``wait_exponential_jitter(initial=...)`` warns on tenacity >= 9.1).
    """
    return tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(cfg.retries + 1),
        wait=tenacity.wait_exponential(multiplier=cfg.backoff, max=cfg.backoff_max)
        + tenacity.wait_random(0, cfg.backoff),
        retry=tenacity.retry_if_exception_type(
            (httpx.TransportError, _RetryableStatus, _GateTimeout)
        ),
        reraise=True,
    )


@attrs.frozen
class _Reply:
    """What one request got: the status, and the body when it was needed and small enough."""

    status_code: int
    headers: httpx.Headers
    body: bytes | None
    #: The body was needed but is larger than ``max_body_bytes`` (it was not read).
    oversize: bool = False


class _Gate:
    """A FIFO semaphore whose waits end by a timer, never by cancelling anything.

    Checks queue here, not in httpcore's pool: a request cancelled while it waits
    for a pool connection can leak the slot for good (httpcore issue #1093).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0
        self._waiters: deque[asyncio.Future[bool | None]] = deque()

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    async def acquire(self, timeout: float) -> bool | None:
        """True when acquired, False when ``timeout`` passed first, None when the gate closed."""
        if self.held < self.capacity and not self.waiting:
            self.held += 1
            return True
        if timeout <= 0:
            return False
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool | None] = loop.create_future()
        self._waiters.append(fut)
        timer = loop.call_later(timeout, _settle, fut, False)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.result():
                self.release()  # granted in the same step as the cancellation: pass it on
            raise
        finally:
            timer.cancel()
            if fut in self._waiters:
                self._waiters.remove(fut)

    def release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(True)  # the slot passes straight to the next waiter
                return
        self.held -= 1

    def close(self) -> None:
        """Send every waiter back (to retry on a new client)."""
        while self._waiters:
            _settle(self._waiters.popleft(), None)


def _settle(fut: asyncio.Future[bool | None], value: bool | None) -> None:
    if not fut.done():
        fut.set_result(value)


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


class _Client:
    """One generation of the instance's client: the httpx client, its gate, its requests."""

    def __init__(self, client: httpx.AsyncClient, capacity: int) -> None:
        self.client = client
        self.gate = _Gate(capacity)
        #: Requests inside httpx now: id -> (monotonic start, its timeout).
        self.requests: dict[int, tuple[float, float]] = {}
        self.drained: asyncio.Event | None = None

    def leaked_slots(self) -> int:
        """Pool connections busy with no request of ours on them: slots httpcore leaked.

        Every request goes through the gate, and its connection is idle or closed
        again before the request leaves: so a pool may hold at most as many busy
        connections as there are requests inside httpx. ``_pool`` is httpx's
        private attribute; without it (another httpx) this finds nothing.
        """
        pool = getattr(self.client._transport, "_pool", None)
        connections = getattr(pool, "connections", None)
        if not isinstance(connections, list):
            return 0
        busy = 0
        for conn in connections:
            try:
                if not conn.is_idle() and not conn.is_closed():
                    busy += 1
            except Exception:  # an httpcore of another shape: no evidence either way
                return 0
        return max(0, busy - len(self.requests))

    def overdue(self, now: float, margin: float) -> int:
        """Requests that outlived their timeout by ``margin``: httpx is not ending them."""
        return sum(1 for began, limit in self.requests.values() if now - began > 2 * limit + margin)


class HttpStrategy:
    """One ``httpx.AsyncClient`` (one pool) for every model that shares this config.

    Checks wait for a connection at a gate of ``max_connections`` slots before
    they reach httpx, and their deadline is httpx's own per-request timeout
    (what is left of the check's budget), so the pool never holds a request
    that is cancelled from outside. A client found starved anyway is replaced
    (``client_rebuilds`` counts it); the old one is closed in the background.
    """

    name = "http"

    def __init__(self, config: HttpConfig) -> None:
        self.config = config
        self._verify = _ssl_context(config)
        #: How often the client was replaced because its pool was starved.
        self.client_rebuilds = 0
        self._current = _Client(self._new_client(), config.max_connections)
        self._retired: list[_Client] = []
        self._closers: set[asyncio.Task[None]] = set()
        self._secrets = _secrets_of(config)
        self._request_ids = itertools.count()

    def _new_client(self) -> httpx.AsyncClient:
        config = self.config
        auth = config.base_url.auth
        headers = {k: s.get_secret_value() for k, s in config.headers.items()}
        # Uncompressed, so that max_body_bytes bounds what is held in memory.
        headers.setdefault("accept-encoding", "identity")
        return httpx.AsyncClient(
            base_url=config.base_url.url,
            timeout=httpx.Timeout(config.timeout),
            verify=self._verify,
            headers=headers,
            auth=httpx.BasicAuth(*auth) if auth else None,
            limits=httpx.Limits(
                max_connections=config.max_connections,
                max_keepalive_connections=config.max_connections,
            ),
            follow_redirects=False,
            trust_env=False,
        )

    @classmethod
    def create(cls, config: HttpConfig, context: StrategyContext) -> HttpStrategy:
        # Only batch configs are a BatchStrategy, so a monitor batches exactly those.
        if config.batch:
            return HttpBatchStrategy(config)
        return cls(config)

    @property
    def client(self) -> httpx.AsyncClient:
        """The client in use now (a rebuild replaces it)."""
        return self._current.client

    def __repr__(self) -> str:
        return f"<HttpStrategy {self.config.protocol} {self.config.base_url}>"

    # -- requests ---------------------------------------------------------------

    def path_for(self, target: Target) -> str:
        """The path (relative to ``base_url``) that answers for ``target``.

        Model and version are percent-encoded, dots too when they would make a
        ``.`` or ``..`` segment: a check never asks another path than its own.
        """
        cfg = self.config
        if cfg.protocol == "v2":
            if target.model is None:
                return "/v2/health/ready"
            path = f"/v2/models/{_quote(target.model)}"
            if target.version is not None:
                path += f"/versions/{_quote(target.version)}"
            return path + "/ready"
        if cfg.protocol == "v1":
            if target.model is None:
                return "/v1/models"
            return f"/v1/models/{_quote(target.model)}"
        assert cfg.path is not None
        return cfg.path.format(
            model=_quote(target.model or ""), version=_quote(target.version or "")
        )

    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        need_body: bool,
        cap: int,
        json: Any = None,
    ) -> _Reply:
        """One check's request, with the config's retries (5xx, transport errors, no slot)."""
        cfg = self.config
        if cfg.retries == 0:
            # One attempt: tenacity's per-call machinery would cost a third of the check.
            return await self._attempt(method, path, need_body=need_body, cap=cap, json=json)
        retrying = _retrying(cfg)
        try:
            async for attempt in retrying:
                with attempt:
                    reply = await self._attempt(
                        method, path, need_body=need_body, cap=cap, json=json
                    )
                    if reply.status_code >= 500:
                        raise _RetryableStatus(reply)
                    return reply
        except _RetryableStatus as exc:
            return exc.reply
        raise AssertionError("unreachable: tenacity either returns or reraises")

    async def _attempt(
        self, method: str, path: str, *, need_body: bool, cap: int, json: Any
    ) -> _Reply:
        """One attempt, ``timeout`` seconds from now whatever it spends waiting for a slot."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        end = began + self.config.timeout
        while True:
            current = self._current
            granted = await current.gate.acquire(end - loop.time())
            if granted is None:
                continue  # the client was rebuilt while this check waited: use the new one
            if not granted:
                self._look_for_starvation(current, loop.time())
                raise _GateTimeout(loop.time() - began, current.gate.held)
            if current is self._current:
                leaked = current.leaked_slots()
                if not leaked:
                    break
                self._rebuild(current, f"{leaked} pool connection(s) stuck with no request on them")
            self._release(current)  # rebuilt meanwhile: go to the new client's gate
        try:
            left = end - loop.time()
            if left <= 0:
                raise _GateTimeout(loop.time() - began, current.gate.held)
            return await self._request(current, method, path, left, need_body, cap, json)
        finally:
            self._release(current)

    @staticmethod
    def _release(current: _Client) -> None:
        current.gate.release()
        if current.drained is not None and current.gate.held == 0:
            current.drained.set()

    async def _request(
        self,
        current: _Client,
        method: str,
        path: str,
        left: float,
        need_body: bool,
        cap: int,
        json: Any,
    ) -> _Reply:
        client = current.client
        key = next(self._request_ids)
        loop = asyncio.get_running_loop()
        current.requests[key] = (loop.time(), left)
        try:
            # httpx enforces the deadline (what is left of the budget), not a cancellation
            # from outside: the pool is never left holding a half-abandoned request.
            request = client.build_request(method, path, json=json, timeout=httpx.Timeout(left))
            request.extensions["timeout"] = _Countdown(loop.time() + left)
            response = await client.send(request, stream=True)
            try:
                body, oversize = await _read_body(response, method, need_body, cap)
            finally:
                await response.aclose()
            return _Reply(response.status_code, response.headers, body, oversize)
        except httpx.PoolTimeout:
            # Behind the gate a slot is always free: this pool has leaked its slots.
            self._rebuild(current, "a request timed out waiting for a pool connection")
            raise
        finally:
            del current.requests[key]

    # -- self-healing -------------------------------------------------------------

    def _look_for_starvation(self, current: _Client, now: float) -> None:
        """A check found no free slot: rebuild if the slots are held by requests that hang."""
        stuck = current.overdue(now, margin=max(1.0, self.config.timeout))
        if stuck:
            self._rebuild(current, f"{stuck} request(s) outlived their timeout")
        else:
            leaked = current.leaked_slots()
            if leaked:
                self._rebuild(current, f"{leaked} pool connection(s) stuck")

    def _rebuild(self, old: _Client, why: str) -> None:
        """Replace a starved client; the old one is closed in the background, never awaited."""
        if old is not self._current or self.client.is_closed:
            return  # already replaced (another check saw it first), or closing down
        self._current = _Client(self._new_client(), self.config.max_connections)
        self.client_rebuilds += 1
        log.warning(
            "http client for %s rebuilt (%s); rebuilds so far: %d",
            self.config.base_url,
            why,
            self.client_rebuilds,
        )
        old.gate.close()
        self._retired.append(old)
        task = asyncio.get_running_loop().create_task(self._retire(old))
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def _retire(self, old: _Client) -> None:
        # Requests still on the old client end by their own timeouts: let them, then close.
        if old.gate.held:
            old.drained = asyncio.Event()
            waiter = asyncio.ensure_future(old.drained.wait())
            try:
                await asyncio.wait(
                    {waiter}, timeout=self.config.check_deadline(self.config.timeout) + 1.0
                )
            finally:
                waiter.cancel()
        try:
            await old.client.aclose()
        except Exception:
            log.warning("closing a replaced http client of %s failed", self.config.base_url)
        finally:
            self._retired.remove(old)

    # -- checks -------------------------------------------------------------------

    def _needs_body(self, target: Target) -> bool:
        cfg = self.config
        if cfg.protocol == "generic":
            return cfg.json_field is not None
        return cfg.protocol == "v1" and target.model is not None

    async def acheck(self, target: Target) -> CheckResult:
        try:
            path = self.path_for(target)
        except (KeyError, IndexError, ValueError) as exc:
            return self._result(target, Status.UNKNOWN, f"bad path template: {exc}", exc)
        try:
            reply = await self._exchange(
                self.config.method,
                path,
                need_body=self._needs_body(target),
                cap=self.config.max_body_bytes,
            )
        except _GateTimeout as exc:
            return self._gate_timeout(target, exc)
        except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
            return self._result(target, Status.UNHEALTHY, self._failure(exc), exc)
        return self._interpret(target, reply)

    def _gate_timeout(self, target: Target, exc: _GateTimeout, prefix: str = "") -> CheckResult:
        detail = (
            f"{prefix}timed out after {self.config.timeout:g}s waiting for a connection "
            f"({exc.in_flight} checks in flight on this client)"
        )
        return self._result(target, Status.UNHEALTHY, detail, exc, error_type="TimeoutError")

    def _failure(self, exc: BaseException) -> str:
        if isinstance(exc, httpx.TimeoutException):
            what = _TIMEOUT_WORDS.get(type(exc), "waiting")
            return f"timed out after {self.config.timeout:g}s {what} ({type(exc).__name__})"
        return _failure_words(exc)

    # -- interpreting -------------------------------------------------------------

    def _result(
        self,
        target: Target,
        status: Status,
        detail: str,
        exc: BaseException | None = None,
        *,
        error_type: str | None = None,
    ) -> CheckResult:
        error = None
        if exc is not None:
            info = ErrorInfo.from_exception(exc)
            error = ErrorInfo(
                type=error_type or info.type, message=self._scrub(_cut(info.message, 200))
            )
        return CheckResult(
            status=status,
            strategy=self.name,
            target=target,
            detail=self._scrub(detail),
            error=error,
        )

    def _scrub(self, text: str) -> str:
        """Mask any secret of the config an upstream echoed back (the last line of defence)."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def _interpret(self, target: Target, reply: _Reply) -> CheckResult:
        code = reply.status_code
        protocol = self.config.protocol
        if protocol == "generic":
            return self._interpret_generic(target, reply)
        if 300 <= code < 400 and "location" in reply.headers:
            return self._result(target, Status.UNHEALTHY, _redirect(reply))
        if code == 404:
            what = "server" if target.model is None else f"model {target}"
            return self._result(target, Status.UNHEALTHY, f"{what} not found (HTTP 404)")
        if code >= 500 and code != 503:
            return self._result(target, Status.UNHEALTHY, f"server error (HTTP {code})")
        if code == 503:
            return self._result(target, Status.UNHEALTHY, f"not ready (HTTP {code})")
        if code != 200:
            return self._result(target, Status.UNHEALTHY, f"unexpected HTTP {code}")
        if protocol == "v2" or target.model is None:
            return self._result(target, Status.HEALTHY, "ready (HTTP 200)")
        body, problem = self._json(reply)
        if problem is not None:
            return self._result(target, Status.UNHEALTHY, problem)
        if not isinstance(body, dict) or "ready" not in body:
            return self._result(target, Status.UNHEALTHY, "body has no 'ready' field")
        ready = body["ready"]
        if ready is True or (isinstance(ready, str) and ready.lower() == "true"):
            return self._result(target, Status.HEALTHY, "ready (HTTP 200)")
        return self._result(target, Status.UNHEALTHY, f"not ready (ready={_excerpt(ready)})")

    def _interpret_generic(self, target: Target, reply: _Reply) -> CheckResult:
        code = reply.status_code
        cfg = self.config
        if _in_ranges(code, cfg.expected_status):
            if cfg.json_field is None:
                return self._result(target, Status.HEALTHY, f"HTTP {code}")
            body, problem = self._json(reply)
            if problem is not None:
                return self._result(target, Status.UNHEALTHY, problem)
            found, value = _dig(body, cfg.json_field)
            if not found:
                return self._result(
                    target, Status.UNHEALTHY, f"body has no {cfg.json_field!r} field"
                )
            status = (
                Status.HEALTHY
                if value is True or (value and not isinstance(value, bool))
                else Status.UNHEALTHY
            )
            return self._result(target, status, f"HTTP {code}, {cfg.json_field}={_excerpt(value)}")
        if _in_ranges(code, cfg.degraded_status):
            return self._result(target, Status.DEGRADED, f"degraded (HTTP {code})")
        if 300 <= code < 400 and "location" in reply.headers:
            return self._result(target, Status.UNHEALTHY, _redirect(reply))
        return self._result(target, Status.UNHEALTHY, f"unexpected HTTP {code}")

    def _json(self, reply: _Reply) -> tuple[Any, str | None]:
        if reply.oversize:
            return None, (
                f"body larger than {self.config.max_body_bytes} bytes (max_body_bytes), "
                f"not read (HTTP {reply.status_code})"
            )
        try:
            return _jsonlib.loads(reply.body or b""), None
        except ValueError:
            return None, f"body is not JSON (HTTP {reply.status_code})"

    async def aclose(self) -> None:
        """Close the client, and any replaced one still closing in the background."""
        for old in self._retired:
            if old.drained is not None:
                old.drained.set()  # stop waiting for its requests: close it now
        if self._closers:
            await asyncio.wait(set(self._closers))
        self._current.gate.close()
        await self._current.client.aclose()


_TIMEOUT_WORDS: dict[type[BaseException], str] = {
    httpx.ConnectTimeout: "connecting",
    httpx.ReadTimeout: "waiting for the response",
    httpx.WriteTimeout: "sending the request",
    httpx.PoolTimeout: "waiting for a pool connection",
}


async def _read_body(
    response: httpx.Response, method: str, need_body: bool, cap: int
) -> tuple[bytes | None, bool]:
    """Read at most ``cap`` bytes of the body; ``(body, oversize)``.

    When only the status matters, a small body is still drained (so the
    connection can serve the next check) and anything wrong with it is ignored.
    """
    if method == "HEAD":
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


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _secrets_of(config: HttpConfig) -> tuple[str, ...]:
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


def _failure_words(exc: BaseException) -> str:
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
        return f"request not sent: {name}: {_cut(message, 120)}"
    return f"request failed: {name}: {message}"


def _tls_words(exc: BaseException) -> str:
    for e in _chain(exc):
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"certificate not trusted (CERTIFICATE_VERIFY_FAILED: {e.verify_message})"
    return f"TLS handshake failed ({_message(exc)})"


def _redirect(reply: _Reply) -> str:
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
    return _cut(text, 120)


def _in_ranges(code: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(lo <= code <= hi for lo, hi in ranges)


def _dig(body: Any, dotted: str) -> tuple[bool, Any]:
    node = body
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


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


#: Bytes of repository index allowed per model asked about, on top of ``max_body_bytes``.
_INDEX_BYTES_PER_MODEL = 512


class HttpBatchStrategy(HttpStrategy):
    """``batch = true``: many models answered by one ``POST /v2/repository/index``.

    A model is healthy when an index entry of its name (and version, if the
    target has one) has ``state`` ``READY``. Single checks (``acheck``) still
    ask the per-model endpoint.
    """

    async def acheck_many(self, targets: Sequence[Target]) -> Mapping[Target, CheckResult]:
        out: dict[Target, CheckResult] = {}
        wanted = [t for t in targets if t.model is not None]
        for target in targets:
            if target.model is None:  # the server as a whole is not in the index
                out[target] = await self.acheck(target)
        if not wanted:
            return out
        start = time.perf_counter()
        failure: tuple[str, BaseException | None] | None = None
        entries: list[Any] = []
        cap = self.config.max_body_bytes + _INDEX_BYTES_PER_MODEL * len(wanted)
        try:
            reply = await self._exchange(
                "POST", "/v2/repository/index", need_body=True, cap=cap, json={}
            )
        except _GateTimeout as exc:
            failure = (
                f"repository index: timed out after {self.config.timeout:g}s waiting for a "
                f"connection ({exc.in_flight} checks in flight on this client)",
                exc,
            )
        except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
            failure = (f"repository index: {self._failure(exc)}", exc)
        else:
            if reply.status_code != 200:
                failure = (f"repository index failed (HTTP {reply.status_code})", None)
            elif reply.oversize:
                failure = (
                    f"repository index larger than {cap} bytes (max_body_bytes "
                    f"+ {_INDEX_BYTES_PER_MODEL} per model), not read",
                    None,
                )
            else:
                body, problem = self._json(reply)
                if problem is not None:
                    failure = (f"repository index: {problem}", None)
                elif not isinstance(body, list):
                    failure = ("repository index: body is not a list", None)
                else:
                    entries = [e for e in body if isinstance(e, dict)]
        elapsed = time.perf_counter() - start
        by_name: dict[str, list[dict[str, Any]]] = {}
        for entry in entries:
            by_name.setdefault(str(entry.get("name")), []).append(entry)
        for target in wanted:
            if failure is not None:
                error_type = "TimeoutError" if isinstance(failure[1], _GateTimeout) else None
                result = self._result(
                    target, Status.UNHEALTHY, failure[0], failure[1], error_type=error_type
                )
            else:
                result = _index_result(self, target, by_name.get(target.model or "", []))
            out[target] = attrs.evolve(result, latency=elapsed)
        return out


def _index_result(
    strategy: HttpStrategy, target: Target, entries: list[dict[str, Any]]
) -> CheckResult:
    if target.version is not None:
        entries = [e for e in entries if str(e.get("version")) == target.version]
    if not entries:
        return strategy._result(target, Status.UNHEALTHY, f"model {target} not in repository index")
    for entry in entries:
        if str(entry.get("state", "")).upper() == "READY":
            return strategy._result(target, Status.HEALTHY, "READY in repository index")
    entry = entries[0]
    reason = entry.get("reason") or ""
    detail = f"state {_cut(str(entry.get('state')), _EXCERPT)} in repository index"
    if reason:
        detail += f": {_cut(str(reason), _EXCERPT)}"
    return strategy._result(target, Status.UNHEALTHY, detail)
