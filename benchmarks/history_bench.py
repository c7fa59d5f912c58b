"""History and notifications on vs off: readiness p99 of the ASGI app while 1,000 models probe.

The app answers ``/v2/models/{name}/ready`` from memory; what history and
notifications add is on the check path's edge (a listener that queues an
event) and a writer thread. This measures a readiness answer's latency through
the real app (httpx's ASGI transport, in-process) while every model is probed
10 times a second, with ``[history]`` and a ``[[notifiers]]`` webhook (to a
refused port: every delivery fails) on and off. Printed, never asserted: the
machine is shared.

    python benchmarks/history_bench.py [--models 1000] [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import tempfile
import time
from typing import Any

import httpx

from healthkit import HealthKit
from healthkit.asgi import create_app
from healthkit.testing import OipServer


def _refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _config(url: str, models: int, directory: str | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "defaults": {
            "health_check": {"strategy": "http", "base_url": url, "period": 0.1, "jitter": 0.5}
        },
        "models": {f"model-{i}": {} for i in range(models)},
    }
    if directory is not None:
        config["history"] = {"path": os.path.join(directory, "history.sqlite")}
        config["notifiers"] = [{"type": "webhook", "url": _refused_url(), "retries": 0}]
    return config


async def _measure(url: str, models: int, requests: int, directory: str | None) -> dict[str, float]:
    app = create_app(HealthKit.from_config(_config(url, models, directory)))
    samples: list[float] = []
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://app") as client,
    ):
        monitor = app.state.monitor
        deadline = time.monotonic() + 30
        while not monitor.server_ready() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        # Past the start (every model's first transition): the steady state.
        await asyncio.sleep(1.0)
        for i in range(requests):
            start = time.perf_counter()
            response = await client.get(f"/v2/models/model-{i % models}/ready")
            samples.append(time.perf_counter() - start)
            assert response.status_code in (200, 503)
        checks = monitor.stats().checks
        history = app.state.operations.history
        dropped = history.stats().dropped if history is not None else 0
    samples.sort()
    return {
        "p50_ms": statistics.median(samples) * 1e3,
        "p99_ms": samples[int(len(samples) * 0.99) - 1] * 1e3,
        "checks": float(checks),
        "dropped": float(dropped),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    names = {f"model-{i}": "ready" for i in range(args.models)}
    with OipServer(names) as predictor, tempfile.TemporaryDirectory() as directory:
        off = await _measure(predictor.url, args.models, args.requests, None)
        on = await _measure(predictor.url, args.models, args.requests, directory)
    print(
        f"history bench: {args.models} models probed every 0.1 s,",
        f"{args.requests} readiness requests",
    )
    for label, row in (("off", off), ("history + notifier on", on)):
        print(
            f"  {label:<22} readiness p50 {row['p50_ms']:.3f} ms  p99 {row['p99_ms']:.3f} ms"
            f"  ({row['checks']:.0f} checks, {row['dropped']:.0f} history events dropped)"
        )
    print(f"  p99 on / off: {on['p99_ms'] / off['p99_ms']:.2f}x (target within 1.2x)")


if __name__ == "__main__":
    asyncio.run(main())
