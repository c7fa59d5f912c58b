"""The Starlette routes behind :mod:`healthkit.asgi`.

Every answer comes from the monitor's memory; a result older than
``cache_ttl`` is revalidated in the background (stale-while-revalidate), never
while the request waits. Two kinds of model readiness request wait instead, for
one on-demand check bounded by its deadline that every concurrent request
shares: one for a model that has no result yet (its first probe has not
finished), and one for a version reported upstream whose cached result is
missing or older than ``max_stale``. Server readiness (``/readyz``) never
waits: a model without a fresh result counts as not ready. Whatever goes wrong
inside a handler becomes a 503, never a 500: a readiness endpoint must not
claim the health server itself is broken because the upstream is.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, Router

from .._healthkit import HealthKit
from .._metrics import CONTENT_TYPE, MonitorMetrics
from .._monitor import Monitor
from .._operations import Operations
from .._redact import Redactor
from .._status import Status, worst_status
from .._watchdog import DEFAULT_PROGRESS_PERIODS, DEFAULT_STALL_LIMIT, Liveness
from ._fast import HealthApp, failed
from ._options import ShowDetails
from ._status_api import status_body
from ._status_page import StatusPage

__all__ = ["create_app", "create_router"]

#: Transitions per model shown by ``/health`` with details.
_HISTORY_SHOWN = 5

Endpoint = Callable[[Request], Awaitable[Response]]


def _json(body: Any, ready: bool) -> JSONResponse:
    return JSONResponse(body, status_code=200 if ready else 503)


def _never_500(handler: Endpoint) -> Endpoint:
    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception as exc:
            return failed(exc, request.url.path)

    return wrapped


class _Handlers:
    def __init__(
        self, monitor: Monitor, show_details: ShowDetails, liveness: Liveness | None = None
    ) -> None:
        if show_details not in ("never", "always"):
            raise ValueError(f"show_details must be 'never' or 'always', got {show_details!r}")
        self.monitor = monitor
        self.liveness = liveness if liveness is not None else Liveness(monitor)
        self.show_details = show_details
        self.metrics = MonitorMetrics(monitor)

    def redactor(self) -> Redactor:
        # The kit's own, built once per config (a reload brings a new one).
        return self.monitor.kit.redactor

    async def _started(self) -> Monitor:
        # Idempotent; covers a router mounted in a host whose lifespan never starts us.
        await self.monitor.start()
        await self.liveness.start()
        return self.monitor

    async def model_ready(self, name: str, version: str | None) -> bool | Response:
        """Readiness of one model from memory; a 404 response when it is not known.

        Once the model has a result this never waits for the upstream (a stale
        result is revalidated in the background); without one yet (or, for a
        version other than the configured one, without a cached result younger
        than ``max_stale``), every waiting request shares one check bounded by its
        deadline.
        """
        monitor = await self._started()
        if name not in monitor:
            return JSONResponse({"error": f"model {name} not found"}, status_code=404)
        if not monitor.has_version(name, version):
            # Neither configured nor reported upstream: a client must not choose targets.
            return JSONResponse(
                {"error": f"model {name} version {version} not found"}, status_code=404
            )
        return await monitor.aready(name, version=version)

    # -- endpoints ----------------------------------------------------------------------

    async def livez(self, request: Request) -> Response:
        # The checker's own liveness: running, loop not stalled, checks completing.
        if not self.monitor.closed:
            await self._started()
        report = self.liveness.check(details=self.show_details == "always")
        return _json(report.to_dict(), report.live)

    async def readyz(self, request: Request) -> Response:
        # From memory (a model without a result yet is not ready); results older
        # than max_stale do not count as ready.
        ready = (await self._started()).server_ready()
        return _json({"ready": ready}, ready)

    async def v2_model_ready(self, request: Request) -> Response:
        name = request.path_params["name"]
        version = request.path_params.get("version")
        ready = await self.model_ready(name, version)
        if isinstance(ready, Response):
            return ready
        return _json({"name": name, "ready": ready}, ready)

    async def v1_model(self, request: Request) -> Response:
        name = request.path_params["name"]
        ready = await self.model_ready(name, None)
        if isinstance(ready, Response):
            return ready
        return _json({"name": name, "ready": ready}, ready)

    async def health(self, request: Request) -> Response:
        monitor = await self._started()
        names = monitor.models
        ready = monitor.server_ready()
        status = worst_status(monitor.status(n) for n in names) if names else Status.HEALTHY
        live = self.liveness.check(details=False).live  # the same answer as /livez
        if not live:
            status = Status.UNHEALTHY
        body: dict[str, Any] = {"status": status.value, "live": live, "ready": ready}
        if self.show_details == "always":
            redact = self.redactor()
            models: dict[str, Any] = {}
            for name in names:
                last = monitor.last_result(name)
                models[name] = {
                    "status": monitor.status(name).value,
                    "ready": monitor.is_ready(name),
                    "last": None if last is None else last.to_dict(),
                    "transitions": [t.to_dict() for t in monitor.history(name)[-_HISTORY_SHOWN:]],
                }
            body["models"] = redact.data(models)
            body["resolver"] = monitor.kit.resolver.stats().to_dict()
        return _json(body, ready)

    async def status_api(self, request: Request) -> Response:
        # Always 200: a report of every model for another healthkit (docs/federation.md),
        # not a readiness answer.
        monitor = await self._started()
        details = self.show_details == "always"
        redact = self.redactor() if details else None
        return JSONResponse(status_body(monitor, details=details, redact=redact))

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(self.metrics.render(), headers={"content-type": CONTENT_TYPE})

    def routes(self) -> list[BaseRoute]:
        def get(path: str, endpoint: Endpoint) -> Route:
            return Route(path, _never_500(endpoint), methods=["GET"])

        return [
            get("/livez", self.livez),
            get("/readyz", self.readyz),
            get("/v2/health/live", self.livez),
            get("/v2/health/ready", self.readyz),
            get("/v2/models/{name}/ready", self.v2_model_ready),
            get("/v2/models/{name}/versions/{version}/ready", self.v2_model_ready),
            get("/v1/models/{name}", self.v1_model),
            get("/health", self.health),
            get("/metrics", self.metrics_endpoint),
            get("/v1/status", self.status_api),
        ]


def create_app(
    source: Monitor | HealthKit,
    *,
    show_details: ShowDetails = "never",
    max_in_flight: int = 64,
    manage_monitor: bool = True,
    stall_limit: float | None = DEFAULT_STALL_LIMIT,
    progress_periods: float | None = DEFAULT_PROGRESS_PERIODS,
    status_page: bool = True,
) -> Starlette:
    monitor = (
        source if isinstance(source, Monitor) else Monitor(source, max_in_flight=max_in_flight)
    )
    liveness = Liveness(monitor, stall_limit=stall_limit, progress_periods=progress_periods)
    handlers = _Handlers(monitor, show_details, liveness)
    page = _status_page(handlers) if status_page else None
    operations = Operations(monitor)
    handlers.metrics.operations = operations

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_monitor:
            # [history] and [[notifiers]] of the config: off the check path, never fatal;
            # listening before the first probe, so its transitions are kept too.
            await operations.start()
            app.state.history = operations.history
            await monitor.start()
        # The watchdog thread lives exactly as long as the app serves.
        await liveness.start()
        try:
            yield
        finally:
            await liveness.aclose()
            if page is not None:
                await page.aclose()
            if manage_monitor:
                await operations.aclose()
                await monitor.aclose()

    routes = handlers.routes() + ([] if page is None else page.routes(_never_500))
    # Model readiness is answered ahead of Starlette's middleware and router, the same
    # answers at less cost per request (docs/performance.md); every other route as before.
    app = HealthApp(routes=routes, lifespan=lifespan, model_ready=handlers.model_ready)
    app.state.monitor = monitor
    app.state.status_page = page
    app.state.liveness = liveness
    app.state.operations = operations
    return app


def _status_page(handlers: _Handlers) -> StatusPage:
    # The page shares the handlers' monitor, details rule and redactor (docs/status-page.md).
    return StatusPage(
        handlers.monitor,
        details=handlers.show_details == "always",
        redactor=handlers.redactor,
        started=handlers._started,
    )


def create_router(
    monitor: Monitor, *, show_details: ShowDetails = "never", status_page: bool = True
) -> Router:
    handlers = _Handlers(monitor, show_details)
    page = _status_page(handlers) if status_page else None
    return Router(routes=handlers.routes() + ([] if page is None else page.routes(_never_500)))
