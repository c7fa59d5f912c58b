"""Per-model predictor health in a real ``kserve.ModelServer``, without forking KServe.

KServe's REST endpoints (``/v1/models/{m}``, ``/v2/models/{m}/ready``,
``/v2/health/ready``) and its gRPC servicer (``ModelReady``, ``ServerReady``)
all ask one object, ``ModelServer.dataplane``, through two coroutines:
``ready()`` and ``model_ready(name, disable_predictor_health_check)``. The
server hands that object to its REST and gRPC servers only in ``start()``, so
swapping it beforehand for a wrapper that answers those two from a healthkit
:class:`~healthkit.Monitor` (and delegates everything else) is the whole hook.

Inference is untouched: KServe's predict paths call ``model_ready(name, True)``,
which the wrapper passes straight to the wrapped data plane, so no request
ever waits on a health check.

``kserve`` itself is imported lazily, inside the functions that need it:
importing it parses ``sys.argv``, which importing ``healthkit.kserve`` must not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

import attrs

from .._config import ModelConfig, ServerConfig, load_config
from .._errors import ClosedError
from .._healthkit import HealthKit
from .._monitor import Monitor
from .._registry import StrategyRegistry

__all__ = ["KServeHealth", "install"]

log = logging.getLogger("healthkit.kserve")

#: Seconds between two logged tracebacks of the same kind of readiness failure.
_COMPLAIN_EVERY = 10.0

ConfigSource = str | os.PathLike[str] | Mapping[str, Any] | ServerConfig


class KServeHealth:
    """A KServe data plane whose readiness answers come from a healthkit monitor.

    Created by :func:`install`, which puts it in place of ``server.dataplane``.
    Every attribute other than :meth:`ready` and :meth:`model_ready` is the
    wrapped data plane's, so KServe (and a custom ``DataPlane`` subclass) keeps
    working unchanged.

    * Model readiness: the model's own ``healthy()`` **and** the monitor's
      thresholded readiness of that model. An unknown model is still KServe's
      ``ModelNotFound`` (404).
    * Server readiness: every registered model ready, as the Open Inference
      Protocol defines it.
    * ``on_demand=True`` (the default): a readiness request answers the
      monitor's known state at once and, when that is older than ``cache_ttl``,
      starts one background check of the model shared by all callers
      (stale-while-revalidate), so a burst of any size adds at most one
      upstream check per model per ``cache_ttl`` and no answer waits for a hung
      predictor. Only a model without any result yet waits, for one shared
      check bounded by its health deadline. ``on_demand=False``: answers come
      from memory only, as fresh as the background probes (one per model per
      ``period``). Either way a result older than ``max_stale`` is not ready.
    * Any failure on the way is logged and answered "not ready", never raised:
      KServe would turn an exception into HTTP 500.

    The monitor starts with the REST server's lifespan (or on the first
    readiness request, whichever comes first) and stops with it. Models that
    KServe registers later (repository load) are picked up on the next
    readiness request, with the server-wide default unless the config names them.
    """

    def __init__(
        self,
        inner: Any,
        config: ServerConfig,
        *,
        registry: StrategyRegistry | None = None,
        max_in_flight: int = 64,
        on_demand: bool = True,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self._inner = inner
        self._config = config
        self._registry = registry if registry is not None else StrategyRegistry()
        self._max_in_flight = max_in_flight
        self._on_demand = on_demand
        self._reset()

    def _reset(self) -> None:
        self._monitor: Monitor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._starting: asyncio.Future[Monitor] | None = None
        self._syncing: asyncio.Lock | None = None
        self._closed = False
        self._warned_unserved = False
        self._complained_at = -math.inf

    # -- KServe's multi-worker REST server pickles the data plane into each worker ---------

    def __getstate__(self) -> dict[str, Any]:
        # A monitor is bound to one event loop in one process: each worker starts its own.
        # The registry (a pluggy manager) does not pickle; workers load the default one.
        return {
            "inner": self._inner,
            "config": self._config,
            "max_in_flight": self._max_in_flight,
            "on_demand": self._on_demand,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._inner = state["inner"]
        self._config = state["config"]
        self._max_in_flight = state["max_in_flight"]
        self._on_demand = state["on_demand"]
        self._registry = StrategyRegistry()
        self._reset()

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes this class lacks: those are the wrapped data plane's.
        if name.startswith("__") or name in ("_inner", "_config", "_registry"):
            raise AttributeError(name)
        return getattr(self._inner, name)

    # -- public -------------------------------------------------------------------------

    @property
    def inner(self) -> Any:
        """The wrapped KServe data plane."""
        return self._inner

    @property
    def config(self) -> ServerConfig:
        """The healthkit config as loaded (before registered models are merged in)."""
        return self._config

    @property
    def monitor(self) -> Monitor | None:
        """The running monitor, or ``None`` before the first start and after :meth:`aclose`."""
        return self._monitor

    async def astart(self) -> Monitor:
        """Start the monitor for the models KServe has registered; idempotent.

        Raises if a strategy cannot be created (a broken plugin, say), so the
        REST lifespan fails loudly at startup; :class:`~healthkit.ClosedError`
        after :meth:`aclose`, like every healthkit object.
        """
        if self._closed:
            raise ClosedError("healthkit's KServe monitor is closed")
        loop = asyncio.get_running_loop()
        if self._monitor is not None:
            if loop is not self._loop:
                raise RuntimeError("healthkit's KServe monitor runs in another event loop")
            return self._monitor
        if self._starting is None or _failed(self._starting):
            self._starting = loop.create_task(self._start(loop), name="healthkit-kserve-start")
        # Shielded: a readiness request that is cancelled must not cancel the start.
        return await asyncio.shield(self._starting)

    async def aclose(self) -> None:
        """Stop probing and close every strategy instance; readiness is false from now on."""
        self._closed = True
        starting, self._starting = self._starting, None
        if starting is not None and not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            await monitor.aclose()

    async def model_ready(
        self, model_name: str, disable_predictor_health_check: bool = False
    ) -> bool:
        """Whether ``model_name`` is ready; KServe's ``ModelNotFound`` if it is unknown."""
        if disable_predictor_health_check:
            # An inference request: KServe's own cheap check, never the monitor.
            return bool(await self._inner.model_ready(model_name, True))
        model = self._inner.model_registry.get_model(model_name)
        if model is None:
            from kserve.errors import ModelNotFound

            raise ModelNotFound(model_name)
        if not await _own_health(model_name, model):
            return False
        monitor = await self._current()
        if monitor is None:
            return False
        try:
            if self._on_demand:
                # From memory, revalidated in the background once older than cache_ttl;
                # only a model without a result yet waits (one shared, bounded check).
                return await monitor.aready(model_name)
            return monitor.is_ready(model_name)
        except asyncio.CancelledError:
            raise
        except Exception:  # KServe turns an exception into HTTP 500
            self._complain(f"model {model_name}: readiness unavailable; answering not ready")
            return False

    async def ready(self) -> bool:
        """Whether every registered model is ready (Open Inference Protocol server readiness)."""
        monitor = await self._current()
        if monitor is None:
            return False
        try:
            ready = await monitor.aserver_ready() if self._on_demand else monitor.server_ready()
            if not ready:
                return False
        except asyncio.CancelledError:
            raise
        except Exception:  # KServe turns an exception into HTTP 500
            self._complain("server readiness unavailable; answering not ready")
            return False
        models = dict(self._inner.model_registry.get_models())
        for name, model in models.items():
            if not await _own_health(name, model):
                return False
        return True

    # -- internals ----------------------------------------------------------------------

    async def _current(self) -> Monitor | None:
        """The running monitor, in step with KServe's registry; ``None`` if there is none."""
        if self._closed:
            return None
        try:
            monitor = await self.astart()
            await self._sync(monitor)
        except asyncio.CancelledError:
            raise
        except Exception:  # KServe turns an exception into HTTP 500
            self._complain("healthkit monitor unavailable; answering not ready")
            return None
        return monitor

    def _complain(self, message: str) -> None:
        """Log the current exception, at most once per ``_COMPLAIN_EVERY`` seconds.

        A probe burst against a broken setup must not flood the log.
        """
        now = time.monotonic()
        if now - self._complained_at >= _COMPLAIN_EVERY:
            self._complained_at = now
            log.exception(message)
        else:
            log.debug(message, exc_info=True)

    def _registered(self) -> list[str]:
        return list(self._inner.model_registry.get_models())

    def _server_config(self, names: Iterable[str]) -> ServerConfig:
        models: dict[str, ModelConfig] = {}
        for name in names:
            mc = self._config.models.get(name)
            if mc is None:
                mc = ModelConfig(
                    name=name, check=self._config.default, monitor=self._config.default_monitor
                )
            models[name] = mc
        return attrs.evolve(self._config, models=models)

    async def _start(self, loop: asyncio.AbstractEventLoop) -> Monitor:
        names = self._registered()
        self._warn_unserved(names)
        kit = HealthKit(self._server_config(names), registry=self._registry)
        monitor = Monitor(kit, max_in_flight=self._max_in_flight)
        try:
            await monitor.start()
        except BaseException:
            await monitor.aclose()
            raise
        if self._closed:  # closed while starting
            await monitor.aclose()
            raise ClosedError("healthkit's KServe monitor is closed")
        self._monitor, self._loop = monitor, loop
        log.info(
            "healthkit monitors %d model(s): %s",
            len(names),
            ", ".join(f"{n} ({monitor.kit.config.models[n].check.strategy})" for n in names) or "-",
        )
        return monitor

    async def _sync(self, monitor: Monitor) -> None:
        """Follow models that KServe loaded or unloaded since the monitor started."""
        if set(self._registered()) == set(monitor.models):
            return
        if self._syncing is None:
            self._syncing = asyncio.Lock()
        async with self._syncing:
            names = self._registered()
            if set(names) == set(monitor.models):
                return
            plan = await monitor.areload(self._server_config(names))
            log.info("healthkit follows KServe's models: %s", plan)

    def _warn_unserved(self, names: list[str]) -> None:
        unserved = sorted(set(self._config.models) - set(names))
        if unserved and not self._warned_unserved:
            self._warned_unserved = True
            log.warning(
                "healthkit config names model(s) this server does not serve (typo?): %s",
                ", ".join(unserved),
            )

    def __repr__(self) -> str:
        return f"<KServeHealth inner={type(self._inner).__name__} monitor={self._monitor!r}>"


def _failed(task: asyncio.Future[Any]) -> bool:
    return task.done() and (task.cancelled() or task.exception() is not None)


async def _own_health(name: str, model: Any) -> bool:
    """The model's own ``healthy()`` (KServe's default is its ``ready`` flag)."""
    try:
        return bool(await model.healthy())
    except asyncio.CancelledError:
        raise
    except Exception:  # a broken healthy() means not ready, never HTTP 500
        log.exception("model %s: healthy() raised; answering not ready", name)
        return False


def _hook_lifespan(plane: KServeHealth) -> bool:
    """Start and stop the monitor with the REST server's ASGI lifespan.

    KServe's REST server serves the module-level ``kserve.model_server.app``;
    uvicorn runs its lifespan in the serving event loop (which the gRPC server
    shares) before it accepts a connection, and again on shutdown.
    """
    from kserve import model_server

    router = getattr(getattr(model_server, "app", None), "router", None)
    inner: Callable[[Any], contextlib.AbstractAsyncContextManager[Any]] | None = getattr(
        router, "lifespan_context", None
    )
    if router is None or inner is None:
        log.warning(
            "KServe app has no lifespan hook; healthkit starts on the first readiness request"
        )
        return False

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with inner(app) as state:
            await plane.astart()
            try:
                yield state
            finally:
                await plane.aclose()

    router.lifespan_context = lifespan
    return True


def install(
    server: Any,
    config: ConfigSource,
    *,
    registry: StrategyRegistry | None = None,
    max_in_flight: int = 64,
    on_demand: bool = True,
) -> KServeHealth:
    """Give a ``kserve.ModelServer`` per-model predictor health checks from a healthkit config.

    Call it after creating the server and before ``server.start(models)``::

        server = kserve.ModelServer()
        healthkit.kserve.install(server, "healthkit.toml")
        server.start(models)

    ``config`` is a file (TOML, YAML, JSON), a mapping or a loaded
    :class:`~healthkit.ServerConfig`; it is validated now, so a bad config
    fails before the server starts (:class:`~healthkit.ConfigError`). Models
    the config does not name use its ``defaults``. KServe's own
    ``--enable_predictor_health_check`` is superseded.

    ``max_in_flight`` caps concurrent upstream checks; ``on_demand`` is
    described in :class:`KServeHealth`. Returns the installed
    :class:`KServeHealth` (now ``server.dataplane``).
    """
    if isinstance(server.dataplane, KServeHealth):
        raise ValueError("healthkit is already installed on this ModelServer")
    registry = registry if registry is not None else StrategyRegistry()
    loaded = config if isinstance(config, ServerConfig) else load_config(config, registry=registry)
    plane = KServeHealth(
        server.dataplane,
        loaded,
        registry=registry,
        max_in_flight=max_in_flight,
        on_demand=on_demand,
    )
    predictor = getattr(server.dataplane, "predictor_config", None)
    if getattr(predictor, "predictor_health_check", False):
        log.info("--enable_predictor_health_check is superseded by healthkit's per-model checks")
    server.dataplane = plane
    _hook_lifespan(plane)
    return plane
