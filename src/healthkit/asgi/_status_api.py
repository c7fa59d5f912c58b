"""``GET /v1/status``: every model's current status in one JSON answer, for machines.

The body another healthkit reads with ``strategy = "healthkit"`` (see
``docs/federation.md``). It is versioned (``"version": 1``; a field is only ever
added within a version), answered from the monitor's memory (never waits for
an upstream), and carries no secret: the per-model ``detail`` and ``error`` are
there only where ``/health`` shows details (``show_details = "always"``), and
then through the config's redactor like ``/health``'s.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from .._monitor import Monitor
from .._redact import Redactor
from .._status import Status, worst_status

__all__ = ["STATUS_API_VERSION", "status_body"]

#: The shape's version; a reader refuses a body of another one.
STATUS_API_VERSION = 1


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat()


def status_body(monitor: Monitor, *, details: bool, redact: Redactor | None) -> dict[str, Any]:
    """The ``/v1/status`` body of ``monitor`` now.

    ``age`` is measured here, on this server's clock, so a reader on another
    machine adds only its request's own time and needs no synchronized clock.
    """
    now = dt.datetime.now(dt.timezone.utc)
    names = monitor.models
    configured = monitor.kit.config.models
    models: dict[str, Any] = {}
    for name in names:
        last = monitor.last_result(name)
        mc = configured.get(name)
        entry: dict[str, Any] = {
            "status": monitor.status(name).value,
            "ready": monitor.is_ready(name),
            "version": None if mc is None else mc.version,
            "checked_at": None if last is None else _iso(last.checked_at),
            "age": None
            if last is None
            else max(0.0, round((now - last.checked_at).total_seconds(), 3)),
            "latency_ms": None if last is None else last.latency_ms,
        }
        if details:
            entry["detail"] = None if last is None else last.detail
            entry["error"] = (
                None
                if last is None or last.error is None
                else {"type": last.error.type, "message": last.error.message}
            )
        models[name] = entry
    if details and redact is not None:
        models = redact.data(models)
    status = worst_status(monitor.status(n) for n in names) if names else Status.HEALTHY
    return {
        "version": STATUS_API_VERSION,
        "now": _iso(now),
        "status": status.value,
        "ready": monitor.server_ready(),
        "models": models,
    }
