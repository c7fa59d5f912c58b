"""``http``: Open Inference Protocol v2, KServe v1, or a generic URL template, over httpx."""

from __future__ import annotations

import ssl
import string
import time
import urllib.parse
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
            out[name.lower()] = raw
        elif isinstance(raw, str):
            out[name.lower()] = Secret(raw)
        else:
            # Never echo the value: it may be a token.
            raise TypeError(f"header {name!r}: expected a string value")
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
    #: ``v2`` only: let a monitor answer every model of this config with one
    #: ``POST /v2/repository/index`` per period instead of one request per model.
    batch: bool = False

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
    return urllib.parse.quote(part, safe="")


class _RetryableStatus(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _retrying(cfg: HttpConfig) -> tenacity.AsyncRetrying:
    """Attempts of one check: exponential backoff from ``backoff`` up to ``backoff_max``, jittered.

    Built from ``wait_exponential`` + ``wait_random``, which every supported tenacity
    has (``wait_exponential_jitter(initial=...)`` warns on tenacity >= 9.1).
    """
    return tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(cfg.retries + 1),
        wait=tenacity.wait_exponential(multiplier=cfg.backoff, max=cfg.backoff_max)
        + tenacity.wait_random(0, cfg.backoff),
        retry=tenacity.retry_if_exception_type((httpx.TransportError, _RetryableStatus)),
        reraise=True,
    )


class HttpStrategy:
    """One ``httpx.AsyncClient`` (one pool) for every model that shares this config."""

    name = "http"

    def __init__(self, config: HttpConfig) -> None:
        self.config = config
        auth = config.base_url.auth
        self._client = httpx.AsyncClient(
            base_url=config.base_url.url,
            timeout=httpx.Timeout(config.timeout),
            verify=_ssl_context(config),
            headers={k: s.get_secret_value() for k, s in config.headers.items()},
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
        return self._client

    def __repr__(self) -> str:
        return f"<HttpStrategy {self.config.protocol} {self.config.base_url}>"

    # -- requests ---------------------------------------------------------------

    def path_for(self, target: Target) -> str:
        """The path (relative to ``base_url``) that answers for ``target``."""
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

    async def _send(self, path: str) -> httpx.Response:
        cfg = self.config
        if cfg.retries == 0:
            # One attempt: tenacity's per-call machinery would cost a third of the check.
            return await self._client.request(cfg.method, path)
        retrying = _retrying(cfg)
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self._client.request(cfg.method, path)
                    if response.status_code >= 500:
                        raise _RetryableStatus(response)
                    return response
        except _RetryableStatus as exc:
            return exc.response
        raise AssertionError("unreachable: tenacity either returns or reraises")

    async def acheck(self, target: Target) -> CheckResult:
        try:
            path = self.path_for(target)
        except (KeyError, IndexError, ValueError) as exc:
            return self._result(target, Status.UNKNOWN, f"bad path template: {exc}", exc)
        try:
            response = await self._send(path)
        except httpx.TimeoutException as exc:
            return self._result(
                target,
                Status.UNHEALTHY,
                f"timed out after {self.config.timeout:g}s ({type(exc).__name__})",
                exc,
            )
        except httpx.ConnectError as exc:
            kind = "TLS error" if _is_tls(exc) else "connection failed"
            return self._result(target, Status.UNHEALTHY, f"{kind}: {exc}", exc)
        except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
            detail = f"request failed: {type(exc).__name__}: {_message(exc)}"
            return self._result(target, Status.UNHEALTHY, detail, exc)
        return self._interpret(target, response)

    # -- interpreting -------------------------------------------------------------

    def _result(
        self, target: Target, status: Status, detail: str, exc: BaseException | None = None
    ) -> CheckResult:
        return CheckResult(
            status=status,
            strategy=self.name,
            target=target,
            detail=detail,
            error=None if exc is None else ErrorInfo.from_exception(exc),
        )

    def _interpret(self, target: Target, response: httpx.Response) -> CheckResult:
        code = response.status_code
        protocol = self.config.protocol
        if protocol == "generic":
            return self._interpret_generic(target, response)
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
        body, problem = _json(response)
        if problem is not None:
            return self._result(target, Status.UNHEALTHY, problem)
        if not isinstance(body, dict) or "ready" not in body:
            return self._result(target, Status.UNHEALTHY, "body has no 'ready' field")
        ready = body["ready"]
        if ready is True or (isinstance(ready, str) and ready.lower() == "true"):
            return self._result(target, Status.HEALTHY, "ready (HTTP 200)")
        return self._result(target, Status.UNHEALTHY, f"not ready (ready={ready!r})")

    def _interpret_generic(self, target: Target, response: httpx.Response) -> CheckResult:
        code = response.status_code
        cfg = self.config
        if _in_ranges(code, cfg.expected_status):
            if cfg.json_field is None:
                return self._result(target, Status.HEALTHY, f"HTTP {code}")
            body, problem = _json(response)
            if problem is not None:
                return self._result(target, Status.UNHEALTHY, problem)
            found, value = _dig(body, cfg.json_field)
            if not found:
                return self._result(
                    target, Status.UNHEALTHY, f"body has no {cfg.json_field!r} field"
                )
            if value is True or (value and not isinstance(value, bool)):
                return self._result(
                    target, Status.HEALTHY, f"HTTP {code}, {cfg.json_field}={value!r}"
                )
            return self._result(
                target, Status.UNHEALTHY, f"HTTP {code}, {cfg.json_field}={value!r}"
            )
        if _in_ranges(code, cfg.degraded_status):
            return self._result(target, Status.DEGRADED, f"degraded (HTTP {code})")
        return self._result(target, Status.UNHEALTHY, f"unexpected HTTP {code}")

    async def aclose(self) -> None:
        await self._client.aclose()


def _in_ranges(code: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(lo <= code <= hi for lo, hi in ranges)


def _json(response: httpx.Response) -> tuple[Any, str | None]:
    try:
        return response.json(), None
    except ValueError:
        return None, f"body is not JSON (HTTP {response.status_code})"


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
    seen: BaseException | None = exc
    while seen is not None:
        if str(seen):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError | httpx.WriteError):
        return "the server closed the connection without a response"
    return "no details"


def _is_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if (
            isinstance(seen, ssl.SSLError)
            or "SSL" in type(seen).__name__
            or "CERTIFICATE" in str(seen)
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


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
        try:
            response = await self._send_index()
        except httpx.TimeoutException as exc:
            failure = (f"repository index timed out after {self.config.timeout:g}s", exc)
        except httpx.ConnectError as exc:
            kind = "TLS error" if _is_tls(exc) else "connection failed"
            failure = (f"repository index: {kind}: {exc}", exc)
        except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
            failure = (f"repository index failed: {type(exc).__name__}: {exc}", exc)
        else:
            body, problem = _json(response)
            if response.status_code != 200:
                failure = (f"repository index failed (HTTP {response.status_code})", None)
            elif problem is not None:
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
                result = self._result(target, Status.UNHEALTHY, failure[0], failure[1])
            else:
                result = _index_result(self, target, by_name.get(target.model or "", []))
            out[target] = attrs.evolve(result, latency=elapsed)
        return out

    async def _send_index(self) -> httpx.Response:
        """POST the repository index, with the same retries as a single check."""
        cfg = self.config
        if cfg.retries == 0:
            return await self._client.post("/v2/repository/index", json={})
        retrying = _retrying(cfg)
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self._client.post("/v2/repository/index", json={})
                    if response.status_code >= 500:
                        raise _RetryableStatus(response)
                    return response
        except _RetryableStatus as exc:
            return exc.response
        raise AssertionError("unreachable: tenacity either returns or reraises")


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
    detail = f"state {entry.get('state')!s} in repository index"
    return strategy._result(target, Status.UNHEALTHY, f"{detail}: {reason}" if reason else detail)
