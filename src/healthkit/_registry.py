"""The strategy registry: one pluggy plugin manager, built-ins and entry points.

It also holds the notifiers plugins register (``healthkit_register_notifiers``),
loaded from the same plugins with the same isolation.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import types
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

import attrs
import pluggy

from ._errors import StrategyConflictError, UnknownStrategyError
from ._hookspecs import PROJECT_NAME, HookSpecs
from ._plugins import (
    BUILTIN_PLUGIN,
    DISABLE_ENV_VAR,
    ENTRY_POINT_GROUP,
    HOOK_NAME,
    NOTIFIER_HOOK_NAME,
    PLUGINS_ENV_VAR,
    TRACEBACK_ENV_VAR,
    Distributions,
    Loaded,
    PluginInfo,
    describe,
    format_traceback,
    parse_disabled,
    parse_names,
    traceback_enabled,
)
from ._registrar import (
    NotifierRegistrar,
    PendingNotifier,
    PendingStrategy,
    StrategyRegistrar,
)
from ._strategy import StrategyType

if TYPE_CHECKING:
    from ._notifier import NotifierType
    from ._plugin_failure import PluginFailure

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

#: A resolved record: a strategy or a notifier.
_R = TypeVar("_R", StrategyType, "NotifierType")

log = logging.getLogger("healthkit.plugins")


def __getattr__(name: str) -> object:
    if name == "PluginFailure":  # imported on the first failure (see healthkit._plugins)
        from ._plugin_failure import PluginFailure

        return PluginFailure
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class StrategyRegistry:
    """Every strategy this process can use, by name.

    Each registry owns its own :class:`pluggy.PluginManager`: built-in
    strategies load first, then ``plugins`` passed here, then (unless
    ``entry_points=False``) every entry point in group ``healthkit``. A plugin
    that fails to import, to register, or in its hook is recorded in
    :attr:`failures` and skipped; the others keep working. ``disabled`` names
    entry points to skip (blocked in the plugin manager); by default it is read
    from ``HEALTHKIT_DISABLE_PLUGINS`` (comma-separated).
    ``modules`` names plugin modules to import and register without installing
    them (like ``pytest -p``), after ``plugins`` and before the entry points,
    with the same isolation; by default it is read from ``HEALTHKIT_PLUGINS``.

    Each plugin's ``healthkit_register_strategies`` runs through a hook caller
    of its own (pluggy's ``subset_hook_caller`` without the other plugins), so
    wrappers and ``tryfirst``/``trylast`` work as pluggy documents while one
    plugin's failure cannot touch another's. Plugins are called in pluggy's
    order (``tryfirst`` first, ``trylast`` last, otherwise load order); the
    first to register a strategy name keeps it.

    A strategy (or notifier) added with import strings is imported when it is
    first used: :meth:`get`, ``name in registry``, :attr:`strategies`. Names,
    descriptions and conflicts need no import. An import that fails then is
    recorded in :attr:`failures` (stage ``import``) like a plugin that failed to
    load, and the strategy is dropped: choosing it is an unknown-strategy error
    that names the plugin and the failure; every other strategy keeps working.

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
        self._pm = pluggy.PluginManager(PROJECT_NAME)
        self._pm.add_hookspecs(HookSpecs)
        # What plugins added (names known, imports maybe not done), and what was resolved.
        self._strategies: dict[str, PendingStrategy] = {}
        self._notifiers: dict[str, PendingNotifier] = {}
        self._resolved: dict[str, StrategyType] = {}
        self._resolved_notifiers: dict[str, NotifierType] = {}
        # Resolving may happen from several threads (a monitor and an isolated instance).
        self._lock = threading.RLock()  # an import may resolve another name
        self._plugins: list[PluginInfo] = []
        self._failures: list[PluginFailure] = []
        self._disabled = parse_disabled(
            disabled if disabled is not None else os.environ.get(DISABLE_ENV_VAR, "")
        )
        self._modules = parse_names(
            modules if modules is not None else os.environ.get(PLUGINS_ENV_VAR, "")
        )
        found: list[Loaded] = []
        # One look at sys.path's distributions, for healthkit's version and the entry points.
        dists = Distributions() if builtins or entry_points else None
        if builtins:
            from .strategies import _builtin

            assert dists is not None
            version = dists.version("model-healthkit")
            found.append(Loaded(_builtin, BUILTIN_PLUGIN, "healthkit", version))
        for index, plugin in enumerate(plugins):
            name = getattr(plugin, "__name__", None) or f"{type(plugin).__name__}#{index}"
            found.append(Loaded(plugin, name, None, None))
        for module_name in self._modules:
            module = self._import_module(module_name)
            if module is not None:
                found.append(Loaded(module, module_name, None, None))
        if entry_points:
            assert dists is not None
            found.extend(self._load_entry_points(dists, taken={item.name for item in found}))
        registered = self._register(found)
        self._call_hooks(registered)

    # -- loading -------------------------------------------------------------

    def _import_module(self, name: str) -> object | None:
        try:
            return importlib.import_module(name)
        except (Exception, SystemExit) as exc:  # a plugin must never take the host down
            self._fail(name, None, None, "import", type(exc).__name__, str(exc), exc)
            return None

    def _load_entry_points(self, dists: Distributions, *, taken: set[str]) -> list[Loaded]:
        """Import the entry points of group ``healthkit``, sorted by name, each isolated.

        Not ``PluginManager.load_setuptools_entrypoints``: it stops at the first
        entry point that fails to import and registers as it goes, where a
        broken plugin must be recorded and skipped. Disabled names are blocked
        in the plugin manager (``set_blocked``), so pluggy itself refuses them;
        a name already taken by a plugin passed in code is not blocked (those
        always load), its entry point is only skipped.
        """
        for name in sorted(self._disabled - taken):
            self._pm.set_blocked(name)
        eps = sorted(dists.entry_points(ENTRY_POINT_GROUP), key=lambda ep: ep.name)
        loaded: list[Loaded] = []
        seen: set[str] = set()
        for ep in eps:
            if ep.name in seen:
                # The same distribution can be visible twice on sys.path.
                continue
            seen.add(ep.name)
            dist, version = ep.distribution, ep.version
            if self._pm.is_blocked(ep.name) or ep.name in self._disabled:
                self._fail(
                    ep.name, dist, version, "disabled", "Disabled", f"blocked by {DISABLE_ENV_VAR}"
                )
                continue
            try:
                plugin = ep.load()
            except (Exception, SystemExit) as exc:  # a plugin must never take the host down
                self._fail(ep.name, dist, version, "import", type(exc).__name__, str(exc), exc)
                continue
            loaded.append(Loaded(plugin, ep.name, dist, version))
        return loaded

    def _register(self, found: list[Loaded]) -> list[Loaded]:
        """Register every plugin with the plugin manager; those it accepted, in load order."""
        unique: list[Loaded] = []
        for item in found:
            # The first of two plugins with one name (or one object twice) keeps it, as
            # the load order promises; pluggy would keep whichever registers first.
            if any(item.name == other.name for other in unique):
                msg = f"a plugin named {item.name!r} is already registered"
                self._fail(
                    item.name, item.distribution, item.version, "register", "ValueError", msg
                )
                continue
            if any(item.plugin is other.plugin for other in unique):
                msg = "the same plugin object is already registered under another name"
                self._fail(
                    item.name, item.distribution, item.version, "register", "ValueError", msg
                )
                continue
            unique.append(item)
        accepted: list[Loaded] = []
        # pluggy calls the most recently registered implementation first: registering
        # in reverse load order makes its call order the load order (within tryfirst,
        # plain and trylast implementations).
        for item in reversed(unique):
            try:
                # A subset hook caller keeps plugins in a set.
                hash(item.plugin)
                name = self._pm.register(item.plugin, name=item.name)
            except Exception as exc:  # unhashable, pluggy's validation, ...
                self._fail_exc(item, "register", exc)
                continue
            if name is None:
                msg = f"the plugin manager did not register {item.plugin!r}"
                self._fail(
                    item.name, item.distribution, item.version, "register", "ValueError", msg
                )
                continue
            accepted.append(item)
        accepted.reverse()
        return accepted

    def _call_hooks(self, registered: list[Loaded]) -> None:
        """Call each plugin's hooks on their own, in pluggy's order; keep what they added.

        A plugin whose strategy hook fails is unregistered. One whose notifier hook
        fails keeps its strategies (they are already registered and work without
        it); only its notifiers are missing.
        """
        by_name = {item.name: item for item in registered}
        added = self._call_each(
            HOOK_NAME, StrategyRegistrar, self._strategies, by_name, unregister_on_failure=True
        )
        notifiers = self._call_each(
            NOTIFIER_HOOK_NAME,
            NotifierRegistrar,
            self._notifiers,
            by_name,
            unregister_on_failure=False,
        )
        for item in registered:
            if self._pm.is_registered(item.plugin):
                self._plugins.append(
                    PluginInfo(
                        name=item.name,
                        distribution=item.distribution,
                        version=item.version,
                        strategies=added.get(item.name, ()),
                        notifiers=notifiers.get(item.name, ()),
                    )
                )

    def _call_each(
        self,
        hook_name: str,
        make_registrar: type[StrategyRegistrar] | type[NotifierRegistrar],
        table: dict[str, Any],
        by_name: dict[str, Loaded],
        *,
        unregister_on_failure: bool,
    ) -> dict[str, tuple[str, ...]]:
        """Hook ``hook_name`` of each registered plugin, through a caller of its own, in
        the order one hook call would reach each plugin's implementations; what each
        plugin added to ``table`` (the first to add a name keeps it), by plugin name."""
        what = "strategy" if make_registrar is StrategyRegistrar else "notifier"
        plural = "strategies" if what == "strategy" else "notifiers"
        hook = getattr(self._pm.hook, hook_name)
        order = list(dict.fromkeys(impl.plugin_name for impl in reversed(hook.get_hookimpls())))
        added: dict[str, tuple[str, ...]] = {}
        for name in order:
            item = by_name.get(name)
            if item is None or not self._pm.is_registered(item.plugin):
                continue
            others = [p for p in self._pm.get_plugins() if p is not item.plugin]
            registrar = make_registrar(item.name, item.distribution, item.version)
            try:
                caller = self._pm.subset_hook_caller(hook_name, remove_plugins=others)
                returned = caller(registrar=registrar)
                if returned is not None and returned != []:
                    raise TypeError(
                        f"{hook_name} must return None ({plural} are added with "
                        f"registrar.add), got {describe(returned)}"
                    )
            except (Exception, SystemExit) as exc:  # a plugin must never take the host down
                if unregister_on_failure:
                    self._pm.unregister(item.plugin)
                self._fail_exc(item, "register", exc)
                continue
            accepted: list[str] = []
            for entry in registrar.added:
                existing = table.get(entry.name)
                if existing is not None:
                    msg = (
                        f"{what} {entry.name!r} from {entry.origin} is already registered by "
                        f"{existing.origin}; keeping the first"
                    )
                    self._fail_item(item, "conflict", StrategyConflictError.__name__, msg)
                    continue
                table[entry.name] = entry
                accepted.append(entry.name)
            added[name] = tuple(accepted)
        return added

    def _fail_exc(self, item: Loaded, stage: str, exc: BaseException) -> None:
        self._fail_item(item, stage, type(exc).__name__, str(exc), exc)

    def _fail_item(
        self, item: Loaded, stage: str, etype: str, msg: str, exc: BaseException | None = None
    ) -> None:
        self._fail(item.name, item.distribution, item.version, stage, etype, msg, exc)

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
        # Imported on the first failure (see healthkit._plugins).
        from ._plugin_failure import PluginFailure

        failure = PluginFailure(
            name=name,
            distribution=dist,
            version=version,
            stage=stage,
            error_type=etype,
            message=msg,
            traceback="" if exc is None else format_traceback(exc),
        )
        self._failures.append(failure)
        # Not a warning on every command: a failure matters when its strategy is
        # asked for (see unknown_strategy_hint) or the user lists the plugins.
        if traceback_enabled() and stage != "disabled":
            log.warning("healthkit plugin %s\n%s", failure, failure.traceback.rstrip())
        else:
            log.debug("healthkit plugin %s", failure)

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
        """Registered strategies by name, sorted.

        Imports every strategy added with import strings (those that fail to
        import are left out and recorded in :attr:`failures`); :meth:`names`
        imports nothing.
        """
        for name in list(self._strategies):
            self._resolve(name)
        return types.MappingProxyType(dict(sorted(self._resolved.items())))

    @property
    def notifiers(self) -> Mapping[str, NotifierType]:
        """Registered notifiers (the ``type`` of a ``[[notifiers]]`` entry) by name, sorted.

        Imports every notifier added with import strings, as :attr:`strategies` does.
        """
        for name in list(self._notifiers):
            self._resolve_notifier(name)
        return types.MappingProxyType(dict(sorted(self._resolved_notifiers.items())))

    def _resolve(self, name: str) -> StrategyType | None:
        """The strategy ``name`` with its config class and factory imported; ``None`` when
        it is not registered or its import failed (recorded, and the strategy dropped)."""
        return self._resolve_in(name, self._strategies, self._resolved, "strategy")

    def _resolve_notifier(self, name: str) -> NotifierType | None:
        """The notifier ``name``, imported; as :meth:`_resolve` does for strategies."""
        return self._resolve_in(name, self._notifiers, self._resolved_notifiers, "notifier")

    def _resolve_in(
        self, name: str, pending: dict[str, Any], resolved: dict[str, _R], what: str
    ) -> _R | None:
        """``resolved[name]``, importing ``pending[name]`` into it the first time (under the
        lock: another thread may be resolving the same name); a failed import drops it."""
        found = resolved.get(name)
        if found is not None:
            return found
        with self._lock:
            found = resolved.get(name)
            item = pending.get(name)
            if found is None and item is not None:
                found = self._resolve_pending(item, what)
                if found is None:
                    del pending[name]
                else:
                    resolved[name] = found
            return found

    @overload
    def _resolve_pending(self, pending: PendingStrategy, what: str) -> StrategyType | None: ...

    @overload
    def _resolve_pending(self, pending: PendingNotifier, what: str) -> NotifierType | None: ...

    def _resolve_pending(
        self, pending: PendingStrategy | PendingNotifier, what: str
    ) -> StrategyType | NotifierType | None:
        """Import and check what ``pending`` names; a failure is recorded like a plugin's."""
        try:
            config, factory = pending.imported()
        except (Exception, SystemExit) as exc:  # a plugin must never take the host down
            self._drop(pending, what, "import", exc)
            return None
        try:
            return pending.resolve(config, factory)
        except TypeError as exc:  # what add() refuses: it would have failed registration
            self._drop(pending, what, "register", exc)
            return None

    def _drop(
        self,
        pending: PendingStrategy | PendingNotifier,
        what: str,
        stage: str,
        exc: BaseException,
    ) -> None:
        """Record why ``pending`` cannot be used, and stop listing it for its plugin."""
        message = str(exc) if stage == "register" else f"{what} {pending.name!r}: {exc}"
        self._fail(
            pending.plugin,
            pending.distribution,
            pending.version,
            stage,
            type(exc).__name__,
            message,
            exc,
        )
        for index, info in enumerate(self._plugins):
            if info.name == pending.plugin:
                if what == "strategy":
                    kept = tuple(n for n in info.strategies if n != pending.name)
                    self._plugins[index] = attrs.evolve(info, strategies=kept)
                else:
                    kept = tuple(n for n in info.notifiers if n != pending.name)
                    self._plugins[index] = attrs.evolve(info, notifiers=kept)

    @property
    def plugins(self) -> tuple[PluginInfo, ...]:
        return tuple(self._plugins)

    @property
    def failures(self) -> tuple[PluginFailure, ...]:
        """Plugins that failed to import, register, or were disabled or in conflict."""
        return tuple(self._failures)

    def names(self) -> list[str]:
        """Every registered strategy name, sorted, without importing any strategy."""
        return sorted(self._strategies)

    def unknown_strategy_hint(self, name: str) -> str:
        """Why ``name`` may be missing: plugins that failed to load or are disabled.

        ``""`` when every plugin loaded. Plugins whose name matches ``name`` come
        first (``redis`` is likely where strategy ``redis`` lives).
        """
        missing = [f for f in self._failures if f.stage in ("import", "register", "disabled")]
        if not missing:
            return ""
        # The failure of this very strategy's lazy import first, then the plugin named like it.
        missing.sort(
            key=lambda f: (
                not f.message.startswith(f"strategy {name!r}:"),
                f.name.replace("_", "-") != name.replace("_", "-"),
            )
        )
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
        stype = self._resolve(name) if isinstance(name, str) else None
        if stype is None:
            raise UnknownStrategyError(name, self.names(), hint=self.unknown_strategy_hint(name))
        return stype

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is registered and usable (its lazy imports, if any, succeed)."""
        return isinstance(name, str) and self._resolve(name) is not None

    def __repr__(self) -> str:
        return f"<StrategyRegistry strategies={self.names()} failures={len(self._failures)}>"
