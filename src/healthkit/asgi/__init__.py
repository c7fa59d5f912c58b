"""An ASGI health app over a :class:`~healthkit.Monitor`, mountable in any ASGI server.

Needs the ``serve`` extra (``pip install 'model-healthkit[serve]'``); importing this
module does not import Starlette, calling a factory does.

Routes (``GET``/``HEAD``): ``/livez``, ``/readyz``, ``/v2/health/live``,
``/v2/health/ready``, ``/v2/models/{name}/ready``,
``/v2/models/{name}/versions/{version}/ready``, ``/v1/models/{name}``,
``/health``, ``/metrics`` and ``/v1/status`` (every model in one versioned JSON body, for
another healthkit: ``docs/federation.md``); the status page under ``/status``. See
``docs/asgi.md`` and ``docs/status-page.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._options import ShowDetails

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.routing import Router

    from .._healthkit import HealthKit
    from .._monitor import Monitor

__all__ = ["ShowDetails", "create_app", "create_router"]


def create_app(
    source: Monitor | HealthKit,
    *,
    show_details: ShowDetails = "never",
    max_in_flight: int = 64,
    manage_monitor: bool = True,
    stall_limit: float | None = 5.0,
    progress_periods: float | None = 3.0,
    status_page: bool = True,
) -> Starlette:
    """A Starlette app answering health, readiness and metrics from ``source``'s monitor.

    ``source`` is a :class:`~healthkit.Monitor`, or a :class:`~healthkit.HealthKit`
    for which one is made (with ``max_in_flight``). With ``manage_monitor`` the
    app's lifespan starts the monitor and closes it (and its kit) at shutdown;
    mounted inside another app, whose lifespan does not reach sub-apps, the
    monitor starts on the first request and the host closes it.

    ``/livez`` is the checker's own liveness: 503 with a reason when the monitor
    is not running, when the event loop was blocked longer than ``stall_limit``
    seconds (a watchdog thread outside the loop notices it and logs the check
    that ran; ``None`` turns it off), or when probes are due and no check has
    completed for ``progress_periods`` x (the shortest period + its deadline)
    (``None`` turns that off). The lifespan starts and stops the watchdog thread.

    ``status_page`` serves the read-only status page under ``/status`` (HTML, its
    JSON and a Server-Sent Events stream; ``docs/status-page.md``); ``False`` leaves
    those routes out.

    Model readiness (``/v2/models/{name}/ready``, its ``versions`` form and
    ``/v1/models/{name}``) is answered ahead of Starlette's middleware stack and
    router, with the same answers; middleware added to the app sees it like every
    other request (``docs/asgi.md``).
    """
    from ._app import create_app as impl

    return impl(
        source,
        show_details=show_details,
        max_in_flight=max_in_flight,
        manage_monitor=manage_monitor,
        stall_limit=stall_limit,
        progress_periods=progress_periods,
        status_page=status_page,
    )


def create_router(
    monitor: Monitor, *, show_details: ShowDetails = "never", status_page: bool = True
) -> Router:
    """The same routes as a Starlette ``Router``, to mount or include in a host app.

    The monitor starts on the first request; the host closes it (``await monitor.aclose()``).
    """
    from ._app import create_router as impl

    return impl(monitor, show_details=show_details, status_page=status_page)
