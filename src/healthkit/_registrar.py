"""What a plugin's hooks are handed: one plugin's strategies, or its notifiers.

It sits below the hook specifications and the registry (it needs only the
strategy records), so the built-in strategies, the hookspecs and the registry
all import it without importing each other.

A config class or factory may be given as an import string
(``"package.module:Name"``): the registry imports it only when the strategy
(or notifier) is used, so a process that checks one http model never imports
the other strategies' modules.
"""

from __future__ import annotations

import pkgutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from ._errors import StrategyConflictError
from ._strategy import StrategyFactory, StrategyType

if TYPE_CHECKING:
    from ._notifier import NotifierType

__all__ = [
    "NotifierRegistrar",
    "PendingNotifier",
    "PendingStrategy",
    "StrategyRegistrar",
]


def _is_import_string(value: str) -> bool:
    module, sep, attr = value.partition(":")
    return bool(sep) and all(part.isidentifier() for part in (*module.split("."), *attr.split(".")))


def _imported(value: Any) -> Any:
    """``value``, or the object it names when it is an import string."""
    return pkgutil.resolve_name(value) if isinstance(value, str) else value


def _check_ref(what: str, name: str, key: str, value: object) -> None:
    """Refuse a malformed import string now: a typo must fail the plugin at registration."""
    if isinstance(value, str) and not _is_import_string(value):
        expected = "an attrs class" if key == "config" else "callable"
        raise TypeError(
            f"{what} {name!r}: {key} must be {expected} or an import string "
            f"'package.module:Name', got {value!r}"
        )


def _check_config(what: str, name: str, config: object) -> None:
    if not attrs.has(config):  # type: ignore[arg-type]  # any object may come from a plugin
        raise TypeError(f"{what} {name!r}: config must be an attrs class, got {config!r}")


def _check_factory(what: str, name: str, factory: object) -> None:
    if not callable(factory):
        raise TypeError(f"{what} {name!r}: factory must be callable")


def _check_name(what: str, name: object) -> None:
    if not isinstance(name, str) or not name or not name.replace("-", "_").isidentifier():
        raise ValueError(f"{what} name must be a non-empty identifier, got {name!r}")


def _origin(plugin: str, distribution: str | None, version: str | None) -> str:
    if distribution is None:
        return f"plugin {plugin!r}"
    return f"plugin {plugin!r} ({distribution}{f' {version}' if version else ''})"


class _Pending:
    """A strategy or notifier as a plugin added it: what is known without importing it.

    ``config`` and ``factory`` may be import strings, imported when it is used. A
    plain class rather than an attrs one: it is internal, and every registration of
    every registry builds one.
    """

    __slots__ = ("config", "description", "distribution", "factory", "name", "plugin", "version")

    def __init__(
        self,
        *,
        name: str,
        config: type[Any] | str,
        factory: Callable[..., Any] | str,
        description: str,
        plugin: str,
        distribution: str | None,
        version: str | None,
    ) -> None:
        self.name = name
        self.config = config
        self.factory = factory
        self.description = description
        self.plugin = plugin
        self.distribution = distribution
        self.version = version

    @property
    def origin(self) -> str:
        """``plugin 'p' (distribution version)``, for messages."""
        return _origin(self.plugin, self.distribution, self.version)

    def imported(self) -> tuple[Any, Any]:
        """The config class and factory, importing those named by string (raises what the
        import raised)."""
        return _imported(self.config), _imported(self.factory)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} of {self.origin}>"


class PendingStrategy(_Pending):
    """A strategy as a plugin added it.

    Name, description, ``unavailable`` and origin are known at once (listing
    names and detecting conflicts import nothing); ``config`` and ``factory`` may
    be import strings, imported by :meth:`imported` when the strategy is used.
    """

    __slots__ = ("unavailable",)

    def __init__(
        self,
        *,
        name: str,
        config: type[Any] | str,
        factory: StrategyFactory | str,
        description: str,
        unavailable: str | None,
        plugin: str,
        distribution: str | None,
        version: str | None,
    ) -> None:
        super().__init__(
            name=name,
            config=config,
            factory=factory,
            description=description,
            plugin=plugin,
            distribution=distribution,
            version=version,
        )
        self.unavailable = unavailable

    def resolve(self, config: Any, factory: Any) -> StrategyType:
        """The record, once :meth:`imported`: ``TypeError`` for an object that is not
        what ``add`` asks for."""
        _check_config("strategy", self.name, config)
        _check_factory("strategy", self.name, factory)
        return StrategyType(
            name=self.name,
            config_class=config,
            factory=factory,
            description=self.description,
            unavailable=self.unavailable,
            plugin=self.plugin,
            distribution=self.distribution,
            version=self.version,
        )


class StrategyRegistrar:
    """Handed to ``healthkit_register_strategies``; collects one plugin's strategies."""

    def __init__(self, plugin: str, distribution: str | None, version: str | None) -> None:
        self._plugin = plugin
        self._distribution = distribution
        self._version = version
        self._added: list[PendingStrategy] = []

    def add(
        self,
        name: str,
        *,
        config: type[Any] | str,
        factory: StrategyFactory | str,
        description: str = "",
        unavailable: str | None = None,
    ) -> None:
        """Register strategy ``name``.

        ``config`` is a frozen attrs class (its fields are the config keys);
        ``factory(config, context)`` builds an instance. Either may be an import
        string ``"package.module:Name"`` (``"package.module:Class.create"`` for a
        method), imported only when the strategy is used: a config names it, or
        its fields are listed. ``unavailable`` marks a strategy that is known but
        cannot run here, with the reason (e.g. the extra to install); choosing it
        in a config is then an error.
        """
        _check_name("strategy", name)
        _check_ref("strategy", name, "config", config)
        _check_ref("strategy", name, "factory", factory)
        if not isinstance(config, str):
            _check_config("strategy", name, config)
        if not isinstance(factory, str):
            _check_factory("strategy", name, factory)
        if any(s.name == name for s in self._added):
            raise StrategyConflictError(f"plugin {self._plugin!r} registers {name!r} twice")
        self._added.append(
            PendingStrategy(
                name=name,
                config=config,
                factory=factory,
                description=description,
                unavailable=unavailable,
                plugin=self._plugin,
                distribution=self._distribution,
                version=self._version,
            )
        )

    @property
    def added(self) -> tuple[PendingStrategy, ...]:
        return tuple(self._added)


class PendingNotifier(_Pending):
    """A notifier as a plugin added it; like :class:`PendingStrategy`, imported on use."""

    __slots__ = ()

    def resolve(self, config: Any, factory: Any) -> NotifierType:
        # Here, not at the top: the record is needed only by a config with notifiers.
        from ._notifier import NotifierType

        _check_config("notifier", self.name, config)
        _check_factory("notifier", self.name, factory)
        return NotifierType(
            name=self.name,
            config_class=config,
            factory=factory,
            description=self.description,
            plugin=self.plugin,
            distribution=self.distribution,
            version=self.version,
        )


class NotifierRegistrar:
    """Handed to ``healthkit_register_notifiers``; collects one plugin's notifiers."""

    def __init__(self, plugin: str, distribution: str | None, version: str | None) -> None:
        self._plugin = plugin
        self._distribution = distribution
        self._version = version
        self._added: list[PendingNotifier] = []

    def add(
        self,
        name: str,
        *,
        config: type[Any] | str,
        factory: Callable[[Any], Any] | str,
        description: str = "",
    ) -> None:
        """Register notifier ``name`` (the ``type`` of a ``[[notifiers]]`` entry).

        ``config`` is a frozen attrs class (its fields are the entry's own keys);
        ``factory(config)`` builds a notifier: an object with
        ``async send(notification)`` (raises when delivery failed) and ``async aclose()``.
        Either may be an import string ``"package.module:Name"``, imported only
        when a config has a ``[[notifiers]]`` entry (or the notifiers are listed).
        """
        _check_name("notifier", name)
        _check_ref("notifier", name, "config", config)
        _check_ref("notifier", name, "factory", factory)
        if not isinstance(config, str):
            _check_config("notifier", name, config)
        if not isinstance(factory, str):
            _check_factory("notifier", name, factory)
        if any(n.name == name for n in self._added):
            raise StrategyConflictError(
                f"plugin {self._plugin!r} registers notifier {name!r} twice"
            )
        self._added.append(
            PendingNotifier(
                name=name,
                config=config,
                factory=factory,
                description=description,
                plugin=self._plugin,
                distribution=self._distribution,
                version=self._version,
            )
        )

    @property
    def added(self) -> tuple[PendingNotifier, ...]:
        return tuple(self._added)
