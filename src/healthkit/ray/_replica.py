"""Readiness inside a Ray Serve replica, read from one shared monitor actor.

Each replica keeps a local snapshot of every model's readiness, refreshed in the
background by one actor call per ``refresh`` seconds. Readiness questions read
that snapshot: no Ray call and no upstream check per request, whatever the burst.

The snapshot is dropped (every model ``unknown``, not ready) as soon as a refresh
fails (the actor died, is restarting, or did not answer within ``call_timeout``)
and whenever it is older than ``max_age``: a replica never answers from a
snapshot it could not renew. The next refresh looks the actor up again and
creates it if it is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import time
from collections.abc import Mapping
from typing import Any

import attrs

from .._config import ServerConfig, load_config
from .._errors import ClosedError
from .._registry import StrategyRegistry
from .._status import Status
from ._actor import SharedMonitor

__all__ = ["ReplicaHealth"]

log = logging.getLogger("healthkit.ray")

#: Seconds between two logged tracebacks of a failing refresh.
_COMPLAIN_EVERY = 10.0
_ACTOR_PREFIX = "healthkit-monitor:"

ConfigSource = str | os.PathLike[str] | Mapping[str, Any] | ServerConfig

_MODEL_READY = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/ready$")
_V1_MODEL = re.compile(r"/v1/models/([^/:]+)$")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        raise ImportError(
            "healthkit.ray needs Ray Serve: pip install 'model-healthkit[ray]'"
        ) from exc
    return ray


@attrs.frozen(kw_only=True)
class _Snapshot:
    epoch: str
    #: model -> (status, ready), as the shared monitor last reported them.
    models: Mapping[str, tuple[Status, bool]]
    #: ``time.monotonic()`` in this replica when the snapshot arrived.
    fetched: float


class ReplicaHealth:
    """Per-model readiness for one Ray Serve replica, shared across the cluster.

    Create it in the deployment's (async) ``__init__`` and start it there::

        @serve.deployment(num_replicas=4)
        class Transformer:
            async def __init__(self) -> None:
                self.health = healthkit.ray.ReplicaHealth("healthkit.toml", name="transformer")
                await self.health.astart()

            def check_health(self) -> None:
                self.health.check_health()   # liveness: never the predictor's health

    ``name`` names the shared monitor: every replica (of any deployment) passing
    the same ``name`` and ``namespace`` shares one actor and must pass the same
    config. The actor is created by the first replica that needs it and is owned
    by it (it goes when that replica goes; the others create a new one).

    ``refresh`` is the seconds between two snapshot calls of this replica;
    ``call_timeout`` bounds each call; ``max_age`` (default ``2 * refresh +
    call_timeout``) is the oldest snapshot answered from.
    """

    def __init__(
        self,
        config: ConfigSource,
        *,
        name: str = "default",
        namespace: str = "healthkit",
        refresh: float = 1.0,
        call_timeout: float = 5.0,
        max_age: float | None = None,
        max_in_flight: int = 64,
        registry: StrategyRegistry | None = None,
    ) -> None:
        if not name:
            raise ValueError("name must be a non-empty string")
        if not (refresh > 0 and math.isfinite(refresh)):
            raise ValueError(f"refresh must be a positive number of seconds, got {refresh!r}")
        if not (call_timeout > 0 and math.isfinite(call_timeout)):
            raise ValueError(
                f"call_timeout must be a positive number of seconds, got {call_timeout!r}"
            )
        if max_age is None:
            max_age = 2 * refresh + call_timeout
        if not max_age > 0:
            raise ValueError(f"max_age must be a positive number of seconds, got {max_age!r}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self._ray = _import_ray()
        # Validated here, in the replica, so a bad config fails the deployment at once
        # (ConfigError) instead of failing inside the actor on every refresh.
        if isinstance(config, ServerConfig):
            self._config = config
        else:
            registry = registry if registry is not None else StrategyRegistry()
            self._config = load_config(config, registry=registry)
        self._name = name
        self._namespace = namespace
        self._refresh = float(refresh)
        self._call_timeout = float(call_timeout)
        self._max_age = float(max_age)
        self._max_in_flight = max_in_flight
        self._actor: Any = None
        self._snapshot: _Snapshot | None = None
        self._epoch: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._complained_at = -math.inf
        self._warned_mismatch = False
        self._refreshes = 0

    # -- lifecycle ------------------------------------------------------------------

    async def astart(self) -> None:
        """Start the background refresh in the running loop; idempotent.

        Does not wait for the first snapshot: until it arrives, every model is
        ``unknown`` (readiness starts failed, as in Kubernetes).
        """
        if self._closed:
            raise ClosedError("healthkit's Ray replica health is closed")
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"healthkit-ray-refresh:{self._name}"
            )

    async def aclose(self) -> None:
        """Stop refreshing; every model is ``unknown`` from now on.

        The shared actor is left running for the other replicas.
        """
        self._closed = True
        self._snapshot = None
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # -- readiness (from the local snapshot: no Ray call, no upstream check) ---------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def models(self) -> list[str]:
        """The configured models."""
        return list(self._config.models)

    @property
    def epoch(self) -> str | None:
        """The shared monitor incarnation the current snapshot came from (``None``: none)."""
        snap = self._fresh()
        return None if snap is None else snap.epoch

    @property
    def refreshes(self) -> int:
        """Snapshots received so far (for tests and diagnostics)."""
        return self._refreshes

    def status(self, model: str) -> Status:
        """The model's thresholded status; ``unknown`` without a fresh snapshot.

        Raises ``KeyError`` for a model the config does not name.
        """
        if model not in self._config.models:
            raise KeyError(model)
        snap = self._fresh()
        if snap is None or model not in snap.models:
            return Status.UNKNOWN
        return snap.models[model][0]

    def is_ready(self, model: str) -> bool:
        """Whether the model is ready (Kubernetes readiness semantics, as the monitor
        reports them); false without a fresh snapshot. ``KeyError`` for an unknown model."""
        if model not in self._config.models:
            raise KeyError(model)
        snap = self._fresh()
        return snap is not None and snap.models.get(model, (Status.UNKNOWN, False))[1]

    def server_ready(self) -> bool:
        """Every configured model ready (a config without models is ready once a
        fresh snapshot arrived)."""
        snap = self._fresh()
        if snap is None:
            return False
        return all(snap.models.get(m, (Status.UNKNOWN, False))[1] for m in self._config.models)

    def check_health(self) -> None:
        """The replica's liveness, for the deployment's ``check_health``.

        Raises only when this replica's readiness machinery is broken: it was
        closed, or its refresh task ended (a bug; the task never ends on its
        own). A predictor that is down, or a shared actor that is dead or slow,
        makes models not ready: that is readiness, and restarting the replica
        would not bring the predictor back.
        """
        if self._closed:
            raise RuntimeError("healthkit's Ray replica health is closed")
        task = self._task
        if task is None:
            return  # not started yet: nothing of ours is broken
        if task.done():
            exc = None if task.cancelled() else task.exception()
            raise RuntimeError(f"healthkit's readiness refresh stopped: {exc!r}")

    def response(self, request: Any) -> Any:
        """A Starlette response for an Open Inference Protocol readiness path, else ``None``.

        ``/v2/health/ready`` (every model), ``/v2/models/{name}[/versions/{v}]/ready``
        and ``/v1/models/{name}`` (``{"name": ..., "ready": ...}``): 200 when ready,
        503 when not, 404 for a model the config does not name (or a version other
        than its configured one: only that one is probed). Any other path returns
        ``None``, for the deployment to handle.
        """
        from starlette.responses import JSONResponse

        path: str = request.url.path.rstrip("/")
        if path.endswith("/v2/health/ready") or path == "/v2/health/ready":
            ready = self.server_ready()
            return JSONResponse({"ready": ready}, status_code=200 if ready else 503)
        match = _MODEL_READY.search(path) or _V1_MODEL.search(path)
        if match is None:
            return None
        model = match.group(1)
        config = self._config.models.get(model)
        if config is None:
            return JSONResponse({"error": f"model {model} not found"}, status_code=404)
        version = match.group(2) if match.re is _MODEL_READY else None
        if version is not None and version != config.version:
            # Only the configured version is probed: another one is not vouched for.
            return JSONResponse(
                {"error": f"model {model} version {version} not found"}, status_code=404
            )
        ready = self.is_ready(model)
        body = {"name": model, "ready": ready}
        return JSONResponse(body, status_code=200 if ready else 503)

    # -- internals ----------------------------------------------------------------------

    def _fresh(self) -> _Snapshot | None:
        snap = self._snapshot
        if snap is None or time.monotonic() - snap.fetched > self._max_age:
            return None
        return snap

    def _actor_class(self) -> Any:
        # num_cpus=0: the monitor is I/O bound and must not take a CPU a replica needs.
        # max_restarts=-1: a crashed actor process comes back (a new, unknown monitor).
        return self._ray.remote(num_cpus=0, max_restarts=-1)(SharedMonitor)

    def _lookup(self) -> Any:
        """The shared actor, created if there is none (blocking: run in a thread)."""
        return (
            self._actor_class()
            .options(
                name=_ACTOR_PREFIX + self._name,
                namespace=self._namespace,
                get_if_exists=True,
            )
            .remote(self._config, max_in_flight=self._max_in_flight)
        )

    async def _fetch(self) -> _Snapshot:
        if self._actor is None:
            self._actor = await asyncio.wait_for(
                asyncio.to_thread(self._lookup), self._call_timeout
            )
        ref = self._actor.snapshot.remote()
        try:
            raw = await asyncio.wait_for(asyncio.wrap_future(ref.future()), self._call_timeout)
        except asyncio.TimeoutError:
            # A hung actor must not collect one pending call per refresh of every replica.
            with contextlib.suppress(Exception):
                self._ray.cancel(ref)
            raise
        models = {
            str(name): (Status(entry["status"]), bool(entry["ready"]))
            for name, entry in raw["models"].items()
        }
        return _Snapshot(epoch=str(raw["epoch"]), models=models, fetched=time.monotonic())

    async def _run(self) -> None:
        while not self._closed:
            try:
                snap = await self._fetch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Dead, restarting or hung actor: answer unknown at once, never the old
                # snapshot. A dead one is looked up again (and created) next time; a slow
                # one (a new actor's process still starting, say) is asked again.
                self._snapshot = None
                if isinstance(exc, self._ray.exceptions.RayActorError):
                    self._actor = None
                self._complain(exc)
            else:
                if self._epoch is not None and snap.epoch != self._epoch:
                    log.warning(
                        "healthkit's shared monitor %r is a new incarnation; "
                        "models start from unknown",
                        self._name,
                    )
                self._epoch = snap.epoch
                self._warn_mismatch(snap)
                self._snapshot = snap
                self._refreshes += 1
            await asyncio.sleep(self._refresh)

    def _warn_mismatch(self, snap: _Snapshot) -> None:
        """Replicas sharing a ``name`` must share a config: say so once if they do not."""
        if self._warned_mismatch or set(snap.models) == set(self._config.models):
            return
        self._warned_mismatch = True
        log.warning(
            "healthkit's shared monitor %r monitors other models than this replica's config "
            "(models it lacks read unknown): same name, different configs?",
            self._name,
        )

    def _complain(self, exc: Exception) -> None:
        now = time.monotonic()
        message = "healthkit's shared monitor %r unavailable (%s); models read unknown"
        if now - self._complained_at >= _COMPLAIN_EVERY:
            self._complained_at = now
            log.warning(message, self._name, type(exc).__name__, exc_info=exc)
        else:
            log.debug(message, self._name, type(exc).__name__, exc_info=exc)

    def __repr__(self) -> str:
        snap = self._fresh()
        state = "closed" if self._closed else ("fresh" if snap is not None else "unknown")
        return f"<ReplicaHealth name={self._name!r} models={len(self._config.models)} {state}>"
