"""The strategy registry: one pluggy plugin manager, built-ins and entry points."""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import traceback
import types
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import pluggy

from . import _hookspecs
from ._errors import StrategyConflictError, UnknownStrategyError
from ._strategy import StrategyFactory, StrategyType

__all__ = [
    "DISABLE_ENV_VAR",
    "ENTRY_POINT_GROUP",
    "PLUGINS_ENV_VAR",
    "TRACEBACK_ENV_VAR",
    "PluginFailure",
    "PluginInfo",
    "StrategyRegistrar",
    "StrategyRegistry",
    "traceback_enabled",
]

log = logging.getLogger("healthkit")

ENTRY_POINT_GROUP = "healthkit"
DISABLE_ENV_VAR = "HEALTHKIT_DISABLE_PLUGINS"
#: Plugin modules to load without installing them (``healthkit -p MODULE``), comma-separated.
PLUGINS_ENV_VAR = "HEALTHKIT_PLUGINS"
#: ``1`` logs each plugin failure with its traceback at WARNING (``healthkit --traceback``).
TRACEBACK_ENV_VAR = "HEALTHKIT_TRACEBACK"
BUILTIN_PLUGIN = "healthkit.builtin"


@attrs.frozen(kw_only=True)
class PluginInfo:
    """A plugin that loaded, and the strategies it registered."""

    name: str
    distribution: str | None
    version: str | None
    strategies: tuple[str, ...]


@attrs.frozen(kw_only=True)
class PluginFailure:
    """A plugin (or one of its strategies) that could not be used, and why.

    ``stage`` is ``import`` (loading the entry point), ``register`` (the hook
    raised or the plugin is malformed), ``conflict`` (a strategy name already
    taken) or ``disabled`` (blocked by ``HEALTHKIT_DISABLE_PLUGINS``).
    ``traceback`` is the formatted traceback of the exception, if one was raised.
    """

    name: str
    distribution: str | None
    version: str | None
    stage: str
    error_type: str
    message: str
    traceback: str = attrs.field(default="", eq=False, repr=False)

    def __str__(self) -> str:
        origin = " ".join(part for part in (self.distribution, self.version) if part)
        dist = f" ({origin})" if origin else ""
        return f"{self.name}{dist}: {self.stage} failed: {self.error_type}: {self.message}"


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


def _parse_names(value: str | Iterable[str]) -> tuple[str, ...]:
    """``"a, b,,c"`` or ``["a", " b"]`` -> ``("a", "b", "c")``, first occurrence kept."""
    parts = value.split(",") if isinstance(value, str) else value
    return tuple(dict.fromkeys(part.strip() for part in parts if part.strip()))


def _parse_disabled(value: str | Iterable[str]) -> frozenset[str]:
    return frozenset(_parse_names(value))


def traceback_enabled() -> bool:
    """Whether ``HEALTHKIT_TRACEBACK`` asks for plugin failure tracebacks."""
    return os.environ.get(TRACEBACK_ENV_VAR, "").strip().lower() not in ("", "0", "false", "no")


def _format(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _dist_of(ep: importlib.metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


class StrategyRegistry:
    """Every strategy this process can use, by name.

    Each registry owns its own :class:`pluggy.PluginManager`: built-in
    strategies register first, then ``plugins`` passed here, then (unless
    ``entry_points=False``) every entry point in group ``healthkit``. A plugin
    that fails to import or to register is recorded in :attr:`failures` and
    skipped; the others keep working. ``disabled`` names entry points to skip;
    by default it is read from ``HEALTHKIT_DISABLE_PLUGINS`` (comma-separated).
    ``modules`` names plugin modules to import and register without installing
    them (like ``pytest -p``), after ``plugins`` and before the entry points,
    with the same isolation; by default it is read from ``HEALTHKIT_PLUGINS``.

    Failures are logged at DEBUG (with ``HEALTHKIT_TRACEBACK=1``: at WARNING,
    with the traceback): they show where they matter, in ``healthkit plugins``
    and in the error for a strategy name that no plugin registered.
    """

    def __init__(
        self,
        *,
        plugins: Iterable[object] = (),
        entry_points: bool = True,
        builtins: bool = True,
        disabled: str | Iterable[str] | None = None,
        modules: str | Iterable[str] | None = None,
    ) -> None:
        self._pm = pluggy.PluginManager(_hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(_hookspecs)
        self._strategies: dict[str, StrategyType] = {}
        self._plugins: list[PluginInfo] = []
        self._failures: list[PluginFailure] = []
        self._disabled = _parse_disabled(
            disabled if disabled is not None else os.environ.get(DISABLE_ENV_VAR, "")
        )
        if builtins:
            from .strategies import _builtin

            self._add_plugin(_builtin, BUILTIN_PLUGIN, "healthkit", _own_version())
        for index, plugin in enumerate(plugins):
            name = getattr(plugin, "__name__", None) or f"{type(plugin).__name__}#{index}"
            self._add_plugin(plugin, name, None, None)
        self._modules = _parse_names(
            modules if modules is not None else os.environ.get(PLUGINS_ENV_VAR, "")
        )
        for module_name in self._modules:
            self._load_module(module_name)
        if entry_points:
            self._load_entry_points()

    # -- loading -------------------------------------------------------------

    def _load_module(self, name: str) -> None:
        try:
            module = importlib.import_module(name)
        except (Exception, SystemExit) as exc:  # a plugin must never take the host down
            self._fail(name, None, None, "import", type(exc).__name__, str(exc), exc)
            return
        self._add_plugin(module, name, None, None)

    def _load_entry_points(self) -> None:
        eps = sorted(
            importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name
        )
        seen: set[str] = set()
        for ep in eps:
            if ep.name in seen:
                # The same distribution can be visible twice on sys.path.
                continue
            seen.add(ep.name)
            dist, version = _dist_of(ep)
            if ep.name in self._disabled:
                self._fail(
                    ep.name, dist, version, "disabled", "Disabled", f"blocked by {DISABLE_ENV_VAR}"
                )
                continue
            try:
                plugin = ep.load()
            except (Exception, SystemExit) as exc:  # a plugin must never take the host down
                self._fail(ep.name, dist, version, "import", type(exc).__name__, str(exc), exc)
                continue
            self._add_plugin(plugin, ep.name, dist, version)

    def _fail(
        self,
        name: str,
        dist: str | None,
        version: str | None,
        stage: str,
        etype: str,
        msg: str,
        exc: BaseException | None = None,
    ) -> None:
        failure = PluginFailure(
            name=name,
            distribution=dist,
            version=version,
            stage=stage,
            error_type=etype,
            message=msg,
            traceback="" if exc is None else _format(exc),
        )
        self._failures.append(failure)
        # Not a warning on every command: a failure matters when its strategy is
        # asked for (see unknown_strategy_hint) or the user lists the plugins.
        if traceback_enabled() and stage != "disabled":
            log.warning("healthkit plugin %s\n%s", failure, failure.traceback.rstrip())
        else:
            log.debug("healthkit plugin %s", failure)

    def _add_plugin(self, plugin: object, name: str, dist: str | None, version: str | None) -> None:
        try:
            self._pm.register(plugin, name=name)
        except Exception as exc:  # pluggy validation, a name already taken, ...
            self._fail(name, dist, version, "register", type(exc).__name__, str(exc), exc)
            return
        registrar = StrategyRegistrar(name, dist, version)
        try:
            for impl in self._pm.hook.healthkit_register_strategies.get_hookimpls():
                if impl.plugin is plugin:
                    kwargs = {"registrar": registrar}
                    impl.function(**{k: kwargs[k] for k in impl.argnames})
        except (Exception, SystemExit) as exc:  # a plugin must never take the host down
            self._pm.unregister(plugin)
            self._fail(name, dist, version, "register", type(exc).__name__, str(exc), exc)
            return
        accepted: list[str] = []
        for stype in registrar.added:
            existing = self._strategies.get(stype.name)
            if existing is not None:
                msg = (
                    f"strategy {stype.name!r} from {stype.origin} is already registered by "
                    f"{existing.origin}; keeping the first"
                )
                self._fail(name, dist, version, "conflict", StrategyConflictError.__name__, msg)
                continue
            self._strategies[stype.name] = stype
            accepted.append(stype.name)
        self._plugins.append(
            PluginInfo(name=name, distribution=dist, version=version, strategies=tuple(accepted))
        )

    # -- queries -------------------------------------------------------------

    @property
    def disabled(self) -> frozenset[str]:
        """Entry-point names skipped (``disabled=``, else ``HEALTHKIT_DISABLE_PLUGINS``)."""
        return self._disabled

    @property
    def modules(self) -> tuple[str, ...]:
        """Plugin modules loaded by name (``modules=``, else ``HEALTHKIT_PLUGINS``)."""
        return self._modules

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """This registry's own plugin manager (never shared with another registry)."""
        return self._pm

    @property
    def strategies(self) -> Mapping[str, StrategyType]:
        """Registered strategies by name, sorted."""
        return types.MappingProxyType(dict(sorted(self._strategies.items())))

    @property
    def plugins(self) -> tuple[PluginInfo, ...]:
        return tuple(self._plugins)

    @property
    def failures(self) -> tuple[PluginFailure, ...]:
        """Plugins that failed to import, register, or were disabled or in conflict."""
        return tuple(self._failures)

    def names(self) -> list[str]:
        return sorted(self._strategies)

    def unknown_strategy_hint(self, name: str) -> str:
        """Why ``name`` may be missing: plugins that failed to load or are disabled.

        ``""`` when every plugin loaded. Plugins whose name matches ``name`` come
        first (``redis`` is likely where strategy ``redis`` lives).
        """
        missing = [f for f in self._failures if f.stage in ("import", "register", "disabled")]
        if not missing:
            return ""
        missing.sort(key=lambda f: f.name.replace("_", "-") != name.replace("_", "-"))
        parts = []
        for failure in missing:
            origin = " ".join(p for p in (failure.distribution, failure.version) if p)
            who = f"plugin {failure.name!r}" + (f" ({origin})" if origin else "")
            if failure.stage == "disabled":
                parts.append(f"{who} is disabled by {DISABLE_ENV_VAR}")
            else:
                parts.append(f"{who} failed to load: {failure.error_type}: {failure.message}")
        more = "run 'healthkit plugins' for details"
        if not traceback_enabled():
            more += f", 'healthkit --traceback plugins' (or {TRACEBACK_ENV_VAR}=1) for tracebacks"
        return f"{'; '.join(parts)} ({more})"

    def get(self, name: str) -> StrategyType:
        """The strategy registered as ``name``.

        Raises :class:`UnknownStrategyError`, which lists the known names and the
        plugins that failed to load or are disabled (:meth:`unknown_strategy_hint`).
        """
        try:
            return self._strategies[name]
        except KeyError:
            raise UnknownStrategyError(
                name, self.names(), hint=self.unknown_strategy_hint(name)
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._strategies

    def __repr__(self) -> str:
        return f"<StrategyRegistry strategies={self.names()} failures={len(self._failures)}>"


def _own_version() -> str | None:
    try:
        return importlib.metadata.version("healthkit")
    except importlib.metadata.PackageNotFoundError:
        return None
