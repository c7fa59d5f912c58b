"""Where the servicer reads statuses: the source protocol, and a board set by hand."""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

from .._healthkit import HealthReport
from .._result import CheckResult
from .._status import Status

__all__ = [
    "HEALTH_SERVICE",
    "BoardChange",
    "ServingStatus",
    "StatusBoard",
    "StatusSource",
    "serving_status",
]

log = logging.getLogger("healthkit.grpc_health")

#: The gRPC service this servicer implements.
HEALTH_SERVICE = "grpc.health.v1.Health"


class ServingStatus(enum.IntEnum):
    """``grpc.health.v1.HealthCheckResponse.ServingStatus``: numbers fixed by the protocol.

    Spelled here so that statuses are computed without importing grpcio.
    """

    UNKNOWN = 0
    SERVING = 1
    NOT_SERVING = 2
    SERVICE_UNKNOWN = 3


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
        return int(ServingStatus.SERVING)
    if status is Status.UNHEALTHY:
        return int(ServingStatus.NOT_SERVING)
    return int(ServingStatus.UNKNOWN)


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
