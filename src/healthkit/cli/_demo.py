"""``healthkit demo``: a real server on loopback, per-model strategies, and the dedupe figure.

Everything runs in this process and is stopped before the command returns:
the built-in Open Inference Protocol server (and a gRPC one when the
``grpc`` extra is installed), the strategy instances and their clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import click

from .._config import load_config
from .._healthkit import HealthKit, HealthReport
from .._registry import StrategyRegistry
from ..testing._oip_http import ModelState, OipServer
from ._check import report_lines
from ._output import dedupe_plan, plan_lines

__all__ = ["DEMO_MODELS", "DEMO_TOKEN", "demo", "demo_config"]

#: The models the demo server serves, and how each one behaves.
DEMO_MODELS: Mapping[str, ModelState] = {
    "resnet": "ready",
    "bert": "ready",
    "whisper": "not_ready",
    "flaky-llm": "flaky",
    "llama": "ready",
    "ensemble": "ready",
}
#: Sent as a bearer token to show that header values stay secret: it is never printed.
DEMO_TOKEN = "demo-bearer-token-9f3c1e"
#: The model served by the gRPC demo server, when the ``grpc`` extra is installed.
GRPC_MODEL = "mnist-grpc"

GrpcDemo = Callable[[Mapping[str, bool]], contextlib.AbstractAsyncContextManager[str | None]]


def demo_config(base_url: str, grpc_target: str | None = None) -> dict[str, Any]:
    """The demo config, built in code as a user would write it in TOML."""
    auth = {"Authorization": f"Bearer {DEMO_TOKEN}"}
    default = {
        "strategy": "http",
        "base_url": base_url,
        "protocol": "v2",
        "timeout": 1.0,
        "headers": auth,
    }
    scheme, rest = base_url.split("://", 1)
    models: dict[str, Any] = {
        # No health_check: inherits the server-wide default.
        "resnet": {},
        # The same config spelled differently (scheme case, trailing slash, int timeout,
        # header-name case, key order): still equal after normalization, so still shared.
        "bert": {
            "health_check": {
                "headers": {"authorization": f"Bearer {DEMO_TOKEN}"},
                "timeout": 1,
                "protocol": "v2",
                "base_url": f"{scheme.upper()}://{rest}/",
                "strategy": "http",
            }
        },
        "whisper": {},
        "flaky-llm": {},
        # A per-model override: KServe v1 on the same server, inheriting the other keys.
        "llama": {"health_check": {"protocol": "v1"}},
        # Health check off for this one, as today's model servers do globally.
        "embedder": {"health_check": {"strategy": "noop"}},
        # Two of three must be healthy. Each child equals another model's config,
        # so the composite reuses those instances instead of creating its own.
        "ensemble": {
            "health_check": {
                "strategy": "composite",
                "mode": "quorum",
                "quorum": 2,
                "checks": [
                    {"strategy": "http", "base_url": base_url, "headers": auth},
                    {"strategy": "http", "base_url": base_url, "headers": auth, "protocol": "v1"},
                    {"strategy": "noop"},
                ],
            }
        },
    }
    if grpc_target is not None:
        models[GRPC_MODEL] = {
            "health_check": {"strategy": "grpc", "protocol": "v2", "target": grpc_target}
        }
    return {"defaults": {"health_check": default}, "models": models}


def _grpc_demo(registry: StrategyRegistry) -> GrpcDemo | None:
    """The gRPC demo server, if its module, the extra and the strategy are all there."""
    grpc = registry.strategies.get("grpc")
    if grpc is None or grpc.unavailable:
        return None
    try:
        module = importlib.import_module("healthkit.cli._demo_grpc")
    except ImportError:
        return None
    factory: GrpcDemo = module.grpc_demo
    return factory


@contextlib.asynccontextmanager
async def _no_grpc(_models: Mapping[str, bool]) -> AsyncIterator[str | None]:
    yield None


async def _run(echo: Callable[[str], None]) -> None:
    registry = StrategyRegistry()
    grpc_demo = _grpc_demo(registry) or _no_grpc
    with OipServer(DEMO_MODELS) as server:
        async with grpc_demo({GRPC_MODEL: True}) as grpc_target:
            states = ", ".join(f"{name}={state}" for name, state in DEMO_MODELS.items())
            echo(f"Open Inference Protocol server on {server.url}")
            echo(f"  models: {states}")
            if grpc_target is not None:
                echo(f"gRPC Open Inference Protocol server on {grpc_target}")
                echo(f"  models: {GRPC_MODEL}=ready")
            else:
                echo("gRPC model skipped (install 'model-healthkit[grpc]' to include one)")
            config = load_config(demo_config(server.url, grpc_target), registry=registry)
            plan = dedupe_plan(config)
            echo("")
            echo("Each model picks its strategy; equal configs share one instance:")
            for line in plan_lines(plan):
                echo(f"  {line}".rstrip())
            async with HealthKit(config, registry=registry) as kit:
                rounds: list[HealthReport] = []
                for number in (1, 2):
                    report = await kit.acheck_all()
                    rounds.append(report)
                    echo("")
                    echo(f"Round {number}:")
                    for line in report_lines(report):
                        echo(f"  {line}".rstrip())
                stats = kit.stats()
            echo("")
            first, second = rounds
            for name, result in second.results.items():
                before = first.results[name].status
                if before is not result.status:
                    echo(f"Changed between rounds: {name} {before.value} -> {result.status.value}")
            echo(f"{stats.models} models -> {stats.instances} strategy instances")
            echo(
                f"(the HTTP server answered {server.total_requests} requests over 2 rounds; "
                f"one connection pool per distinct config)"
            )


def _serve_demo(ctx: click.Context, port: int) -> None:
    """The demo config, history on, served with ``healthkit serve`` until SIGTERM or Ctrl-C."""
    from ._serve import serve

    with (
        tempfile.TemporaryDirectory(prefix="healthkit-demo-") as tmp,
        OipServer(DEMO_MODELS) as server,
    ):
        config = demo_config(server.url)
        # History is on in the demo: the status page shows uptime and latency figures.
        config["history"] = {"path": str(Path(tmp) / "history.sqlite")}
        path = Path(tmp) / "healthkit-demo.json"
        path.write_text(json.dumps(config, indent=2))
        click.echo(f"Open Inference Protocol server on {server.url}")
        click.echo("Status page: /status on the address below (Ctrl-C to stop)")
        ctx.invoke(serve, config=str(path), port=port, show_details="always")


@click.command()
@click.option(
    "--serve",
    "serve_",
    is_flag=True,
    help="Keep running: serve the demo config (history on) with its status page.",
)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="With --serve: the port to listen on (0: any free port).",
)
@click.pass_context
def demo(ctx: click.Context, serve_: bool, port: int) -> None:
    """Check a built-in loopback model server with per-model strategies.

    Starts a small Open Inference Protocol server on a free loopback port
    (models ready, not ready and flaky), checks it twice with a config in
    which models use different strategies and several share one instance,
    prints the results and the dedupe figure, stops everything and exits 0.

    With --serve it keeps running instead: ``healthkit serve`` on the demo
    config, with history on and the status page at /status, until SIGTERM or
    Ctrl-C (exit 0).
    """
    if serve_:
        _serve_demo(ctx, port)
        return
    asyncio.run(_run(click.echo))
