"""``healthkit serve CONFIG``: the health app over uvicorn, probing in the background."""

from __future__ import annotations

import copy
import socket

import click

from .._healthkit import HealthKit
from .._registry import StrategyRegistry
from ._output import EXIT_ERROR, MonitoringCommand, fail, load_or_exit

__all__ = ["serve"]


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
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
def serve(
    config: str, host: str, port: int, show_details: str, max_in_flight: int, log_level: str
) -> None:
    """Serve health, readiness and metrics for every model in CONFIG.

    Routes: /livez, /readyz, /v2/health/live, /v2/health/ready,
    /v2/models/{name}/ready, /v1/models/{name}, /health and /metrics. Readiness
    comes from background probes (each model's period, thresholds and timeout),
    so a burst of requests costs the upstream nothing.
    """
    try:
        import uvicorn

        from ..asgi import create_app
    except ImportError as exc:
        raise fail(
            f"healthkit serve needs the serve extra: pip install 'healthkit[serve]' ({exc})"
        ) from None
    registry = StrategyRegistry()
    kit = HealthKit(load_or_exit(config, registry), registry=registry)
    app = create_app(
        kit,
        show_details="always" if show_details == "always" else "never",
        max_in_flight=max_in_flight,
    )

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                # The bound port, for --port 0 (uvicorn logs the one asked for).
                for server in self.servers:
                    for sock in server.sockets:
                        bound_host, bound_port = sock.getsockname()[:2]
                        click.echo(
                            f"healthkit: serving {len(kit.models)} models"
                            f" on http://{bound_host}:{bound_port}"
                        )

    # healthkit's own records (transitions, failing listeners) go where uvicorn's do.
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
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
    try:
        server.run()
    except KeyboardInterrupt:
        # uvicorn shut down gracefully, then re-raised the Ctrl-C it captured.
        return
    if not server.started:
        # Startup failed (the port is taken, or a strategy could not be created); uvicorn said why.
        raise click.exceptions.Exit(EXIT_ERROR)
