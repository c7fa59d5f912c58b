"""The ``federation`` section of benchmarks/run.py: N workers, one sidecar.

Two figures:

- upstream checks per model per period with 1 worker and with 4, where each
  "worker" is an independent monitor (its own kit, client and schedule, as a
  ``--workers`` process has): 4 probing the predictor themselves, or 4 reading
  one ``healthkit serve`` sidecar with ``strategy = "healthkit"``;
- what one model's check costs through the federation strategy (one
  ``/v1/status`` answers every model) against the plain ``http`` strategy (one
  request per model): wall time and this process's CPU time, per model.

Printed, never asserted: the machine is shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from healthkit import HealthKit, Monitor, Target
from healthkit.strategies.federation import FederationConfig, FederationStrategy
from healthkit.strategies.http import HttpConfig, HttpStrategy


def _models(n: int) -> dict[str, Any]:
    return {f"model-{i}": {} for i in range(n)}


async def _count_checks(
    pred: Any, configs: list[dict[str, Any]], models: int, period: float, duration: float
) -> float:
    """Per model per period: predictor requests over ``duration`` with these monitors running."""
    monitors = [Monitor(HealthKit.from_config(c)) for c in configs]
    try:
        for m in monitors:
            await m.start()
        # Let every monitor's first round land, then count over whole periods.
        deadline = time.monotonic() + 30
        while not all(m.server_ready() for m in monitors):
            if time.monotonic() > deadline:
                raise RuntimeError("monitors never became ready")
            await asyncio.sleep(0.05)
        before = pred.requests()
        await asyncio.sleep(duration)
        got = pred.requests() - before
    finally:
        for m in monitors:
            await m.aclose()
    return got / (models * duration / period)


async def _cost(sidecar_url: str, predictor_url: str, models: int) -> dict[str, float]:
    targets = [Target(model=f"model-{i}") for i in range(models)]
    fed = FederationStrategy(FederationConfig(base_url=sidecar_url, timeout=10.0))
    http = HttpStrategy(HttpConfig(base_url=predictor_url, timeout=10.0))
    out: dict[str, float] = {}
    try:
        # The sidecar's first round: every model has a result (and connections are up).
        deadline = time.monotonic() + 30
        while not all(r.status.is_ok for r in (await fed.acheck_many(targets)).values()):
            if time.monotonic() > deadline:
                raise RuntimeError("the sidecar never checked every model")
            await asyncio.sleep(0.1)
        await http.acheck(targets[0])
        wall, cpu = time.perf_counter(), time.process_time()
        results = await fed.acheck_many(targets)
        out["federation_wall"] = (time.perf_counter() - wall) / models
        out["federation_cpu"] = (time.process_time() - cpu) / models
        out["federation_ok"] = sum(r.status.is_ok for r in results.values())
        wall, cpu = time.perf_counter(), time.process_time()
        answers = await asyncio.gather(*(http.acheck(t) for t in targets))
        out["http_wall"] = (time.perf_counter() - wall) / models
        out["http_cpu"] = (time.process_time() - cpu) / models
        out["http_ok"] = sum(r.status.is_ok for r in answers)
    finally:
        await fed.aclose()
        await http.aclose()
    return out


def run_federation(
    quick: bool,
    *,
    predictor: Callable[[int], contextlib.AbstractContextManager[Any]],
    healthkit_serve: Callable[[dict[str, Any]], contextlib.AbstractContextManager[str]],
    table: Callable[..., None],
) -> dict[str, Any]:
    models, period = 20, 0.5
    duration = 2.0 if quick else 5.0
    cost_models = 200 if quick else 1000
    probe = {"period": period, "jitter": 0.0, "timeout": 2.0, "failure_threshold": 1}

    def direct(url: str) -> dict[str, Any]:
        hc = {"strategy": "http", "base_url": url, **probe}
        return {"defaults": {"health_check": hc}, "models": _models(models)}

    def federated(url: str) -> dict[str, Any]:
        hc = {"strategy": "healthkit", "base_url": url, "max_age": 10 * period, **probe}
        return {"defaults": {"health_check": hc}, "models": _models(models)}

    per_period: dict[str, float] = {}
    with predictor(cost_models) as pred:
        per_period["1 worker"] = asyncio.run(
            _count_checks(pred, [direct(pred.url)], models, period, duration)
        )
        per_period["4 independent"] = asyncio.run(
            _count_checks(pred, [direct(pred.url)] * 4, models, period, duration)
        )
        with healthkit_serve(direct(pred.url)) as sidecar:
            per_period["4 federated"] = asyncio.run(
                _count_checks(pred, [federated(sidecar)] * 4, models, period, duration)
            )
        # Cost per model: a sidecar that knows cost_models models (noop: no upstream).
        noop = {
            "defaults": {"health_check": {"strategy": "noop", "period": 60.0, "jitter": 0.0}},
            "models": _models(cost_models),
        }
        with healthkit_serve(noop) as sidecar:
            cost = asyncio.run(_cost(sidecar, pred.url, cost_models))
    table(
        f"federation: predictor checks per model per period ({models} models, period "
        f"{period:g} s, {duration:g} s counted)",
        ["workers", "checks per model per period"],
        [[name, f"{value:.2f}"] for name, value in per_period.items()],
    )
    table(
        f"federation: cost of one model's check ({cost_models} models)",
        ["strategy", "wall per model", "CPU per model (this process)", "healthy"],
        [
            [
                "healthkit (one /v1/status)",
                f"{cost['federation_wall'] * 1e6:.1f} us",
                f"{cost['federation_cpu'] * 1e6:.1f} us",
                f"{cost['federation_ok']:g}",
            ],
            [
                "http (one request each)",
                f"{cost['http_wall'] * 1e6:.1f} us",
                f"{cost['http_cpu'] * 1e6:.1f} us",
                f"{cost['http_ok']:g}",
            ],
        ],
    )
    return {"per_period": per_period, "cost": cost, "models": models, "period": period}
