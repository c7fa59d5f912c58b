"""The retry policy of one check, and the deadline that covers all its attempts."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import tenacity

__all__ = ["RetrySettings", "retry_deadline", "retrying"]


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
