"""The history store: every transition and a per-model, per-minute aggregate in SQLite.

Public names: :class:`HistoryStore`, :class:`HistoryConfig` and the records it
answers with. The store is the per-server view (uptime and latency percentiles
over hours to weeks); long-term, fleet-wide history belongs in Prometheus.
"""

from __future__ import annotations

from .._configuration._history import HistoryConfig, parse_duration
from ._records import (
    LATENCY_BUCKETS,
    HistoryError,
    HistoryStats,
    LatencySummary,
    MinuteRecord,
    TransitionRecord,
)
from ._store import HistoryStore

__all__ = [
    "LATENCY_BUCKETS",
    "HistoryConfig",
    "HistoryError",
    "HistoryStats",
    "HistoryStore",
    "LatencySummary",
    "MinuteRecord",
    "TransitionRecord",
    "parse_duration",
]
