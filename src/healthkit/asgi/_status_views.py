"""The status page's data: a model's row, the summary, the JSON views (with history figures)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .._monitor import Monitor
from .._redact import Redactor
from .._status import Status

if TYPE_CHECKING:
    from ..history import HistoryStore

log = logging.getLogger("healthkit.asgi")

#: Rows built between two yields to the event loop.
_CHUNK = 500
#: Seconds history figures of the model list are reused (they span hours to days).
HISTORY_TTL = 30.0
#: Uptime windows of the list, and of the per-model view.
LIST_WINDOWS = {"24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}
MODEL_WINDOWS = {"1h": 3600.0, **LIST_WINDOWS}
#: Points of the per-model latency chart at most (a 30-day window groups 60 minutes each).
CHART_POINTS = 720

_ORDER = [Status.UNHEALTHY, Status.UNKNOWN, Status.DEGRADED, Status.HEALTHY]


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.timezone.utc).isoformat()


async def _call(function: Callable[..., Any], *args: Any) -> Any:
    """Call a history store read on a worker thread (SQLite must not hold the event loop)."""
    return await asyncio.to_thread(function, *args)


def _percent(value: Any) -> float | None:
    """An uptime as a percentage: the store answers a fraction (0..1) or ``None``."""
    if value is None:
        return None
    return round(float(value) * 100.0, 3)


def _grouped(minutes: list[Any]) -> list[dict[str, Any]]:
    """Minute records as chart points; more than ``CHART_POINTS`` are grouped in runs."""
    size = max(1, -(-len(minutes) // CHART_POINTS))
    points = []
    for i in range(0, len(minutes), size):
        run = minutes[i : i + size]
        checks = sum(m.checks for m in run)
        mean = sum(m.latency_mean * m.checks for m in run) / checks if checks else 0.0
        points.append(
            {
                "start": _iso(run[0].start),
                "minutes": len(run),
                "checks": checks,
                "failures": sum(m.failures for m in run),
                "mean_ms": round(mean * 1000.0, 2),
                "max_ms": round(max(m.latency_max for m in run) * 1000.0, 2),
            }
        )
    return points


class _StatusData:
    """Answered from the monitor's memory, plus the history store's figures when one is attached."""

    monitor: Monitor
    details: bool
    _redactor: Callable[[], Redactor]
    _started: Callable[[], Awaitable[Monitor]]
    history: HistoryStore | None
    _history_cache: tuple[float, Any, dict[str, Any]] | None

    def _store(self, request: Request | None) -> HistoryStore | None:
        if request is not None:
            store: HistoryStore | None = getattr(request.app.state, "history", None)
            if store is not None:
                return store
        return self.history

    def row(self, name: str) -> dict[str, Any]:
        """One model as the page shows it: never a secret, details only when enabled."""
        monitor = self.monitor
        last = monitor.last_result(name)
        history = monitor.history(name)
        mc = monitor.kit.config.models.get(name)
        status = monitor.status(name)
        row: dict[str, Any] = {
            "name": name,
            "status": status.value,
            "ready": monitor.is_ready(name),
            "strategy": last.strategy if last is not None else (mc.check.strategy if mc else None),
            "since": _iso(history[-1].at) if history else None,
            "checked_at": None if last is None else _iso(last.checked_at),
            "latency_ms": None if last is None else round(last.latency * 1000.0, 2),
        }
        if self.details:
            row["detail"] = None if last is None else (last.detail or None)
            row["error"] = (
                None if last is None or last.error is None else last.error.message or None
            )
            row["endpoint"] = None if last is None else last.endpoint
        return row

    def summary(self) -> dict[str, Any]:
        counts = dict.fromkeys((s.value for s in _ORDER), 0)
        for name in self.monitor.models:
            counts[self.monitor.status(name).value] += 1
        return {
            "ready": self.monitor.server_ready(),
            "models": sum(counts.values()),
            "counts": counts,
        }

    def _redacted(self, value: Any) -> Any:
        # Results were redacted at the monitor; this masks what a reason may still
        # quote from the config (as /health does).
        return self._redactor().data(value) if self.details else value

    async def _history_figures(self, store: HistoryStore, names: list[str]) -> dict[str, Any]:
        """Uptime per list window and p95/p99 over 24 h, per model, cached ``HISTORY_TTL``.

        Batch reads (a few queries for every model) on a worker thread: the store's
        readers are per thread, and SQLite must not hold the event loop.
        """
        now = time.monotonic()
        cached = self._history_cache
        if cached is not None and cached[1] is store and now - cached[0] < HISTORY_TTL:
            return cached[2]

        def read() -> dict[str, Any]:
            uptimes = {
                label: store.uptimes(dt.timedelta(seconds=seconds), models=names)
                for label, seconds in LIST_WINDOWS.items()
            }
            latencies = store.latencies(dt.timedelta(days=1), models=names)
            figures: dict[str, Any] = {}
            for name in names:
                latency = latencies.get(name)
                checked = latency is not None and latency.checks > 0
                figures[name] = {
                    "uptime": {label: _percent(u.get(name)) for label, u in uptimes.items()},
                    "p95_ms": round(latency.p95 * 1000.0, 2) if checked and latency else None,
                    "p99_ms": round(latency.p99 * 1000.0, 2) if checked and latency else None,
                }
            return figures

        try:
            figures = await asyncio.to_thread(read)
        except Exception as exc:  # the page shows what it has; history is extra
            log.warning("status page: history unavailable: %s", exc)
            figures = {}
        self._history_cache = (now, store, figures)
        return figures

    async def models_body(self, request: Request | None = None) -> dict[str, Any]:
        monitor = await self._started()
        rows: list[dict[str, Any]] = []
        for index, name in enumerate(monitor.models):
            if index and index % _CHUNK == 0:
                # 10,000 rows take a while: let probes and readiness answers run between chunks.
                await asyncio.sleep(0)
                if name not in monitor:  # removed by a reload meanwhile
                    continue
            rows.append(self.row(name))
        store = self._store(request)
        if store is not None:
            figures = await self._history_figures(store, [r["name"] for r in rows])
            for r in rows:
                r.update(figures.get(r["name"], {}))
        return {
            "summary": self.summary(),
            "details": self.details,
            "history": store is not None,
            "models": self._redacted(rows),
        }

    async def model_body(
        self, name: str, request: Request | None = None, *, window: str = "24h"
    ) -> dict[str, Any]:
        """One model; with history, its latency per minute over ``window`` (at most
        ``CHART_POINTS`` points: longer windows group minutes)."""
        monitor = await self._started()
        if window not in MODEL_WINDOWS:
            window = "24h"
        row = self.row(name)
        store = self._store(request)
        transitions: list[dict[str, Any]] = [
            {"old": t.old.value, "new": t.new.value, "at": _iso(t.at), "detail": t.result.detail}
            for t in monitor.history(name)
        ]
        body: dict[str, Any] = {"model": row, "details": self.details, "history": store is not None}
        if store is not None:
            utc = dt.datetime.now(dt.timezone.utc)
            try:
                since = utc - dt.timedelta(seconds=MODEL_WINDOWS["30d"])
                stored = await _call(store.transitions, name, since)
                transitions = [
                    {"old": str(t.old), "new": str(t.new), "at": _iso(t.at), "detail": t.detail}
                    for t in stored
                ]
                uptime: dict[str, Any] = {}
                latency: dict[str, Any] = {}
                for label, seconds in MODEL_WINDOWS.items():
                    start = utc - dt.timedelta(seconds=seconds)
                    uptime[label] = _percent(await _call(store.uptime, name, start))
                    summary = await _call(store.latency, name, start)
                    latency[label] = {
                        "checks": summary.checks,
                        **{
                            q: round(getattr(summary, q) * 1000.0, 2) for q in ("p50", "p95", "p99")
                        },
                    }
                body["uptime"] = uptime
                body["latency_ms"] = latency
                minutes = await _call(
                    store.minutes, name, dt.timedelta(seconds=MODEL_WINDOWS[window])
                )
                body["window"] = window
                body["minutes"] = _grouped(minutes)
            except Exception as exc:
                log.warning("status page: history of %s unavailable: %s", name, exc)
        if not self.details:
            for t in transitions:
                t.pop("detail", None)
        body["transitions"] = sorted(transitions, key=lambda t: t["at"] or "", reverse=True)
        return self._redacted(body)  # type: ignore[no-any-return]

    async def models_json(self, request: Request) -> Response:
        body = await self.models_body(request)
        # Encoding 10,000 rows is the slow part: off the event loop (the body is a snapshot).
        encoded = await asyncio.to_thread(json.dumps, body, separators=(",", ":"))
        return Response(encoded, media_type="application/json")

    async def model_json(self, request: Request) -> Response:
        name = request.path_params["name"]
        monitor = await self._started()
        if name not in monitor:
            return JSONResponse({"error": f"model {name} not found"}, status_code=404)
        window = request.query_params.get("window", "24h")
        return JSONResponse(await self.model_body(name, request, window=window))
