"""The strategy interface: what a plugin implements and registers."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from ._result import CheckResult, Target

__all__ = [
    "BatchStrategy",
    "Strategy",
    "StrategyContext",
    "StrategyFactory",
    "StrategySpec",
    "StrategyType",
]


@runtime_checkable
class Strategy(Protocol):
    """A live health-check strategy instance, shared by every model whose config is equal.

    ``acheck`` should not raise: healthkit turns an exception into an
    ``unhealthy`` result anyway, but a strategy knows better what went wrong.
    ``aclose`` releases clients, channels and tasks; it is called once, when the
    last model using this instance is released.
    """

    async def acheck(self, target: Target) -> CheckResult: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class BatchStrategy(Strategy, Protocol):
    """A strategy that can answer many targets with one upstream call."""

    async def acheck_many(self, targets: Sequence[Target]) -> Mapping[Target, CheckResult]: ...


@attrs.frozen(kw_only=True)
class StrategySpec:
    """A strategy name plus its validated config: the key the resolver dedupes on.

    Two specs are equal when the strategy and every normalized config field are
    equal, whatever the spelling or key order of the source config.
    """

    strategy: str
    config: Any


class StrategyContext(Protocol):
    """Given to a strategy factory; lets composite strategies share children."""

    def acquire(self, spec: StrategySpec) -> Strategy:
        """Get the shared instance for a child spec, held until this instance closes."""
        ...


#: Builds a strategy instance from its validated config.
StrategyFactory = Callable[[Any, StrategyContext], Strategy]


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
