"""The facade: a config, a registry and a resolver; check one model or all of them."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

import attrs

from ._config import ServerConfig, load_config
from ._errors import ClosedError
from ._frozen import FrozenMap
from ._guard import close_loop, deadline_for, guarded_check
from ._redact import Redactor
from ._registry import StrategyRegistry
from ._resolver import ReloadPlan, Resolver, ResolverStats
from ._result import CheckResult
from ._status import Status, worst_status
from ._strategy import concurrency_of

__all__ = ["HealthKit", "HealthReport"]

T = TypeVar("T")

#: Default cap on concurrent checks in :meth:`HealthKit.acheck_all`.
DEFAULT_CONCURRENCY = 64


class _Lifecycle(enum.Enum):
    """Where a kit is in its life: it only ever moves forward."""

    NEW = "new"  # no instance created yet (the first check or astart creates them)
    STARTED = "started"
    CLOSED = "closed"


@attrs.frozen(kw_only=True)
class HealthReport:
    """Results of checking many models at once, and the aggregate status."""

    status: Status
    results: FrozenMap[str, CheckResult]
    resolver: ResolverStats

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``healthkit check --format json`` (the CLI calls this very method).

        Each model is :meth:`CheckResult.to_dict`: every key always present,
        ``children`` an empty list for a leaf.
        """
        return {
            "status": self.status.value,
            "models": {name: result.to_dict() for name, result in self.results.items()},
            "resolver": self.resolver.to_dict(),
        }


class HealthKit:
    """Per-model health checks from one config, with equal configs sharing an instance.

    Async first (``acheck``, ``acheck_all``, ``areload``, ``aclose``); the sync
    methods (``check``, ``check_all``, ``reload``, ``close``) run the same code
    on a private event loop and may not be called from inside a running loop.
    Strategy instances are created on first use, inside the event loop.
    ``close_timeout`` bounds each instance's ``aclose()`` (default 5 s; see
    :class:`~healthkit.Resolver`).
    """

    def __init__(
        self,
        config: ServerConfig,
        *,
        registry: StrategyRegistry | None = None,
        close_timeout: float | None = None,
    ) -> None:
        self._registry = registry if registry is not None else StrategyRegistry()
        self._config = config
        self._resolver = Resolver(self._registry, close_timeout=close_timeout)
        self._state = _Lifecycle.NEW
        self._loop: asyncio.AbstractEventLoop | None = None
        self._redactor: tuple[ServerConfig, Redactor] | None = None

    @classmethod
    def from_config(
        cls,
        source: str | os.PathLike[str] | Mapping[str, Any],
        *,
        registry: StrategyRegistry | None = None,
        close_timeout: float | None = None,
    ) -> HealthKit:
        """Load a config file (TOML, JSON, YAML) or mapping; raises ``ConfigError``."""
        registry = registry if registry is not None else StrategyRegistry()
        config = load_config(source, registry=registry)
        return cls(config, registry=registry, close_timeout=close_timeout)

    # -- properties ---------------------------------------------------------------

    @property
    def config(self) -> ServerConfig:
        return self._config

    @property
    def registry(self) -> StrategyRegistry:
        return self._registry

    @property
    def resolver(self) -> Resolver:
        return self._resolver

    @property
    def models(self) -> list[str]:
        return list(self._config.models)

    def stats(self) -> ResolverStats:
        return self._resolver.stats()

    # -- async API ----------------------------------------------------------------

    @property
    def redactor(self) -> Redactor:
        """Masks every secret of the current config (and its ``${VAR}`` values) in text."""
        # Built once per config: a reload brings a new one.
        if self._redactor is None or self._redactor[0] is not self._config:
            self._redactor = (self._config, Redactor.for_config(self._config))
        return self._redactor[1]

    def redact(self, result: CheckResult) -> CheckResult:
        """``result`` with the config's secrets masked: see :meth:`Redactor.result`."""
        return self.redactor.result(result)

    async def astart(self) -> None:
        """Create the shared strategy instances (done on first check otherwise)."""
        if self._state is _Lifecycle.CLOSED:
            raise ClosedError("HealthKit is closed")
        if self._state is _Lifecycle.NEW:
            await self._resolver.apply({m.name: m.check for m in self._config.models.values()})
            self._advance_to_started()

    async def acheck(self, model: str, *, version: str | None = None) -> CheckResult:
        """Check one model (by its configured name). Never raises for a failing check.

        Raises ``KeyError`` for a model that is not in the config.
        """
        await self.astart()
        mc = self._config.models.get(model)
        if mc is None:
            raise KeyError(f"unknown model {model!r}")
        target = mc.target_for(version if version is not None else mc.version)
        instance = self._resolver.get(model)
        # The strategy's own timeout counts per attempt; this is the hard cap of the whole check.
        result = await guarded_check(
            instance, mc.check.strategy, target, timeout=deadline_for(mc.check, mc.monitor)
        )
        return self.redact(result)

    async def acheck_all(self, *, concurrency: int = DEFAULT_CONCURRENCY) -> HealthReport:
        """Check every model, at most ``concurrency`` at a time."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        await self.astart()
        gate = asyncio.Semaphore(concurrency)
        # An instance that makes progress on only so many checks at once (an http
        # instance: its connections) gets no more: the rest wait here, before their
        # deadline starts and holding none of the ``concurrency`` slots meanwhile.
        own: dict[int, asyncio.Semaphore] = {}

        def own_gate(name: str) -> contextlib.AbstractAsyncContextManager[Any]:
            try:
                instance = self._resolver.get(name)
            except KeyError:  # acheck says why
                return contextlib.nullcontext()
            cap = concurrency_of(instance)
            if cap is None:
                return contextlib.nullcontext()
            sem = own.get(id(instance))
            if sem is None:
                sem = own[id(instance)] = asyncio.Semaphore(cap)
            return sem

        async def one(name: str) -> tuple[str, CheckResult]:
            async with own_gate(name), gate:
                return name, await self.acheck(name)

        pairs = await asyncio.gather(*(one(name) for name in self._config.models))
        results = FrozenMap(dict(pairs))
        return HealthReport(
            status=worst_status(r.status for r in results.values()),
            results=results,
            resolver=self._resolver.stats(),
        )

    async def areload(
        self, config: ServerConfig | str | os.PathLike[str] | Mapping[str, Any]
    ) -> ReloadPlan:
        """Switch to ``config``; models whose spec is unchanged keep their instance.

        ``config`` is a loaded :class:`ServerConfig`, or what :meth:`from_config`
        takes (a file path or a mapping), loaded with this kit's registry. A
        config that does not load raises ``ConfigError`` and changes nothing.
        """
        if self._state is _Lifecycle.CLOSED:
            raise ClosedError("HealthKit is closed")
        if not isinstance(config, ServerConfig):
            config = load_config(config, registry=self._registry)
        plan = await self._resolver.apply({m.name: m.check for m in config.models.values()})
        self._config = config
        self._advance_to_started()
        return plan

    def _advance_to_started(self) -> None:
        # A close that came while instances were being created stays closed.
        if self._state is _Lifecycle.NEW:
            self._state = _Lifecycle.STARTED

    async def aclose(self) -> None:
        """Close every strategy instance; idempotent."""
        self._state = _Lifecycle.CLOSED
        await self._resolver.aclose()

    async def __aenter__(self) -> HealthKit:
        await self.astart()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- sync facade ----------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise RuntimeError("inside a running event loop: use the async methods (acheck, ...)")
        if self._loop is None or self._loop.is_closed():
            if self._state is _Lifecycle.CLOSED:
                # Report the closed state without leaving a fresh, unclosed loop behind.
                coro.close()
                raise ClosedError("HealthKit is closed")
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coro)

    def check(self, model: str, *, version: str | None = None) -> CheckResult:
        return self._run(self.acheck(model, version=version))

    def check_all(self, *, concurrency: int = DEFAULT_CONCURRENCY) -> HealthReport:
        return self._run(self.acheck_all(concurrency=concurrency))

    def reload(
        self, config: ServerConfig | str | os.PathLike[str] | Mapping[str, Any]
    ) -> ReloadPlan:
        """:meth:`areload` on the private loop: a config, a file path or a mapping."""
        return self._run(self.areload(config))

    def close(self) -> None:
        if self._state is _Lifecycle.CLOSED and (self._loop is None or self._loop.is_closed()):
            return
        try:
            self._run(self.aclose())
        finally:
            if self._loop is not None and not self._loop.is_closed():
                # Checks abandoned past their deadline must not hold close() either.
                close_loop(self._loop)

    def __enter__(self) -> HealthKit:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        stats = self._resolver.stats()
        return f"<HealthKit models={len(self._config.models)} instances={stats.instances}>"
