"""The results of one strategy, built the same way every time."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from .._result import CheckResult, ErrorInfo, RequestInfo, Target
from .._status import Status

__all__ = ["ResultBuilder", "cut"]


def cut(text: str, limit: int) -> str:
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
                message = cut(message, self.error_limit)
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
