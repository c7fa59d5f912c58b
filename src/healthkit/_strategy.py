"""The strategy interface: what a plugin implements and registers."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

from ._result import CheckResult, Target

__all__ = [
    "CONCURRENCY",
    "ISOLATION_MODES",
    "BatchStrategy",
    "DeadlineConfig",
    "HealthCheckStrategy",
    "Isolation",
    "Strategy",
    "StrategyContext",
    "StrategyFactory",
    "StrategySpec",
    "StrategyType",
    "concurrency_of",
]


@runtime_checkable
class HealthCheckStrategy(Protocol):
    """A live health-check strategy instance, shared by every model whose config is equal.

    The interface a plugin implements (the design's ``HealthCheckStrategy``;
    ``healthkit.Strategy`` is the same protocol under its older name).

    ``acheck`` should not raise: healthkit turns an exception into an
    ``unhealthy`` result anyway, but a strategy knows better what went wrong.
    ``aclose`` releases clients, channels and tasks; it is called once, when the
    last model using this instance is released.
    """

    async def acheck(self, target: Target) -> CheckResult: ...

    async def aclose(self) -> None: ...


#: Attribute of a strategy instance: how many of its checks can make progress at once
#: (``http``: its connections). The monitor and ``HealthKit.acheck_all`` start no more
#: than that at a time and queue the rest themselves, before their deadline starts:
#: queued inside the strategy, a check spent its timeout waiting for a connection and a
#: slow but healthy upstream read down.
CONCURRENCY = "_healthkit_concurrency"


def concurrency_of(instance: object) -> int | None:
    """The instance's :data:`CONCURRENCY` (a positive int), else ``None``: no limit of its own."""
    cap = getattr(instance, CONCURRENCY, None)
    if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0:
        return cap
    return None


#: The older name of :class:`HealthCheckStrategy`, kept working: the very same protocol.
Strategy = HealthCheckStrategy


@runtime_checkable
class BatchStrategy(HealthCheckStrategy, Protocol):
    """A strategy that can answer many targets with one upstream call."""

    async def acheck_many(self, targets: Sequence[Target]) -> Mapping[Target, CheckResult]: ...


#: Where a strategy's checks run: ``none`` on the caller's event loop, ``thread`` on an
#: event loop of the instance's own, in a worker thread (see docs/reliability.md).
Isolation = Literal["none", "thread"]
ISOLATION_MODES: tuple[Isolation, ...] = ("none", "thread")


@attrs.frozen(kw_only=True)
class StrategySpec:
    """A strategy name plus its validated config: the key the resolver dedupes on.

    Two specs are equal when the strategy, the isolation mode and every
    normalized config field are equal, whatever the spelling or key order of
    the source config.
    """

    strategy: str
    config: Any
    #: ``"thread"`` runs the instance on a worker thread's own event loop, so a
    #: check that blocks cannot freeze the caller's loop.
    isolation: Isolation = "none"


@runtime_checkable
class DeadlineConfig(Protocol):
    """A strategy config whose one check may call its upstream more than once.

    The monitor's hard cap of one check is ``check_deadline(timeout)`` plus a
    little grace, where ``timeout`` is the model's per-attempt ``timeout``. A
    config without this method gets one attempt: the cap is ``timeout`` plus
    grace. A retrying strategy declares it, say with ``retries`` extra attempts
    and at most ``pause`` seconds between two::

        def check_deadline(self, timeout: float) -> float:
            return timeout * (self.retries + 1) + pause * self.retries

    It must return a positive number of seconds and not raise; when it does not,
    healthkit uses one attempt and logs a warning once per config class.
    """

    def check_deadline(self, timeout: float) -> float: ...


class StrategyContext(Protocol):
    """Given to a strategy factory; lets composite strategies share children."""

    def acquire(self, spec: StrategySpec) -> HealthCheckStrategy:
        """Get the shared instance for a child spec, held until this instance closes."""
        ...


#: Builds a strategy instance from its validated config.
StrategyFactory = Callable[[Any, StrategyContext], HealthCheckStrategy]


@attrs.frozen(kw_only=True)
class StrategyType:
    """A registered strategy: its name, config class, factory and origin."""

    name: str
    config_class: type[Any]
    factory: StrategyFactory
    description: str = ""
    #: When set, the strategy cannot be used here and this says why (a missing extra, say).
    unavailable: str | None = None
    plugin: str = ""
    distribution: str | None = None
    version: str | None = None

    @property
    def origin(self) -> str:
        """``plugin (distribution version)``, for messages."""
        if self.distribution is None:
            return f"plugin {self.plugin!r}"
        version = f" {self.version}" if self.version else ""
        return f"plugin {self.plugin!r} ({self.distribution}{version})"
