"""The status page: ``/status`` (HTML), its JSON, its assets and a Server-Sent Events stream.

Read-only, answered from the monitor's memory (and the history store when one
is attached: ``app.state.history``). The HTML is rendered on the server (a page
of rows, filter and search by query string), so it works without JavaScript;
``status.js`` then loads every model from ``/status/api/models``, draws only
the rows in view (10,000 models stay fast) and applies the transitions that
arrive on ``/status/events``.

Details (the reason of the last result, its endpoint) follow the app's
``show_details`` rule, like ``/health``: hidden unless enabled, and then passed
through the config's redactor. The SSE fan-out never slows a probe: the
monitor's transition listener only appends to each client's bounded queue; a
client whose queue is full is dropped (its browser reconnects and reloads).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import html
import importlib.resources
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from .._monitor import Monitor, Transition
from .._redact import Redactor
from .._status import Status

if TYPE_CHECKING:
    from ..history import HistoryStore

__all__ = ["StatusPage"]

log = logging.getLogger("healthkit.asgi")

#: Rows built between two yields to the event loop.
_CHUNK = 500
#: Rows the server renders per page (the no-JavaScript view; the script draws every row).
PAGE_ROWS = 100
#: Events queued per SSE client before it counts as too slow and is dropped.
CLIENT_QUEUE = 1000
#: SSE clients served at once; more get a 503.
MAX_CLIENTS = 100
#: Seconds between keep-alive comments (they also reveal a client that went away).
HEARTBEAT = 15.0
#: Seconds one write to a client may take before the client is dropped.
SEND_TIMEOUT = 10.0
#: Seconds between summary events (counts by status, server readiness).
SUMMARY_PERIOD = 5.0
#: Seconds history figures of the model list are reused (they span hours to days).
HISTORY_TTL = 30.0
#: Uptime windows of the list, and of the per-model view.
LIST_WINDOWS = {"24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}
MODEL_WINDOWS = {"1h": 3600.0, **LIST_WINDOWS}
#: Points of the per-model latency chart at most (a 30-day window groups 60 minutes each).
CHART_POINTS = 720

_SYMBOL = {
    Status.HEALTHY: "\u2714",  # check mark
    Status.DEGRADED: "\u25b2",  # triangle
    Status.UNKNOWN: "?",
    Status.UNHEALTHY: "\u2716",  # heavy x
}
_ORDER = [Status.UNHEALTHY, Status.UNKNOWN, Status.DEGRADED, Status.HEALTHY]
_ASSETS = {
    "status.js": "text/javascript; charset=utf-8",
    "status.css": "text/css; charset=utf-8",
}


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


class _Client:
    """One SSE connection: a bounded queue the listener fills and the writer empties."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.queue: collections.deque[str] = collections.deque()
        self.wake = asyncio.Event()
        self.closed = False
        self.dropped = False

    def offer(self, chunk: str) -> None:
        if self.closed:
            return
        if len(self.queue) >= self.size:
            # Too slow: drop it rather than buffer without bound or wait for it.
            self.dropped = True
            self.queue.clear()
            self.close()
            return
        self.queue.append(chunk)
        self.wake.set()

    def close(self) -> None:
        self.closed = True
        self.wake.set()


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class StatusPage:
    """The status page's routes over one monitor (see the module docstring)."""

    def __init__(
        self,
        monitor: Monitor,
        *,
        details: bool,
        redactor: Callable[[], Redactor],
        started: Callable[[], Awaitable[Monitor]],
        history: HistoryStore | None = None,
        queue_size: int = CLIENT_QUEUE,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        self.monitor = monitor
        self.details = details
        self._redactor = redactor
        self._started = started
        self.history = history
        self.queue_size = queue_size
        self.max_clients = max_clients
        self.clients: set[_Client] = set()
        #: Clients dropped for being too slow (for tests and the benchmark).
        self.dropped = 0
        self._listening = False
        self._summary_task: asyncio.Task[None] | None = None
        self._history_cache: tuple[float, Any, dict[str, Any]] | None = None
        self._assets: dict[str, bytes] = {}

    # -- the data ---------------------------------------------------------------------

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

    # -- HTML ---------------------------------------------------------------------------

    def _asset(self, name: str) -> bytes:
        if name not in self._assets:
            files = importlib.resources.files("healthkit.asgi") / "static" / name
            self._assets[name] = files.read_bytes()
        return self._assets[name]

    def _base(self, request: Request) -> str:
        root: str = request.scope.get("root_path", "")
        return root.rstrip("/") + "/status"

    def _details_note(self) -> str:
        if self.details:
            return "Details are shown (show_details = always); secrets are masked."
        return (
            "Details (reasons, endpoints) are hidden: the server runs with"
            " show_details = never (<code>--show-details always</code> shows them)."
        )

    @staticmethod
    def _badge(status: str) -> str:
        symbol = _SYMBOL.get(Status(status), "?")
        return (
            f'<span class="badge s-{status}"><span aria-hidden="true">{symbol}</span> '
            f"{status}</span>"
        )

    def _head(self, title: str, base: str) -> str:
        return (
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title>"
            f'<link rel="stylesheet" href="{base}/static/status.css"></head>'
        )

    async def page(self, request: Request) -> Response:
        monitor = await self._started()
        base = self._base(request)
        wanted = request.query_params.get("status", "")
        query = request.query_params.get("q", "").strip()
        try:
            page = max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            page = 1
        names = [
            n
            for n in monitor.models
            if (not wanted or monitor.status(n).value == wanted)
            and (not query or query.lower() in n.lower())
        ]
        shown = names[(page - 1) * PAGE_ROWS : page * PAGE_ROWS]
        rows = self._redacted([self.row(n) for n in shown])
        summary = self.summary()
        esc = html.escape
        parts = [
            self._head("healthkit status", base),
            f'<body data-base="{esc(base)}" data-details="{str(self.details).lower()}">',
            "<header><h1>healthkit status</h1>",
            '<p id="summary" class="summary">',
            f'<span class="ready-{str(summary["ready"]).lower()}">Server '
            f"{'ready' if summary['ready'] else 'not ready'}</span> \u00b7 "
            f'<span id="total">{summary["models"]}</span> models: ',
            " ".join(
                f'<span class="count">{self._badge(s)} <b data-count="{s}">{c}</b></span>'
                for s, c in summary["counts"].items()
            ),
            "</p>",
            f'<p class="note">{self._details_note()}</p></header>',
            '<form id="controls" method="get" role="search">',
            '<label>Status <select name="status" id="filter">',
            '<option value="">all</option>',
            *(
                f'<option value="{s.value}"{" selected" if wanted == s.value else ""}>'
                f"{s.value}</option>"
                for s in _ORDER
            ),
            "</select></label> ",
            '<label>Search <input type="search" name="q" id="search" '
            f'placeholder="model name" value="{esc(query)}"></label> ',
            '<noscript><button type="submit">Apply</button></noscript>',
            '<span id="live" class="live">static view</span>',
            "</form>",
            '<div id="table" class="table" role="table" aria-label="models">',
            '<div class="row head" role="row">',
            *(
                f'<span role="columnheader" class="c-{key}" data-sort="{key}">{label}</span>'
                for key, label in (
                    ("name", "Model"),
                    ("status", "Status"),
                    ("since", "Since"),
                    ("strategy", "Strategy"),
                    ("latency_ms", "Latency"),
                    ("uptime", "Uptime 24h / 7d / 30d"),
                    ("p95_ms", "p95 / p99"),
                )
            ),
            "</div>",
            '<div id="viewport" class="viewport"><div id="rows">',
        ]
        for r in rows:
            href = f"{base}/models/{quote(r['name'], safe='')}"
            latency = "-" if r["latency_ms"] is None else f"{r['latency_ms']} ms"
            parts.append(
                f'<div class="row" role="row" data-name="{esc(r["name"])}">'
                f'<span class="c-name"><a href="{esc(href)}">{esc(r["name"])}</a></span>'
                f'<span class="c-status">{self._badge(r["status"])}</span>'
                f'<span class="c-since">{esc(r["since"] or "-")}</span>'
                f'<span class="c-strategy">{esc(r["strategy"] or "-")}</span>'
                f'<span class="c-latency_ms">{latency}</span>'
                '<span class="c-uptime">-</span><span class="c-p95_ms">-</span></div>'
            )
        parts.append("</div></div></div>")
        pages = max(1, -(-len(names) // PAGE_ROWS))
        if pages > 1:
            nav = []
            for label, target in (("previous", page - 1), ("next", page + 1)):
                if 1 <= target <= pages:
                    qs = urlencode({"status": wanted, "q": query, "page": target})
                    nav.append(f'<a href="?{esc(qs)}">{label}</a>')
            parts.append(
                f'<nav id="pager" class="pager">page {page} of {pages} ({len(names)} models) '
                + " ".join(nav)
                + "</nav>"
            )
        parts.append(f'<script src="{base}/static/status.js" defer></script></body></html>')
        return HTMLResponse("".join(parts))

    async def model_page(self, request: Request) -> Response:
        monitor = await self._started()
        name = request.path_params["name"]
        base = self._base(request)
        esc = html.escape
        if name not in monitor:
            return HTMLResponse(
                self._head("not found", base) + f"<body><p>No model {esc(name)}.</p>"
                f'<p><a href="{base}">All models</a></p></body></html>',
                status_code=404,
            )
        body = await self.model_body(
            name, request, window=request.query_params.get("window", "24h")
        )
        row = body["model"]
        parts = [
            self._head(f"{name} - healthkit status", base),
            f'<body data-base="{esc(base)}" data-model="{esc(name)}">',
            f'<header><p><a href="{base}">\u2190 All models</a></p><h1>{esc(name)}</h1>',
            f'<p id="model-status">{self._badge(row["status"])} since '
            f'<span id="model-since">{esc(row["since"] or "-")}</span>; ',
            f"strategy {esc(row['strategy'] or '-')}; last check "
            f"{esc(row['checked_at'] or '-')}"
            + ("" if row["latency_ms"] is None else f" ({row['latency_ms']} ms)")
            + "</p>",
            f'<p class="note">{self._details_note()}</p></header>',
        ]
        if self.details:
            parts.append(
                '<dl class="details"><dt>Last reason</dt>'
                f"<dd>{esc(row.get('detail') or '-')}</dd><dt>Last error</dt>"
                f"<dd>{esc(row.get('error') or '-')}</dd><dt>Endpoint</dt>"
                f"<dd>{esc(row.get('endpoint') or '-')}</dd></dl>"
            )
        if body["history"] and "uptime" in body:
            parts.append(
                '<table class="figures"><caption>History</caption><tr><th>window</th>'
                "<th>uptime</th><th>checks</th><th>p50</th><th>p95</th><th>p99</th></tr>"
            )
            for label, up in body["uptime"].items():
                lat = body["latency_ms"][label]
                parts.append(
                    f"<tr><td>{label}</td><td>{'-' if up is None else f'{up:.2f} %'}</td>"
                    f"<td>{lat['checks']}</td><td>{lat['p50']} ms</td><td>{lat['p95']} ms</td>"
                    f"<td>{lat['p99']} ms</td></tr>"
                )
            parts.append("</table>")
            links = " \u00b7 ".join(
                f"<b>{label}</b>"
                if label == body.get("window")
                else f'<a href="?{urlencode({"window": label})}">{label}</a>'
                for label in MODEL_WINDOWS
            )
            parts.append(f'<p class="windows">Latency chart: {links}</p>')
            parts.append(_chart(body.get("minutes", []), body.get("window", "24h")))
        else:
            parts.append(
                '<p class="note">No history store: the timeline holds the transitions kept'
                " in memory since the server started.</p>"
            )
        parts.append(
            '<h2>Transitions</h2><table class="timeline" id="timeline"><thead><tr>'
            "<th>at</th><th>from</th><th>to</th>"
            + ("<th>reason</th>" if self.details else "")
            + "</tr></thead><tbody>"
        )
        for t in body["transitions"]:
            parts.append(
                f"<tr><td>{esc(t['at'] or '-')}</td><td>{self._badge(t['old'])}</td>"
                f"<td>{self._badge(t['new'])}</td>"
                + (f"<td>{esc(t.get('detail') or '')}</td>" if self.details else "")
                + "</tr>"
            )
        parts.append(
            f'</tbody></table><script src="{base}/static/status.js" defer></script></body></html>'
        )
        return HTMLResponse("".join(parts))

    async def asset(self, request: Request) -> Response:
        name = request.path_params["asset"]
        if name not in _ASSETS:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(
            self._asset(name),
            media_type=_ASSETS[name],
            headers={"cache-control": "no-cache"},
        )

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

    # -- Server-Sent Events -------------------------------------------------------------

    def _on_transition(self, transition: Transition) -> None:
        # Runs in the monitor's listener call: build the event once, append to each
        # client's queue; never waits for any client.
        if not self.clients:
            return
        try:
            row = self._redacted(self.row(transition.model))
        except KeyError:  # removed by a reload meanwhile
            return
        event = _sse(
            "transition",
            {
                "model": row,
                "old": transition.old.value,
                "new": transition.new.value,
                "at": _iso(transition.at),
            },
        )
        for client in list(self.clients):
            client.offer(event)
            if client.dropped and client in self.clients:
                self.clients.discard(client)
                self.dropped += 1
                log.info("status page: dropped a slow event-stream client")

    async def _summaries(self) -> None:
        last: dict[str, Any] | None = None
        while self.clients:
            await asyncio.sleep(SUMMARY_PERIOD)
            summary = self.summary()
            if summary != last:
                last = summary
                for client in list(self.clients):
                    client.offer(_sse("summary", summary))

    def _listen(self) -> None:
        if not self._listening:
            self.monitor.add_listener(self._on_transition)
            self._listening = True
        if self._summary_task is None or self._summary_task.done():
            self._summary_task = asyncio.get_running_loop().create_task(
                self._summaries(), name="healthkit status page summaries"
            )

    async def events(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /status/events``: a raw ASGI endpoint, so a slow client is cut, not awaited."""
        await self._started()
        if scope.get("method") == "HEAD":  # the headers only: a stream has no end to wait for
            response = Response(media_type="text/event-stream")
            await response(scope, receive, send)
            return
        if len(self.clients) >= self.max_clients:
            response = JSONResponse({"error": "too many status page clients"}, status_code=503)
            await response(scope, receive, send)
            return
        client = _Client(self.queue_size)
        self.clients.add(client)
        self._listen()

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    client.close()
                    return

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-cache"),
                        (b"x-accel-buffering", b"no"),
                    ],
                }
            )
            client.offer("retry: 1000\n" + _sse("summary", self.summary()))
            while True:
                try:
                    await asyncio.wait_for(client.wake.wait(), HEARTBEAT)
                except asyncio.TimeoutError:
                    client.queue.append(": keep-alive\n\n")
                client.wake.clear()
                if client.closed:
                    break
                chunk = "".join(client.queue)
                client.queue.clear()
                try:
                    await asyncio.wait_for(
                        send(
                            {
                                "type": "http.response.body",
                                "body": chunk.encode(),
                                "more_body": True,
                            }
                        ),
                        SEND_TIMEOUT,
                    )
                except (asyncio.TimeoutError, OSError):
                    client.close()
                    return
            body = _sse("dropped", {"reason": "too slow"}).encode() if client.dropped else b""
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(
                    send({"type": "http.response.body", "body": body, "more_body": False}),
                    SEND_TIMEOUT,
                )
        finally:
            self.clients.discard(client)
            watcher.cancel()

    def close_streams(self) -> None:
        """End every event stream (a server shutting down waits for open responses)."""
        for client in list(self.clients):
            client.close()

    async def aclose(self) -> None:
        self.close_streams()
        if self._listening:
            self.monitor.remove_listener(self._on_transition)
            self._listening = False
        if self._summary_task is not None:
            self._summary_task.cancel()

    def routes(self, wrap: Callable[[Any], Any]) -> list[BaseRoute]:
        page = self

        class _Events:
            async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
                await page.events(scope, receive, send)

        def get(path: str, endpoint: Any) -> Route:
            return Route(path, wrap(endpoint), methods=["GET"])

        return [
            get("/status", self.page),
            get("/status/api/models", self.models_json),
            get("/status/api/models/{name:path}", self.model_json),
            get("/status/models/{name:path}", self.model_page),
            get("/status/static/{asset}", self.asset),
            Route("/status/events", _Events(), methods=["GET"]),
        ]


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


def _chart(minutes: list[dict[str, Any]], window: str) -> str:
    """Check latency over ``window`` as inline SVG (mean and max per point; no script)."""
    if not minutes:
        return f'<p class="note">No checks stored in the last {window}.</p>'
    width, height = 720.0, 140.0
    top = max(m["max_ms"] for m in minutes) or 1.0
    first = dt.datetime.fromisoformat(minutes[0]["start"]).timestamp()
    span = max(60.0, dt.datetime.fromisoformat(minutes[-1]["start"]).timestamp() - first)

    def points(key: str) -> str:
        return " ".join(
            f"{(dt.datetime.fromisoformat(m['start']).timestamp() - first) / span * width:.1f},"
            f"{height - m[key] / top * height:.1f}"
            for m in minutes
        )

    failed = sum(m["failures"] for m in minutes)
    return (
        f'<figure class="chart"><svg viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="check latency over the last {window}, up to {top} ms">'
        f'<polyline class="max" fill="none" points="{points("max_ms")}"/>'
        f'<polyline class="mean" fill="none" points="{points("mean_ms")}"/>'
        # One minute is one point, which a polyline does not draw.
        + (
            "".join(
                f'<circle class="mean" r="3" cx="{p.split(",")[0]}" cy="{p.split(",")[1]}"/>'
                for p in points("mean_ms").split()
            )
            if len(minutes) < 3
            else ""
        )
        + "</svg>"
        f"<figcaption>Latency, last {window} ({minutes[0]['minutes']} min per point): "
        "mean (solid) and max (dashed), "
        f"0 to {top} ms; {sum(m['checks'] for m in minutes)} checks, {failed} failed."
        "</figcaption></figure>"
    )
