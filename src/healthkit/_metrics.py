"""Prometheus metrics of one monitor, in a private registry (never the global one).

Per-model gauges and resolver figures are read from the monitor when scraped;
check durations and transitions are counted as they happen.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from ._monitor import CheckEvent, Monitor, Transition
from ._resolver import Resolver

if TYPE_CHECKING:
    from ._operations import Operations

__all__ = ["CONTENT_TYPE", "MonitorMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Seconds; health checks are short, and a timeout shows up in the last buckets.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _StateCollector(Collector):
    def __init__(self, monitor: Monitor) -> None:
        self._monitor = monitor

    def collect(self) -> Iterator[Metric]:
        monitor = self._monitor
        ready = GaugeMetricFamily(
            "healthkit_model_ready", "1 when the model is ready, else 0.", labels=["model"]
        )
        status = GaugeMetricFamily(
            "healthkit_model_status",
            "Thresholded status of the model: 0 healthy, 1 degraded, 2 unknown, 3 unhealthy.",
            labels=["model"],
        )
        for name in monitor.models:
            ready.add_metric([name], 1.0 if monitor.is_ready(name) else 0.0)
            status.add_metric([name], float(monitor.status(name).severity))
        yield ready
        yield status
        resolver = monitor.kit.resolver.stats()
        yield GaugeMetricFamily(
            "healthkit_resolver_instances",
            "Live strategy instances (models with equal configs share one).",
            value=resolver.instances,
        )
        yield GaugeMetricFamily(
            "healthkit_resolver_models", "Models held by the resolver.", value=resolver.models
        )
        yield _client_rebuilds(monitor.kit.resolver)
        stats = monitor.stats()
        yield GaugeMetricFamily(
            "healthkit_checks_in_flight", "Upstream checks running now.", value=stats.in_flight
        )
        yield GaugeMetricFamily(
            "healthkit_monitor_live",
            "1 while the monitor runs.",
            value=1 if monitor.is_live() else 0,
        )
        yield CounterMetricFamily(
            "healthkit_coalesced",
            "On-demand callers that joined a check already in flight.",
            value=stats.coalesced,
        )
        yield CounterMetricFamily(
            "healthkit_cache_hits",
            "On-demand callers answered from the cache.",
            value=stats.cache_hits,
        )
        yield CounterMetricFamily(
            "healthkit_check_timeouts",
            "Checks cut by the monitor's deadline.",
            value=stats.timeouts,
        )


def _client_rebuilds(resolver: Resolver) -> CounterMetricFamily:
    """``client_rebuilds`` summed per strategy over the resolver's live instances.

    Duck-typed: any strategy (a plugin's too) that keeps an int ``client_rebuilds``
    is counted; composite children are reached through their parents' children.
    """
    family = CounterMetricFamily(
        "healthkit_client_rebuilds",
        "Clients replaced because their connection pool was starved (see docs/reliability.md).",
        labels=["strategy"],
    )
    totals: dict[str, int] = {}
    seen: set[int] = set()
    todo: list[tuple[str, object]] = []
    for holder in resolver.holders():
        try:
            todo.append((resolver.spec_of(holder).strategy, resolver.get(holder)))
        except KeyError:  # released while we looked
            continue
    while todo:
        name, instance = todo.pop()
        if id(instance) in seen:
            continue
        seen.add(id(instance))
        count = getattr(instance, "client_rebuilds", None)
        if isinstance(count, int) and not isinstance(count, bool):
            totals[name] = totals.get(name, 0) + count
        for child in getattr(instance, "_children", ()) or ():
            todo.append((str(getattr(child, "name", type(child).__name__)), child))
    for name, count in sorted(totals.items()):
        family.add_metric([name], float(count))
    return family


class _OperationsCollector(Collector):
    """Notification deliveries and history writes, when the server has them."""

    def __init__(self, metrics: MonitorMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        ops = self._metrics.operations
        if ops is None:
            return
        if ops.notifications is not None:
            families = {
                "sent": CounterMetricFamily(
                    "healthkit_notifications_sent", "Notifications delivered.", labels=["notifier"]
                ),
                "failed": CounterMetricFamily(
                    "healthkit_notifications_failed",
                    "Notifications not delivered after every retry (a dead or slow receiver).",
                    labels=["notifier"],
                ),
                "dropped": CounterMetricFamily(
                    "healthkit_notifications_dropped",
                    "Notifications dropped: the notifier's delivery queue was full.",
                    labels=["notifier"],
                ),
                "suppressed": CounterMetricFamily(
                    "healthkit_notifications_suppressed",
                    "Transitions held back by a notifier's min_interval.",
                    labels=["notifier"],
                ),
            }
            for stats in ops.notifications.stats():
                for key, family in families.items():
                    family.add_metric([stats.name], float(getattr(stats, key)))
            yield from families.values()
        if ops.history is not None:
            hist = ops.history.stats()
            yield CounterMetricFamily(
                "healthkit_history_dropped",
                "History events dropped (writer behind, or a failed write).",
                value=hist.dropped,
            )
            yield CounterMetricFamily(
                "healthkit_history_write_errors", "Failed history writes.", value=hist.write_errors
            )


class MonitorMetrics:
    """The metrics of ``monitor``; :meth:`render` gives the Prometheus text format.

    ``operations`` (settable later: the server's lifespan starts them) adds the
    notification and history counters.
    """

    def __init__(self, monitor: Monitor, operations: Operations | None = None) -> None:
        self.operations = operations
        self.registry = CollectorRegistry(auto_describe=False)
        self._duration = Histogram(
            "healthkit_check_duration_seconds",
            "Duration of upstream checks (one observation per single or batch call).",
            ["strategy", "kind"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._checks = Counter(
            "healthkit_upstream_checks",
            "Upstream calls made (a batch call counts once).",
            ["strategy", "kind"],
            registry=self.registry,
        )
        self._transitions = Counter(
            "healthkit_transitions",
            "Thresholded status transitions per model.",
            ["model", "old", "new"],
            registry=self.registry,
        )
        self.registry.register(_StateCollector(monitor))
        self.registry.register(_OperationsCollector(self))
        monitor.add_listener(self._on_transition)
        monitor.add_check_listener(self._on_check)

    def _on_transition(self, tr: Transition) -> None:
        self._transitions.labels(tr.model, tr.old.value, tr.new.value).inc()

    def _on_check(self, event: CheckEvent) -> None:
        kind = "batch" if event.batch else "single"
        self._duration.labels(event.strategy, kind).observe(event.seconds)
        self._checks.labels(event.strategy, kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
