"""Records the history store answers with, and its error."""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence
from typing import Any

import attrs

from .._errors import HealthkitError

__all__ = [
    "LATENCY_BUCKETS",
    "HistoryError",
    "HistoryStats",
    "LatencySummary",
    "MinuteRecord",
    "TransitionRecord",
    "bucket_index",
    "bucket_percentile",
]

#: Upper bounds (seconds) of the latency buckets kept per model and minute; a last,
#: open bucket holds everything slower. Fixed, so minutes merge by adding counts.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class HistoryError(HealthkitError):
    """The history file cannot be used (unwritable, corrupt, from a newer version)."""


def bucket_index(seconds: float) -> int:
    return bisect.bisect_left(LATENCY_BUCKETS, seconds)


def bucket_percentile(counts: Sequence[int], q: float, lo: float, hi: float) -> float:
    """The ``q`` quantile of latencies counted in ``counts`` (one per bucket, plus the open one).

    Linear inside the bucket that holds it, clamped to the observed ``lo``..``hi``:
    never faster than the fastest check nor slower than the slowest.
    """
    total = sum(counts)
    if total == 0:
        return 0.0
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            lower = LATENCY_BUCKETS[index - 1] if index > 0 else 0.0
            upper = LATENCY_BUCKETS[index] if index < len(LATENCY_BUCKETS) else hi
            value = lower + (upper - lower) * ((rank - seen) / count)
            return min(max(value, lo), hi)
        seen += count
    return hi


@attrs.frozen(kw_only=True)
class TransitionRecord:
    """A stored transition of a model's thresholded status."""

    model: str
    old: str
    new: str
    at: dt.datetime
    detail: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "old": self.old,
            "new": self.new,
            "at": self.at.isoformat(),
            "detail": self.detail,
        }


@attrs.frozen(kw_only=True)
class MinuteRecord:
    """One model's checks during one minute (``start`` is the minute, UTC)."""

    model: str
    start: dt.datetime
    checks: int
    failures: int
    latency_min: float
    latency_mean: float
    latency_max: float
    #: Checks per latency bucket (:data:`LATENCY_BUCKETS`, then the open bucket).
    buckets: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "start": self.start.isoformat(),
            "checks": self.checks,
            "failures": self.failures,
            "latency_min": self.latency_min,
            "latency_mean": self.latency_mean,
            "latency_max": self.latency_max,
        }


@attrs.frozen(kw_only=True)
class LatencySummary:
    """Latency percentiles (seconds) over the checks of a window; zeros when none."""

    checks: int
    p50: float
    p95: float
    p99: float
    min: float
    max: float

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen(kw_only=True)
class HistoryStats:
    """The writer's counters since the store opened."""

    #: Events (transitions, checks) handed to the writer.
    queued: int
    #: Events dropped: the queue was full (a slow disk) or a write failed.
    dropped: int
    #: Batches written.
    batches: int
    #: Failed writes (each drops its batch).
    write_errors: int
