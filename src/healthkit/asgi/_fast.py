"""Model readiness answered ahead of Starlette's middleware stack and router.

The model readiness routes are what load balancers and KServe clients poll. Under
load, what Starlette does around one answer (three middleware layers, matching the
routes in order, a ``Request``, a ``JSONResponse`` and its ``json.dumps``) costs more
than the answer itself, and ``healthkit serve`` answered ~0.85x the requests per
second of a bare Starlette app returning a constant (docs/performance.md).

:class:`HealthApp` answers those routes itself, with the status, headers and body the
Starlette route would send, and hands every other request to Starlette unchanged:
every other path (a trailing slash, an empty name, ...), every method but ``GET`` and
``HEAD``, and every request once the app has user middleware or its routes were
changed in front of the readiness routes (then the router decides, as before).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from .._errors import ClosedError

try:
    # The very function the router uses to find the path a route matches (mounted apps
    # have a root_path): the fast path must match exactly what the router would. It is
    # private to Starlette, so a release without it turns the fast path off, not serve.
    from starlette._utils import get_route_path
except ImportError:  # pragma: no cover - depends on the installed Starlette
    get_route_path = None  # type: ignore[assignment]

__all__ = ["READINESS_PATHS", "HealthApp", "ModelReady", "failed"]

log = logging.getLogger("healthkit.asgi")

#: The routes answered ahead of Starlette; the second is also how ``version`` is given.
READINESS_PATHS = (
    "/v2/models/{name}/ready",
    "/v2/models/{name}/versions/{version}/ready",
    "/v1/models/{name}",
)

#: ``(name, version)`` to readiness, or the response to send instead (404).
ModelReady = Callable[[str, "str | None"], Awaitable["bool | Response"]]

# What json.dumps(..., ensure_ascii=False) calls for a str: the same escaping.
_encode_str: Callable[[str], str] = json.encoder.encode_basestring
_JSON = (b"content-type", b"application/json")
_READY_TAIL = {True: b',"ready":true}', False: b',"ready":false}'}


def failed(exc: Exception, path: str) -> Response:
    """The 503 that replaces an exception of a health endpoint: never a 500."""
    if isinstance(exc, ClosedError):
        return JSONResponse({"error": "health monitor is shut down"}, status_code=503)
    log.error("health endpoint %s failed", path, exc_info=exc)
    return JSONResponse({"error": f"health check failed: {type(exc).__name__}"}, status_code=503)


class HealthApp(Starlette):
    """Starlette, with the model readiness routes answered before its middleware stack."""

    def __init__(
        self, *, routes: Sequence[BaseRoute], model_ready: ModelReady, **kwargs: Any
    ) -> None:
        super().__init__(routes=routes, **kwargs)
        self._model_ready = model_ready
        ours = [
            (i, route)
            for i, route in enumerate(self.router.routes)
            if isinstance(route, Route) and route.path in READINESS_PATHS
        ]
        self._readiness = [route for _, route in ours]
        # Answering ahead of the router is exact only while no route ahead of ours changed.
        self._ahead = list(self.router.routes[: ours[-1][0] + 1]) if ours else []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and get_route_path is not None
            and not self.user_middleware
            and getattr(self, "max_body_size", None) is None
            and (scope["method"] == "GET" or scope["method"] == "HEAD")
        ):
            path = get_route_path(scope)
            if (path.startswith("/v2/models/") or path.startswith("/v1/models/")) and (
                self.router.routes[: len(self._ahead)] == self._ahead
            ):
                for route in self._readiness:
                    match = route.path_regex.match(path)
                    if match is not None:
                        # The scope as the router leaves it, for any wrapper that reads it.
                        params = dict(scope.get("path_params", {}))
                        for key, value in match.groupdict().items():
                            params[key] = route.param_convertors[key].convert(value)
                        scope["app"] = self
                        if "router" not in scope:
                            scope["router"] = self.router
                        scope["route"] = route
                        scope["endpoint"] = route.endpoint
                        scope["path_params"] = params
                        await self._answer(params, scope, receive, send)
                        return
        await super().__call__(scope, receive, send)

    async def _answer(
        self, params: dict[str, Any], scope: Scope, receive: Receive, send: Send
    ) -> None:
        # What the readiness endpoints of _app.py answer through Starlette, byte for byte;
        # as there, an exception of the answer is a 503 and one of sending is not ours.
        name = params["name"]
        body = b""
        try:
            ready = await self._model_ready(name, params.get("version"))
            if isinstance(ready, Response):
                response: Response | None = ready
            elif ready is True or ready is False:
                response = None
                body = b'{"name":' + _encode_str(name).encode() + _READY_TAIL[ready]
            else:
                response = JSONResponse({"name": name, "ready": ready}, 200 if ready else 503)
        except Exception as exc:
            response = failed(exc, Request(scope).url.path)
        if response is not None:
            await response(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200 if ready else 503,
                "headers": [(b"content-length", str(len(body)).encode()), _JSON],
            }
        )
        await send({"type": "http.response.body", "body": body})
