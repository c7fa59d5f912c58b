"""An OpenAI-compatible front end (FastAPI) whose model list and readiness come from healthkit.

The app serves ``GET /v1/models`` (OpenAI's shape) listing the models whose
backend is ready now, and healthkit's routes under ``/health`` (``/health/readyz``,
``/health/v2/models/{name}/ready``, ``/health/v1/status``, ``/health/metrics``, ...).
The monitor is started and stopped by the app's lifespan, with the routes' own
watchdog. Run it with::

    HEALTHKIT_CONFIG=healthkit.toml uvicorn app:create_from_env --factory --port 8000

(``tests/test_fastapi.py`` runs it under uvicorn against a loopback backend.)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from healthkit import HealthKit
from healthkit.asgi import create_app


def create(config: Any) -> FastAPI:
    """The app for ``config`` (a path or a mapping, as ``HealthKit.from_config`` takes)."""
    health = create_app(HealthKit.from_config(config), show_details="never")
    monitor = health.state.monitor

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A host's lifespan does not reach a mounted app: run the health app's own
        # (it starts the monitor and its watchdog, and closes both at shutdown).
        async with health.router.lifespan_context(health):
            yield

    app = FastAPI(title="OpenAI-compatible server with healthkit", lifespan=lifespan)

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        # A client picks a model from this list: one whose backend is down is left out.
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "owned_by": "example"}
                for name in monitor.models
                if monitor.is_ready(name)
            ],
        }

    app.mount("/health", health)
    return app


def create_from_env() -> FastAPI:
    """``uvicorn app:create_from_env --factory``: the config named by ``HEALTHKIT_CONFIG``."""
    return create(os.environ.get("HEALTHKIT_CONFIG", "healthkit.toml"))
