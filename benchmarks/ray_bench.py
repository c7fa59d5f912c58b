"""The ``ray`` benchmark section: upstream checks per model per period under Ray Serve.

A real local Ray cluster (2 CPUs, small object store) serves one deployment with
R replicas, each with a :class:`healthkit.ray.ReplicaHealth`, against a loopback
predictor (:class:`healthkit.testing.OipServer`) that counts its requests.

* ``independent``: every replica names its own monitor (one actor per replica),
  as R copies of an in-process monitor would behave.
* ``shared``: every replica names the same monitor (healthkit.ray's design).

While the window runs, readiness is asked through the deployment handle as fast
as the driver can; it must add nothing upstream. Imported by benchmarks/run.py
only when the section runs (Ray is a heavy import).
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

PERIOD = 1.0
REFRESH = 0.5
MODELS = ("alpha", "beta", "gamma", "delta")


def _deployment(serve: Any) -> Any:
    import healthkit.ray

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class Reader:
        async def __init__(self, config: dict[str, Any], shared: bool) -> None:
            replica = serve.get_replica_context().replica_id.unique_id
            name = "bench" if shared else f"bench-{replica}"
            self.health = healthkit.ray.ReplicaHealth(config, name=name, refresh=REFRESH)
            await self.health.astart()

        def check_health(self) -> None:
            self.health.check_health()

        def ready(self) -> bool:
            return all(self.health.is_ready(m) for m in MODELS)

    return Reader


def run_ray(quick: bool, *, table: Callable[..., None]) -> dict[str, Any]:
    with warnings.catch_warnings():  # Ray Serve's pydantic models warn on import
        warnings.simplefilter("ignore", DeprecationWarning)
        import ray
        from ray import serve

    from healthkit.testing import OipServer

    window = 5.0 if quick else 15.0
    config = {
        "defaults": {
            "health_check": {
                "strategy": "http",
                "protocol": "v2",
                "timeout": 1.0,
                "period": PERIOD,
                "jitter": 0.0,
            }
        },
        "models": {m: {} for m in MODELS},
    }
    predictor = OipServer(dict.fromkeys(MODELS, "ready")).start()
    config["defaults"]["health_check"]["base_url"] = predictor.url
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    results: dict[str, Any] = {"window": window, "period": PERIOD, "models": len(MODELS)}
    rows: list[list[object]] = []
    started = time.monotonic()
    try:
        ray.init(
            num_cpus=2,
            object_store_memory=78_643_200,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            namespace="healthkit-bench",
        )
        # Serve logs every deployment step (and routing hiccups on 2 busy cores) at INFO/WARNING.
        logging.getLogger("ray.serve").setLevel(logging.ERROR)
        results["cluster_start_s"] = time.monotonic() - started
        serve.start(http_options={"location": "NoServer"})
        reader = _deployment(serve)
        for replicas, mode in ((1, "shared"), (4, "independent"), (4, "shared")):
            app = reader.options(num_replicas=replicas).bind(config, mode == "shared")
            handle = serve.run(app, name=f"bench-{replicas}-{mode}", route_prefix=None)
            deadline = time.monotonic() + 60
            while not all(handle.ready.remote().result(timeout_s=30) for _ in range(4 * replicas)):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{replicas} {mode} replicas never read ready")
                time.sleep(0.1)
            before = predictor.total_requests
            t0 = time.monotonic()
            asked = 0
            while time.monotonic() - t0 < window:
                refs = [handle.ready.remote() for _ in range(32)]
                asked += sum(1 for ref in refs if ref.result(timeout_s=30))
            elapsed = time.monotonic() - t0
            upstream = predictor.total_requests - before
            per = upstream / len(MODELS) / (elapsed / PERIOD)
            key = f"{replicas} {mode}"
            results[key] = {
                "upstream": upstream,
                "per_model_per_period": per,
                "readiness_answers": asked,
                "actor_calls_per_s": replicas / REFRESH,
            }
            rows.append(
                [
                    replicas,
                    mode,
                    upstream,
                    f"{per:.2f}",
                    f"{asked:,} ({asked / elapsed:,.0f}/s)",
                    f"{replicas / REFRESH:g}",
                ]
            )
            serve.delete(f"bench-{replicas}-{mode}")
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
            predictor.stop()
    table(
        f"ray: upstream checks per model per period ({len(MODELS)} models, period {PERIOD:g} s,"
        f" {window:g} s window, cluster start {results['cluster_start_s']:.1f} s)",
        [
            "replicas",
            "monitor",
            "upstream requests",
            "per model per period",
            "readiness answers",
            "actor calls/s",
        ],
        rows,
    )
    return results
