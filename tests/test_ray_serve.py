"""healthkit.ray on a real local Ray cluster: Serve replicas share one monitor actor.

One module-scoped cluster (2 CPUs, a small object store, no dashboard) and one
Serve application with two replicas, against a real loopback predictor
(:class:`healthkit.testing.OipServer`) whose requests are counted. The cluster
is shut down at the end, even when a test fails. Marked ``ray``: CI runs them
(``model-healthkit[test]`` installs Ray); a missing Ray fails here, loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from healthkit.testing import OipServer

try:
    # Ray Serve's own pydantic models warn on import (deprecated Field keywords): theirs
    # to fix, and not a healthkit warning the suite's filterwarnings = error is about.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import ray
        from ray import serve
except ImportError as exc:  # pragma: no cover - CI installs the extra
    raise ImportError(
        "tests/test_ray_serve.py needs Ray Serve: pip install 'model-healthkit[ray]' "
        "(the test extra installs it; these tests must not be skipped)"
    ) from exc

import healthkit.ray

pytestmark = [pytest.mark.ray, pytest.mark.timeout(180)]

PERIOD = 0.5
REFRESH = 0.2
CALL_TIMEOUT = 1.0
MAX_AGE = 600.0
NAME = "test-ray-serve"
ACTOR = f"healthkit-monitor:{NAME}"


@serve.deployment(
    num_replicas=2,
    ray_actor_options={"num_cpus": 0},
    health_check_period_s=1,
    health_check_timeout_s=5,
)
class Transformer:
    async def __init__(self, config: dict[str, Any]) -> None:
        self.health = healthkit.ray.ReplicaHealth(
            config, name=NAME, refresh=REFRESH, call_timeout=CALL_TIMEOUT, max_age=MAX_AGE
        )
        await self.health.astart()
        self.replica = serve.get_replica_context().replica_id.unique_id

    def check_health(self) -> None:
        self.health.check_health()

    def state(self, model: str) -> dict[str, Any]:
        return {
            "replica": self.replica,
            "status": self.health.status(model).value,
            "ready": self.health.is_ready(model),
            "epoch": self.health.epoch,
        }

    async def __call__(self, request: Any) -> Any:
        answer = self.health.response(request)
        return answer if answer is not None else "inference"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(url: str) -> dict[str, Any]:
    return {
        "defaults": {
            "health_check": {
                "strategy": "http",
                "base_url": url,
                "protocol": "v2",
                "timeout": 1.0,
                "period": PERIOD,
                "jitter": 0.0,
                "failure_threshold": 1,
            }
        },
        "models": {"alpha": {}, "beta": {}},
    }


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Cluster:
    def __init__(self, predictor: OipServer, handle: Any, http_port: int) -> None:
        self.predictor = predictor
        self.handle = handle
        self.http_port = http_port

    def states(self, model: str, calls: int = 16) -> list[dict[str, Any]]:
        refs = [self.handle.state.remote(model) for _ in range(calls)]
        return [ref.result(timeout_s=30) for ref in refs]

    def replicas_agree(self, model: str, **expected: Any) -> bool:
        """Both replicas answered, and every answer matches ``expected``."""
        answers = self.states(model)
        seen = {a["replica"] for a in answers}
        return len(seen) == 2 and all(
            a[key] == value for a in answers for key, value in expected.items()
        )

    def get(self, path: str) -> int:
        url = f"http://127.0.0.1:{self.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as err:
            return int(err.code)

    def upstream(self, model: str) -> int:
        return self.predictor.requests[f"/v2/models/{model}/ready"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    predictor = OipServer({"alpha": "ready", "beta": "ready"}).start()
    # Workers cannot import this test module: ship its classes by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        ray.init(
            num_cpus=2,
            object_store_memory=78_643_200,
            include_dashboard=False,
            log_to_driver=False,
            namespace="healthkit-tests",
        )
        try:
            http_port = _free_port()
            serve.start(http_options={"host": "127.0.0.1", "port": http_port})
            handle = serve.run(
                Transformer.bind(_config(predictor.url)), name="transformer", route_prefix="/"
            )
            yield Cluster(predictor, handle, http_port)
        finally:
            try:
                serve.shutdown()
            finally:
                ray.shutdown()
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        predictor.stop()


def test_replicas_share_one_check_per_model_per_period(cluster: Cluster) -> None:
    _wait(lambda: cluster.replicas_agree("alpha", ready=True), "both replicas ready")
    monitors = [a for a in ray.util.list_named_actors(all_namespaces=True) if a["name"] == ACTOR]
    assert len(monitors) == 1, monitors

    window = 3.0
    before = {m: cluster.upstream(m) for m in ("alpha", "beta")}
    started = time.monotonic()
    answered = 0
    # A readiness burst over HTTP (through Serve's proxy, spread over both replicas) and
    # through the handle: neither may add upstream checks.
    while time.monotonic() - started < window:
        assert cluster.get("/v2/models/alpha/ready") == 200
        assert cluster.get("/v1/models/beta") == 200
        assert all(a["ready"] for a in cluster.states("beta", calls=8))
        answered += 10
    elapsed = time.monotonic() - started
    after = {m: cluster.upstream(m) for m in ("alpha", "beta")}

    # One background probe per model per period for the whole cluster (+1 for a probe
    # at each edge of the window). Two independent monitors would make about twice that.
    bound = int(elapsed / PERIOD) + 2
    for model in ("alpha", "beta"):
        assert after[model] - before[model] <= bound, (model, before, after, elapsed, answered)
        assert after[model] - before[model] >= 1  # the monitor is probing
    assert cluster.get("/v2/models/gamma/ready") == 404
    assert cluster.get("/v2/models/alpha/versions/9/ready") == 404  # not the probed version
    assert cluster.get("/v2/health/ready") == 200
    assert cluster.get("/something/else") == 200  # the deployment's own path


def test_predictor_down_is_not_ready_and_no_restart(cluster: Cluster) -> None:
    _wait(lambda: cluster.replicas_agree("alpha", ready=True), "both replicas ready")
    replicas = {a["replica"] for a in cluster.states("alpha")}
    cluster.predictor.set_state("alpha", "not_ready")
    try:
        _wait(
            lambda: cluster.replicas_agree("alpha", ready=False, status="unhealthy"),
            "alpha not ready on both replicas",
        )
        assert cluster.get("/v2/models/alpha/ready") == 503
        assert cluster.get("/v2/health/ready") == 503
        assert cluster.replicas_agree("beta", ready=True)
        # Serve runs check_health every second: a few periods with the predictor down
        # restart nothing (readiness is not liveness).
        time.sleep(3.0)
        assert {a["replica"] for a in cluster.states("alpha")} == replicas
    finally:
        cluster.predictor.set_state("alpha", "ready")
    _wait(lambda: cluster.replicas_agree("alpha", ready=True), "alpha ready again")


@ray.remote(num_cpus=0)
class Impostor:
    """Holds the shared monitor's name and never answers: a hung actor."""

    async def snapshot(self) -> None:
        await asyncio.sleep(3600)


def _replace_monitor_with_impostor() -> Any:
    """Kill the shared monitor and take its name before a replica recreates it."""
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(ValueError):  # no such actor (yet)
            ray.kill(ray.get_actor(ACTOR, namespace="healthkit"), no_restart=True)
        try:
            return Impostor.options(name=ACTOR, namespace="healthkit").remote()
        except ValueError:  # the name is still (or again) taken: a replica was faster
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def test_killed_actor_reads_unknown_then_a_new_one_takes_over(cluster: Cluster) -> None:
    _wait(lambda: cluster.replicas_agree("alpha", ready=True), "both replicas ready")
    old = cluster.states("alpha")[0]["epoch"]
    assert old is not None
    # The monitor is killed and a hung actor holds its name: replicas cannot refresh. Their
    # snapshots would stay "fresh" for MAX_AGE (minutes), so unknown here comes only from
    # dropping the snapshot when a refresh fails, never from its age.
    impostor = _replace_monitor_with_impostor()
    try:
        _wait(
            lambda: cluster.replicas_agree("alpha", status="unknown", ready=False, epoch=None),
            "both replicas reading unknown",
        )
        assert cluster.get("/v2/models/alpha/ready") == 503
        assert cluster.replicas_agree("beta", status="unknown", ready=False)
    finally:
        ray.kill(impostor, no_restart=True)
    # The impostor gone, the next refresh creates a new shared monitor.
    _wait(
        lambda: (
            cluster.replicas_agree("alpha", ready=True)
            and all(a["epoch"] not in (None, old) for a in cluster.states("alpha"))
        ),
        "a new shared monitor serving both replicas",
    )
    assert len({a["epoch"] for a in cluster.states("alpha")}) == 1
    monitors = [a for a in ray.util.list_named_actors(all_namespaces=True) if a["name"] == ACTOR]
    assert len(monitors) == 1, monitors
