"""The monitor's public records: transitions, check events and counters."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from .._result import CheckResult
from .._status import Status

__all__ = ["CheckEvent", "CheckListener", "MonitorStats", "Transition", "percentile"]


@attrs.frozen(kw_only=True)
class CheckEvent:
    """One finished upstream call, as seen by :meth:`Monitor.add_check_listener`."""

    #: The strategy's registered name (``http``, ``grpc``, ...).
    strategy: str
    #: The model checked; ``None`` for a batch call.
    model: str | None
    #: Seconds the call ran (cut at its deadline if it hung).
    seconds: float
    #: Targets the call answered (1, or the batch size).
    targets: int
    batch: bool


CheckListener = Callable[[CheckEvent], object]


# No weakref slot: every model holds its first transition (8 bytes a model).
@attrs.frozen(kw_only=True, weakref_slot=False)
class Transition:
    """A model's thresholded status changed from ``old`` to ``new`` because of ``result``."""

    model: str
    old: Status
    new: Status
    result: CheckResult
    at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "old": self.old.value,
            "new": self.new.value,
            "at": self.at.isoformat(),
            "detail": self.result.detail,
        }


TransitionListener = Callable[[Transition], object]


@attrs.frozen(kw_only=True)
class MonitorStats:
    """Counters of a monitor since it was created (for metrics and benchmarks)."""

    models: int
    ready: int
    in_flight: int
    #: Upstream calls started: single checks plus batch calls.
    checks: int
    #: Batch calls among ``checks``, and how many targets they answered.
    batches: int
    batched_targets: int
    #: On-demand callers that joined a check already in flight.
    coalesced: int
    #: On-demand callers answered from the cache.
    cache_hits: int
    #: Checks cut by the monitor's deadline.
    timeouts: int
    #: Times an instance's upstream was marked down (outlier detection).
    outages: int
    #: On-demand targets refused by the cap on distinct targets.
    refused_targets: int
    #: Seconds background probes started after they were due (recent samples).
    lateness_p50: float
    lateness_p99: float
    lateness_max: float

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]
