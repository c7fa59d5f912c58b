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
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from .._monitor import Monitor
from .._redact import Redactor

# CHART_POINTS, _Client and _grouped are re-exported: tests import them from here.
from ._status_events import CLIENT_QUEUE, MAX_CLIENTS, _StatusEvents
from ._status_events import _Client as _Client
from ._status_html import _StatusHtml
from ._status_views import CHART_POINTS as CHART_POINTS
from ._status_views import _grouped as _grouped

if TYPE_CHECKING:
    from ..history import HistoryStore

__all__ = ["StatusPage"]


class StatusPage(_StatusHtml, _StatusEvents):
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
