"""``healthkit serve CONFIG``: the health app over uvicorn, probing in the background."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gc
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

import click

from .._config import load_config
from .._errors import ConfigError
from .._guard import close_loop
from .._healthkit import HealthKit
from .._monitor import Monitor
from .._registry import StrategyRegistry
from .._watchdog import DEFAULT_PROGRESS_PERIODS, DEFAULT_STALL_LIMIT
from ._output import EXIT_ERROR, MonitoringCommand, fail, load_or_exit

__all__ = ["serve"]

log = logging.getLogger("healthkit.serve")


class _Reloader:
    """SIGHUP: load CONFIG again and switch the monitor to it, changing only what changed.

    A config that does not load leaves the running one in place; every issue is
    logged with its path. Reloads run one at a time; a SIGHUP during one runs
    another after it (the file may have changed again).
    """

    def __init__(self, path: str, registry: StrategyRegistry, monitor: Monitor) -> None:
        self.path = path
        self.registry = registry
        self.monitor = monitor
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def request(self) -> None:
        """Called in the loop by the SIGHUP handler."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="healthkit config reload"
        )

    async def _run(self) -> None:
        while True:
            self._again = False
            await self.reload()
            if not self._again:
                return

    async def reload(self) -> None:
        log.info("SIGHUP: reloading %s", self.path)
        try:
            config = load_config(self.path, registry=self.registry)
        except ConfigError as exc:
            source = exc.source or self.path
            log.error(
                "reload of %s failed, the running config stays in place (%d error%s):",
                source,
                len(exc.issues),
                "" if len(exc.issues) == 1 else "s",
            )
            for issue in exc.issues:
                log.error("  %s", issue)
            return
        except Exception as exc:  # never let a reload take the server down
            log.error("reload of %s failed, the running config stays in place: %s", self.path, exc)
            return
        try:
            plan = await self.monitor.areload(config)
        except Exception as exc:
            log.error("reload of %s failed, the running config stays in place: %s", self.path, exc)
            return
        parts = [
            f"{label}: {', '.join(names)}" if names else f"{label}: none"
            for label, names in (
                ("added", plan.added),
                ("changed", plan.changed),
                ("removed", plan.removed),
            )
        ]
        log.info(
            "reloaded %s: %s; %d unchanged; %d instance(s) created, %d closed",
            self.path,
            "; ".join(parts),
            len(plan.unchanged),
            plan.instances_created,
            plan.instances_closed,
        )


@click.command(cls=MonitoringCommand)
@click.argument("config", metavar="CONFIG")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port, printed at startup).",
)
@click.option(
    "--show-details",
    type=click.Choice(["never", "always"]),
    default="never",
    show_default=True,
    help="Whether /health lists per-model status, last result and transitions.",
)
@click.option(
    "--max-in-flight",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Upstream checks allowed at once, across all models.",
)
@click.option(
    "--stall-limit",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_STALL_LIMIT,
    show_default=True,
    help="Seconds the event loop may be blocked before /livez turns 503.",
)
@click.option(
    "--progress-periods",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_PROGRESS_PERIODS,
    show_default=True,
    help="/livez turns 503 when probes are due and no check completed for this many"
    " times (the shortest period + its deadline).",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
@click.option(
    "--status-page/--no-status-page",
    default=True,
    show_default=True,
    help="Serve the read-only status page under /status (docs/status-page.md).",
)
def serve(
    config: str,
    host: str,
    port: int,
    show_details: str,
    max_in_flight: int,
    stall_limit: float,
    progress_periods: float,
    log_level: str,
    status_page: bool,
) -> None:
    """Serve health, readiness and metrics for every model in CONFIG.

    Routes: /livez, /readyz, /v2/health/live, /v2/health/ready,
    /v2/models/{name}/ready, /v1/models/{name}, /health and /metrics, and the
    status page under /status (--no-status-page leaves it out). Readiness
    comes from background probes (each model's period, thresholds and timeout),
    so a burst of requests costs the upstream nothing.

    SIGTERM or Ctrl-C: graceful shutdown, exit 0. SIGHUP: reload CONFIG; only
    models whose config changed are touched, and a config with errors is logged
    and ignored (the running one stays). Logs go to stderr, the banner to stdout.
    """
    try:
        import uvicorn

        from ..asgi import create_app
    except ImportError as exc:
        raise fail(
            f"healthkit serve needs the serve extra: pip install 'model-healthkit[serve]' ({exc})"
        ) from None
    registry = StrategyRegistry()
    kit = HealthKit(load_or_exit(config, registry), registry=registry)
    app = create_app(
        kit,
        show_details="always" if show_details == "always" else "never",
        max_in_flight=max_in_flight,
        stall_limit=stall_limit,
        progress_periods=progress_periods,
        status_page=status_page,
    )
    reloader = _Reloader(config, registry, app.state.monitor)

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn re-raises SIGTERM after its graceful shutdown, so the process
            # dies of it (exit 143) although it shut down cleanly: handle it here,
            # and SIGHUP (reload) too, whose default action would kill the server.
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handlers: dict[int, Any] = {
                signal.SIGINT: self.handle_exit,
                signal.SIGTERM: self.handle_exit,
            }
            hangup = getattr(signal, "SIGHUP", None)  # POSIX only
            if hangup is not None:
                handlers[hangup] = self._hangup
            original = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

        def _hangup(self, sig: int, frame: object) -> None:
            # A signal handler runs between two bytecodes of the main thread, which is
            # the loop's: hand the reload to the loop rather than run it here.
            loop = self._loop
            if loop is None or not self.started or self.should_exit:
                log.warning("SIGHUP ignored: the server is not serving (starting or stopping)")
                return
            loop.call_soon_threadsafe(reloader.request)

        _loop: asyncio.AbstractEventLoop | None = None

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # uvicorn waits for open responses, and a status page's event stream
            # never ends by itself: end them first (docs/status-page.md).
            page = getattr(app.state, "status_page", None)
            if page is not None:
                page.close_streams()
            await super().shutdown(sockets=sockets)

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            self._loop = asyncio.get_running_loop()
            await super().startup(sockets=sockets)
            if self.started:
                # The config, the registry and every model's state live as long as the
                # server: frozen, the collector's full passes skip them (at 100,000 models
                # each pass held the event loop ~0.3 s and delayed probes; docs/performance.md).
                gc.freeze()
                # The bound port, for --port 0 (uvicorn logs the one asked for).
                for server in self.servers:
                    for sock in server.sockets:
                        bound_host, bound_port = sock.getsockname()[:2]
                        click.echo(
                            f"healthkit: serving {len(kit.models)} models"
                            f" on http://{bound_host}:{bound_port}"
                        )

    # healthkit's own records (transitions, failing listeners) go where uvicorn's do,
    # and every log, uvicorn's access log included, goes to stderr: stdout has the banner.
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    for handler in log_config["handlers"].values():
        if handler.get("stream") == "ext://sys.stdout":
            handler["stream"] = "ext://sys.stderr"
    log_config["loggers"]["healthkit"] = {
        "handlers": ["default"],
        "level": log_level.upper(),
        "propagate": False,
    }
    server = Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            log_config=log_config,
            lifespan="on",
            ws="none",
            access_log=log_level == "debug",
        )
    )
    # SIGINT and SIGTERM end it after a graceful shutdown. Not server.run(): its
    # asyncio.run waits for every task left at the end, and a plugin check that
    # swallows its cancellation would keep the process alive until SIGKILL.
    factory = server.config.get_loop_factory()
    loop = factory() if factory is not None else asyncio.new_event_loop()
    try:
        loop.run_until_complete(server.serve())
    finally:
        close_loop(loop)
    if not server.started:
        # Startup failed (the port is taken, or a strategy could not be created); uvicorn said why.
        raise click.exceptions.Exit(EXIT_ERROR)
