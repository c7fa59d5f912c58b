"""Serve healthkit's statuses over the gRPC Health Checking Protocol (``grpc.health.v1``).

The other direction from the ``grpc`` strategy: a model server adds a
:class:`HealthServicer` to its own ``grpc.aio`` server, and Kubernetes ``grpc``
probes (or any ``grpc.health.v1`` client) ask it about one model (service name =
model name) or the whole server (service ``""``, the worst status of all models)::

    monitor = healthkit.Monitor(kit)
    servicer = HealthServicer(monitor)
    servicer.add_to_server(server)      # a grpc.aio.Server, before server.start()
    ...
    await servicer.enter_graceful_shutdown()  # ends every Watch stream
    await server.stop(grace=5)

The statuses come from a :class:`StatusSource`: a ``healthkit.Monitor`` is one;
:class:`StatusBoard` is one you set by hand or from ``HealthKit`` reports.
Needs the ``grpc`` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from typing import Any, Protocol, runtime_checkable

import attrs
import grpc
from grpc_health.v1 import health_pb2

from ._healthkit import HealthReport
from ._result import CheckResult
from ._status import Status, worst_status
from ._watchdog import Liveness, LivenessReport

__all__ = [
    "HEALTH_SERVICE",
    "BoardChange",
    "HealthServicer",
    "Liveness",
    "LivenessReport",
    "StatusBoard",
    "StatusSource",
    "serving_status",
]

log = logging.getLogger("healthkit.grpc_health")

#: The gRPC service this servicer implements.
HEALTH_SERVICE = "grpc.health.v1.Health"

#: Seconds between two looks at liveness for a ``Watch`` of the liveness service.
_LIVENESS_POLL = 1.0

_Serving = health_pb2.HealthCheckResponse


@runtime_checkable
class StatusSource(Protocol):
    """Where a :class:`HealthServicer` reads statuses: a ``healthkit.Monitor`` fits.

    ``add_listener(callback)`` must call ``callback(event)`` (with any event
    object) after a model's status may have changed; the servicer then reads
    :meth:`status` again. Calling it from another thread is fine.
    """

    @property
    def models(self) -> Collection[str]: ...

    def status(self, model: str) -> Status: ...

    def add_listener(self, listener: Callable[[Any], object]) -> None: ...


def serving_status(status: Status) -> int:
    """The ``grpc.health.v1`` serving status for a healthkit status.

    Healthy and degraded serve traffic (SERVING); unhealthy is NOT_SERVING;
    unknown stays UNKNOWN, which probes treat as a failure too.
    """
    if status.is_ok:
        return int(_Serving.SERVING)
    if status is Status.UNHEALTHY:
        return int(_Serving.NOT_SERVING)
    return int(_Serving.UNKNOWN)


@attrs.frozen(kw_only=True)
class BoardChange:
    """What a :class:`StatusBoard` tells its listeners: one model's status changed."""

    model: str
    old: Status | None
    new: Status | None


class StatusBoard:
    """A :class:`StatusSource` whose statuses are set by hand or from check results.

    Drive it from a ``HealthKit`` without a monitor::

        board.update(await kit.acheck_all())

    Listeners are called synchronously, once per model whose status changed.
    """

    def __init__(self, statuses: Mapping[str, Status] | None = None) -> None:
        self._statuses: dict[str, Status] = {m: Status(s) for m, s in (statuses or {}).items()}
        self._listeners: list[Callable[[Any], object]] = []
        self._lock = threading.Lock()

    @property
    def models(self) -> list[str]:
        with self._lock:
            return list(self._statuses)

    def status(self, model: str) -> Status:
        """The model's status; ``KeyError`` if the board does not know it."""
        with self._lock:
            return self._statuses[model]

    def set(self, model: str, status: Status | str) -> None:
        """Set one model's status (adding the model if new)."""
        new = Status(status)
        with self._lock:
            old = self._statuses.get(model)
            self._statuses[model] = new
        if old is not new:
            self._notify(BoardChange(model=model, old=old, new=new))

    def remove(self, model: str) -> None:
        """Forget a model; asking about it afterwards gets NOT_FOUND."""
        with self._lock:
            old = self._statuses.pop(model, None)
        if old is not None:
            self._notify(BoardChange(model=model, old=old, new=None))

    def update(self, results: HealthReport | Mapping[str, CheckResult | Status]) -> None:
        """Set the status of every model in a report or a mapping of results."""
        items = results.results if isinstance(results, HealthReport) else results
        for model, result in items.items():
            self.set(model, result.status if isinstance(result, CheckResult) else result)

    def add_listener(self, listener: Callable[[Any], object]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Any], object]) -> None:
        self._listeners.remove(listener)

    def _notify(self, change: BoardChange) -> None:
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:  # one bad listener must not starve the others
                log.exception("status board listener %r failed", listener)

    def __repr__(self) -> str:
        return f"<StatusBoard models={len(self._statuses)}>"


class HealthServicer:
    """A ``grpc.health.v1.Health`` servicer for ``grpc.aio`` servers, fed by a status source.

    * ``Check(service)``: the model's serving status; ``""`` is the worst status of
      every model (SERVING when there are none); an unknown model is NOT_FOUND.
    * ``Watch(service)``: the current status at once, then every change. An unknown
      model gets SERVICE_UNKNOWN and the stream stays open until it appears.
    * ``List``: every model and ``""`` (when grpcio-health-checking knows the call).
    * With ``liveness`` (a :class:`Liveness` over the monitor), service
      ``liveness_service`` (``"liveness"``) is the checker's own liveness: SERVING
      while it can do its job, NOT_SERVING when the monitor is not running, the
      event loop stalled or no check completes (see ``docs/reliability.md``). It
      takes precedence over a model of the same name. The first call starts the
      liveness watchdog; it stops when the monitor closes.

    :meth:`enter_graceful_shutdown` turns every service NOT_SERVING, tells the
    watchers and ends their streams, so ``server.stop(grace)`` is not held up by them.
    """

    def __init__(
        self,
        source: StatusSource,
        *,
        liveness: Liveness | None = None,
        liveness_service: str = "liveness",
    ) -> None:
        self._source = source
        #: The checker's own liveness, answered as service ``liveness_service``.
        self._liveness = liveness
        self._liveness_service = liveness_service
        self._shutting_down = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeups: set[asyncio.Event] = set()
        source.add_listener(self._on_change)

    @property
    def source(self) -> StatusSource:
        return self._source

    @property
    def watchers(self) -> int:
        """Open ``Watch`` streams."""
        return len(self._wakeups)

    # -- registration ---------------------------------------------------------------

    def add_to_server(self, server: Any) -> None:
        """Serve ``grpc.health.v1.Health`` on ``server`` (a ``grpc.aio.Server``)."""
        request = health_pb2.HealthCheckRequest
        response = health_pb2.HealthCheckResponse
        handlers = {
            "Check": grpc.unary_unary_rpc_method_handler(
                self.Check,
                request_deserializer=request.FromString,
                response_serializer=response.SerializeToString,
            ),
            "Watch": grpc.unary_stream_rpc_method_handler(
                self.Watch,
                request_deserializer=request.FromString,
                response_serializer=response.SerializeToString,
            ),
        }
        list_request = getattr(health_pb2, "HealthListRequest", None)
        list_response = getattr(health_pb2, "HealthListResponse", None)
        if list_request is not None and list_response is not None:
            handlers["List"] = grpc.unary_unary_rpc_method_handler(
                self.List,
                request_deserializer=list_request.FromString,
                response_serializer=list_response.SerializeToString,
            )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(HEALTH_SERVICE, handlers),)
        )

    # -- statuses ---------------------------------------------------------------------

    def status_of(self, service: str) -> int | None:
        """The serving status of ``service`` now, or ``None`` for an unknown one."""
        if self._liveness is not None and service == self._liveness_service:
            if self._shutting_down:
                return int(_Serving.NOT_SERVING)
            live = self._liveness.check(details=False).live
            return int(_Serving.SERVING if live else _Serving.NOT_SERVING)
        models = list(self._source.models)
        if service == "":
            statuses = []
            for model in models:
                try:
                    statuses.append(self._source.status(model))
                except KeyError:  # removed since ``models`` was read
                    continue
            status = serving_status(worst_status(statuses))
        elif service in models:
            try:
                status = serving_status(self._source.status(service))
            except KeyError:
                return None
        else:
            return None
        if self._shutting_down:
            return int(_Serving.NOT_SERVING)
        return status

    # -- RPCs -------------------------------------------------------------------------

    async def Check(self, request: Any, context: Any) -> Any:
        if self._liveness is not None:
            await self._liveness.start()
        status = self.status_of(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)

    async def List(self, request: Any, context: Any) -> Any:
        statuses = {}
        extra = [self._liveness_service] if self._liveness is not None else []
        for service in ["", *self._source.models, *extra]:
            status = self.status_of(service)
            if status is not None:
                statuses[service] = health_pb2.HealthCheckResponse(status=status)
        return health_pb2.HealthListResponse(statuses=statuses)

    async def Watch(self, request: Any, context: Any) -> AsyncIterator[Any]:
        self._loop = asyncio.get_running_loop()
        if self._liveness is not None:
            await self._liveness.start()
        wakeup = asyncio.Event()
        self._wakeups.add(wakeup)
        last: int | None = None
        try:
            while True:
                wakeup.clear()
                status = self.status_of(request.service)
                if status is None:
                    status = int(_Serving.SERVICE_UNKNOWN)
                if status != last:
                    yield health_pb2.HealthCheckResponse(status=status)
                    last = status
                if self._shutting_down:
                    return
                if request.service == self._liveness_service and self._liveness is not None:
                    # Liveness changes without an event (a stall, no progress): look again soon.
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(wakeup.wait(), _LIVENESS_POLL)
                else:
                    await wakeup.wait()
        finally:
            self._wakeups.discard(wakeup)

    # -- changes ----------------------------------------------------------------------

    def _on_change(self, _event: object = None) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # nobody watches yet
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake()
        else:
            # The source changed from another thread: wake the watchers in their own loop.
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody to wake
                loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        for wakeup in list(self._wakeups):
            wakeup.set()

    async def enter_graceful_shutdown(self) -> None:
        """Report NOT_SERVING for every service from now on, and end every ``Watch`` stream.

        Call it before ``server.stop(grace)``: open streams would otherwise
        keep the server waiting for the whole grace period. Idempotent.
        """
        self._shutting_down = True
        self._wake()
        # Let the watchers send NOT_SERVING and return before the caller stops the server.
        for _ in range(3):
            if not self._wakeups:
                break
            await asyncio.sleep(0)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def __repr__(self) -> str:
        return f"<HealthServicer source={self._source!r} watchers={self.watchers}>"
