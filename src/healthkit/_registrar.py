"""What a plugin's hooks are handed: one plugin's strategies, or its notifiers.

It sits below the hook specifications and the registry (it needs only the
strategy records), so the built-in strategies, the hookspecs and the registry
all import it without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from ._errors import StrategyConflictError
from ._strategy import StrategyFactory, StrategyType

__all__ = ["NotifierRegistrar", "NotifierType", "StrategyRegistrar"]


class StrategyRegistrar:
    """Handed to ``healthkit_register_strategies``; collects one plugin's strategies."""

    def __init__(self, plugin: str, distribution: str | None, version: str | None) -> None:
        self._plugin = plugin
        self._distribution = distribution
        self._version = version
        self._added: list[StrategyType] = []

    def add(
        self,
        name: str,
        *,
        config: type[Any],
        factory: StrategyFactory,
        description: str = "",
        unavailable: str | None = None,
    ) -> None:
        """Register strategy ``name``.

        ``config`` is a frozen attrs class (its fields are the config keys);
        ``factory(config, context)`` builds an instance. ``unavailable`` marks a
        strategy that is known but cannot run here, with the reason (e.g. the
        extra to install); choosing it in a config is then an error.
        """
        if not isinstance(name, str) or not name or not name.replace("-", "_").isidentifier():
            raise ValueError(f"strategy name must be a non-empty identifier, got {name!r}")
        if not attrs.has(config):
            raise TypeError(f"strategy {name!r}: config must be an attrs class, got {config!r}")
        if not callable(factory):
            raise TypeError(f"strategy {name!r}: factory must be callable")
        if any(s.name == name for s in self._added):
            raise StrategyConflictError(f"plugin {self._plugin!r} registers {name!r} twice")
        self._added.append(
            StrategyType(
                name=name,
                config_class=config,
                factory=factory,
                description=description,
                unavailable=unavailable,
                plugin=self._plugin,
                distribution=self._distribution,
                version=self._version,
            )
        )

    @property
    def added(self) -> tuple[StrategyType, ...]:
        return tuple(self._added)


@attrs.frozen(kw_only=True)
class NotifierType:
    """A notifier a plugin registered: its config class and how to build one."""

    name: str
    config_class: type[Any]
    #: ``factory(config)`` -> an object with ``async send(notification)`` and ``async aclose()``.
    factory: Callable[[Any], Any]
    description: str = ""
    plugin: str = ""
    distribution: str | None = None
    version: str | None = None

    @property
    def origin(self) -> str:
        parts = [p for p in (self.distribution, self.version) if p]
        return f"plugin {self.plugin!r}" + (f" ({' '.join(parts)})" if parts else "")


class NotifierRegistrar:
    """Handed to ``healthkit_register_notifiers``; collects one plugin's notifiers."""

    def __init__(self, plugin: str, distribution: str | None, version: str | None) -> None:
        self._plugin = plugin
        self._distribution = distribution
        self._version = version
        self._added: list[NotifierType] = []

    def add(
        self,
        name: str,
        *,
        config: type[Any],
        factory: Callable[[Any], Any],
        description: str = "",
    ) -> None:
        """Register notifier ``name`` (the ``type`` of a ``[[notifiers]]`` entry).

        ``config`` is a frozen attrs class (its fields are the entry's own keys);
        ``factory(config)`` builds a notifier: an object with
        ``async send(notification)`` (raises when delivery failed) and ``async aclose()``.
        """
        if not isinstance(name, str) or not name or not name.replace("-", "_").isidentifier():
            raise ValueError(f"notifier name must be a non-empty identifier, got {name!r}")
        if not attrs.has(config):
            raise TypeError(f"notifier {name!r}: config must be an attrs class, got {config!r}")
        if not callable(factory):
            raise TypeError(f"notifier {name!r}: factory must be callable")
        if any(n.name == name for n in self._added):
            raise StrategyConflictError(
                f"plugin {self._plugin!r} registers notifier {name!r} twice"
            )
        self._added.append(
            NotifierType(
                name=name,
                config_class=config,
                factory=factory,
                description=description,
                plugin=self._plugin,
                distribution=self._distribution,
                version=self._version,
            )
        )

    @property
    def added(self) -> tuple[NotifierType, ...]:
        return tuple(self._added)
