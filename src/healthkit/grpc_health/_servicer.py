"""The ``grpc.health.v1.Health`` servicer; grpcio is imported when one is created."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from .._status import worst_status
from .._watchdog import Liveness
from ._board import HEALTH_SERVICE, ServingStatus, StatusSource, serving_status

__all__ = ["GRPC_EXTRA_HINT", "HealthServicer"]

GRPC_EXTRA_HINT = "install the grpc extra: pip install 'model-healthkit[grpc]'"

#: Seconds between two looks at liveness for a ``Watch`` of the liveness service.
_LIVENESS_POLL = 1.0


def _grpc_modules() -> tuple[Any, Any]:
    """``(grpc, health_pb2)``, or an ImportError naming the extra that brings them."""
    try:
        import grpc
        from grpc_health.v1 import health_pb2
    except ImportError as exc:
        raise ImportError(
            f"healthkit.grpc_health.HealthServicer needs grpcio and "
            f"grpcio-health-checking ({exc.name or exc}): {GRPC_EXTRA_HINT}",
            name=exc.name,
        ) from exc
    return grpc, health_pb2


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
        self._grpc, self._pb = _grpc_modules()
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
        request = self._pb.HealthCheckRequest
        response = self._pb.HealthCheckResponse
        handlers = {
            "Check": self._grpc.unary_unary_rpc_method_handler(
                self.Check,
                request_deserializer=request.FromString,
                response_serializer=response.SerializeToString,
            ),
            "Watch": self._grpc.unary_stream_rpc_method_handler(
                self.Watch,
                request_deserializer=request.FromString,
                response_serializer=response.SerializeToString,
            ),
        }
        list_request = getattr(self._pb, "HealthListRequest", None)
        list_response = getattr(self._pb, "HealthListResponse", None)
        if list_request is not None and list_response is not None:
            handlers["List"] = self._grpc.unary_unary_rpc_method_handler(
                self.List,
                request_deserializer=list_request.FromString,
                response_serializer=list_response.SerializeToString,
            )
        server.add_generic_rpc_handlers(
            (self._grpc.method_handlers_generic_handler(HEALTH_SERVICE, handlers),)
        )

    # -- statuses ---------------------------------------------------------------------

    def status_of(self, service: str) -> int | None:
        """The serving status of ``service`` now, or ``None`` for an unknown one."""
        if self._liveness is not None and service == self._liveness_service:
            if self._shutting_down:
                return int(ServingStatus.NOT_SERVING)
            live = self._liveness.check(details=False).live
            return int(ServingStatus.SERVING if live else ServingStatus.NOT_SERVING)
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
            return int(ServingStatus.NOT_SERVING)
        return status

    # -- RPCs -------------------------------------------------------------------------

    async def Check(self, request: Any, context: Any) -> Any:
        if self._liveness is not None:
            await self._liveness.start()
        status = self.status_of(request.service)
        if status is None:
            unknown = f"unknown service {request.service!r}"
            await context.abort(self._grpc.StatusCode.NOT_FOUND, unknown)
        return self._pb.HealthCheckResponse(status=status)

    async def List(self, request: Any, context: Any) -> Any:
        statuses = {}
        extra = [self._liveness_service] if self._liveness is not None else []
        for service in ["", *self._source.models, *extra]:
            status = self.status_of(service)
            if status is not None:
                statuses[service] = self._pb.HealthCheckResponse(status=status)
        return self._pb.HealthListResponse(statuses=statuses)

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
                    status = int(ServingStatus.SERVICE_UNKNOWN)
                if status != last:
                    yield self._pb.HealthCheckResponse(status=status)
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
