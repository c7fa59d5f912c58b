"""What is checked (a target) and what a check found (a result)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from ._status import Status

__all__ = ["CheckResult", "ErrorInfo", "Target"]


@attrs.frozen(kw_only=True)
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


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@attrs.frozen(kw_only=True)
class CheckResult:
    """The outcome of one check of one target by one strategy."""

    status: Status = attrs.field(converter=Status)
    strategy: str
    target: Target = attrs.field(factory=Target)
    #: Seconds the check took; the caller fills it in when a strategy leaves 0.
    latency: float = 0.0
    checked_at: dt.datetime = attrs.field(factory=_utcnow)
    detail: str = ""
    error: ErrorInfo | None = None
    #: Results of child checks (composite strategies), in config order.
    children: tuple[CheckResult, ...] = ()

    @property
    def latency_ms(self) -> float:
        return round(self.latency * 1000.0, 3)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view of this result (no secrets are ever stored in one)."""
        data: dict[str, Any] = {
            "status": self.status.value,
            "strategy": self.strategy,
            "model": self.target.model,
            "version": self.target.version,
            "latency_ms": self.latency_ms,
            "checked_at": self.checked_at.isoformat(),
            "detail": self.detail,
            "error": None
            if self.error is None
            else {"type": self.error.type, "message": self.error.message},
        }
        if self.children:
            data["children"] = [child.to_dict() for child in self.children]
        return data
