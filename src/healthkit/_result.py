"""What is checked (a target) and what a check found (a result)."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import attrs

from ._status import Status

__all__ = ["CheckResult", "ErrorInfo", "RequestInfo", "Target", "with_latency"]


# No weakref slot: every model holds its own target (8 bytes a model).
@attrs.frozen(kw_only=True, weakref_slot=False)
class Target:
    """What one check looks at, given at check time and never stored in a config.

    ``model=None`` asks about the upstream server as a whole.
    """

    model: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.model is None:
            return "<server>"
        return self.model if self.version is None else f"{self.model}@{self.version}"


@attrs.frozen(kw_only=True)
class ErrorInfo:
    """Why a check failed: the exception type name and its message."""

    type: str
    message: str

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        """The exception's type and message; an empty message borrows its cause's."""
        seen: BaseException | None = exc
        while seen is not None and not str(seen):
            seen = seen.__cause__ or seen.__context__
        message = str(seen) if seen is not None else type(exc).__name__
        return cls(type=type(exc).__name__, message=message)


def _shown_url(url: str | None) -> str | None:
    """``url`` without its query and fragment: either may carry a token (``?api_key=``)."""
    if url is None or ("?" not in url and "#" not in url):
        return url
    return url.split("#", 1)[0].split("?", 1)[0]


def _shown_request_url(url: str) -> str:
    return _shown_url(url) or ""


@attrs.frozen(kw_only=True)
class RequestInfo:
    """The request a check made, to tell why it failed: never carries a secret.

    ``url`` is shown as it is, so a strategy passes a URL without credentials
    (``SecretUrl.url``) and never a header. ``status`` is what came back
    (``"HTTP 503"``), or ``None`` when no answer came (refused, timed out).
    A query string or fragment is dropped (it may carry a token).
    """

    method: str
    url: str = attrs.field(converter=_shown_request_url)
    status: str | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.url} -> {self.status or 'no answer'}"

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "url": self.url, "status": self.status}


#: ``datetime.now(timezone.utc)`` without a Python frame of its own around it: every
#: result a check builds without ``checked_at`` calls it (about a third of the cost).
_utcnow = functools.partial(dt.datetime.now, dt.timezone.utc)


def _status(value: Any) -> Status:
    # Most results are built with a Status already: skip the enum lookup (once per check).
    return value if type(value) is Status else Status(value)


# No weakref slot: a monitor holds one or two results a model, a hundred thousand
# models (8 bytes each); nothing refers to a result weakly.
@attrs.frozen(kw_only=True, weakref_slot=False)
class CheckResult:
    """The outcome of one check of one target by one strategy."""

    status: Status = attrs.field(converter=_status)
    strategy: str
    target: Target = attrs.field(factory=Target)
    #: Seconds the check took; the caller fills it in when a strategy leaves 0.
    latency: float = 0.0
    checked_at: dt.datetime = attrs.field(factory=_utcnow)
    detail: str = ""
    error: ErrorInfo | None = None
    #: Results of child checks (composite strategies), in config order.
    children: tuple[CheckResult, ...] = ()
    #: What the check contacted, without credentials: a URL (``http``, ``openai``) or
    #: ``host:port`` (``grpc``, ``tcp``); ``None`` when a strategy does not say. A query
    #: string or fragment is dropped (it may carry a token).
    endpoint: str | None = attrs.field(default=None, converter=_shown_url)
    #: The request made for this check (``http``), to tell why it failed.
    request: RequestInfo | None = None

    @property
    def latency_ms(self) -> float:
        return round(self.latency * 1000.0, 3)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view of this result (no secrets are ever stored in one).

        Every key is always there (``children`` is ``[]`` for a leaf): the shape of
        each model in ``healthkit check --format json``.
        """
        return {
            "status": self.status.value,
            "strategy": self.strategy,
            "endpoint": self.endpoint,
            "model": self.target.model,
            "version": self.target.version,
            "latency_ms": self.latency_ms,
            "checked_at": self.checked_at.isoformat(),
            "detail": self.detail,
            "error": None
            if self.error is None
            else {"type": self.error.type, "message": self.error.message},
            "request": None if self.request is None else self.request.to_dict(),
            "children": [child.to_dict() for child in self.children],
        }


def with_latency(result: CheckResult, latency: float) -> CheckResult:
    """``attrs.evolve(result, latency=latency)``, without re-running the converters.

    Every check whose strategy leaves ``latency`` at 0 passes here: the fields of a
    valid result are valid already. One line per field, not a loop over them (half
    the cost, once per probe); ``tests/test_probe_path_result.py`` fails when a field
    is added to :class:`CheckResult` and not here.
    """
    if type(result) is not CheckResult:
        return attrs.evolve(result, latency=latency)
    new = _new(CheckResult)
    _set(new, "status", result.status)
    _set(new, "strategy", result.strategy)
    _set(new, "target", result.target)
    _set(new, "latency", latency)
    _set(new, "checked_at", result.checked_at)
    _set(new, "detail", result.detail)
    _set(new, "error", result.error)
    _set(new, "children", result.children)
    _set(new, "endpoint", result.endpoint)
    _set(new, "request", result.request)
    return new


def leaf_result(
    *, status: Status, strategy: str, target: Target, latency: float, detail: str
) -> CheckResult:
    """``CheckResult(status=..., strategy=..., target=..., latency=..., detail=...)``, checked
    now, every other field at its default, without the keyword call and the converters
    (``status`` must be a :class:`Status` already): a third of the cost of a ``noop``
    probe went to its result's ``__init__``. ``tests/test_probe_path_result.py`` fails
    when a field is added to :class:`CheckResult` and not here.
    """
    new = _new(CheckResult)
    _set(new, "status", status)
    _set(new, "strategy", strategy)
    _set(new, "target", target)
    _set(new, "latency", latency)
    _set(new, "checked_at", _utcnow())
    _set(new, "detail", detail)
    _set(new, "error", None)
    _set(new, "children", ())
    _set(new, "endpoint", None)
    _set(new, "request", None)
    return new


_new = object.__new__
_set = object.__setattr__
