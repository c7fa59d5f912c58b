"""Health statuses and how several of them combine into one."""

from __future__ import annotations

import enum
from collections.abc import Iterable

__all__ = ["Status", "worst_status"]


class Status(str, enum.Enum):
    """The outcome of a health check.

    Aggregation order, from worst to best: ``unhealthy`` > ``unknown`` >
    ``degraded`` > ``healthy``. ``unknown`` ranks above ``degraded`` because a
    component we cannot see may be down, whereas a degraded one is known to serve.
    """

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNKNOWN = "unknown"
    UNHEALTHY = "unhealthy"

    @property
    def severity(self) -> int:
        """Rank in the aggregation order: higher is worse."""
        return _SEVERITY[self]

    @property
    def is_ok(self) -> bool:
        """True for statuses that still serve traffic (healthy, degraded)."""
        return self in (Status.HEALTHY, Status.DEGRADED)

    def __str__(self) -> str:
        return self.value


_SEVERITY = {
    Status.HEALTHY: 0,
    Status.DEGRADED: 1,
    Status.UNKNOWN: 2,
    Status.UNHEALTHY: 3,
}


def worst_status(statuses: Iterable[Status]) -> Status:
    """Aggregate statuses: the worst one wins; no statuses at all is healthy."""
    return max(statuses, key=_SEVERITY.__getitem__, default=Status.HEALTHY)
