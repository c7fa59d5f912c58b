"""The records of a config, and the parser of ``health_check`` tables.

A ``health_check`` table names a strategy; its keys are split between the
strategy's config class, the monitor settings and the spec itself (``strategy``,
``isolation``), and each part is structured by the generic engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .._errors import ConfigIssue
from .._frozen import FrozenMap
from .._monitor_settings import MonitorSettings
from .._result import Target
from .._strategy import ISOLATION_MODES, StrategySpec
from ._source import join
from ._structure import NO_PLACEHOLDER, Invalid, Structurer

if TYPE_CHECKING:
    # Only its type: the registry imports the built-in strategies, whose modules use
    # healthkit's toolkit, whose redactor reads configs (an import cycle otherwise).
    from .._registry import StrategyRegistry

    # Only the annotation of ServerConfig.history: a config without [history]
    # never imports that section's module (healthkit check runs every few seconds).
    from ._history import HistoryConfig

__all__ = [
    "DEFAULT_STRATEGY",
    "MAX_COMPOSITE_DEPTH",
    "MONITOR_KEYS",
    "ModelConfig",
    "ServerConfig",
    "SpecParser",
]

#: The strategy of a model when neither it nor ``defaults`` names one: no check at all,
#: which is what model servers do today with their health check switched off.
DEFAULT_STRATEGY = "noop"

#: Strategies nest (a composite's ``checks``) at most this many levels deep.
MAX_COMPOSITE_DEPTH = 32

#: Keys of a ``health_check`` that are monitor settings.
MONITOR_KEYS = tuple(f.name for f in attrs.fields(MonitorSettings))


#: Suggested first when a key belongs to several strategies.
_USUAL_STRATEGIES = ("http", "grpc")


@attrs.frozen(kw_only=True)
class ModelConfig:
    """One model's resolved health check: its strategy spec and monitor settings."""

    name: str
    version: str | None = None
    check: StrategySpec
    monitor: MonitorSettings = attrs.field(factory=MonitorSettings)
    #: The name the upstream knows the model by (``upstream_model``, its ``{model}``
    #: filled in), when it is not ``name``; results are still reported under ``name``.
    upstream_model: str | None = None

    @property
    def target(self) -> Target:
        """What a check of this model asks the upstream about (upstream name, version)."""
        return self.target_for(self.version)

    def target_for(self, version: str | None) -> Target:
        """The upstream target of ``version`` of this model."""
        return Target(model=self.upstream_model or self.name, version=version)


def _model_map(models: Mapping[str, ModelConfig]) -> FrozenMap[str, ModelConfig]:
    return FrozenMap(models)


@attrs.frozen(kw_only=True)
class ServerConfig:
    """A whole config: the server-wide default and every model, defaults filled in."""

    default: StrategySpec
    default_monitor: MonitorSettings = attrs.field(factory=MonitorSettings)
    models: FrozenMap[str, ModelConfig] = attrs.field(factory=FrozenMap, converter=_model_map)
    source: str | None = attrs.field(default=None, eq=False)
    #: Things a user should know that do not make the config invalid (a model that
    #: did not inherit the default's secrets, say), each with its path.
    notices: tuple[ConfigIssue, ...] = attrs.field(default=(), eq=False)
    #: Values taken from the environment by ``${VAR}``: secrets wherever they landed,
    #: masked by :class:`~healthkit._redact.Redactor` in every output.
    secrets: frozenset[str] = attrs.field(factory=frozenset, eq=False, repr=False)
    #: ``[history]``: where transitions and per-minute figures are kept; off when ``None``.
    history: HistoryConfig | None = None
    #: ``[[notifiers]]``: where transitions are sent (``healthkit.notify.NotifierSpec``).
    notifiers: tuple[Any, ...] = ()


class SpecParser(Structurer):
    """The engine, knowing strategies: a :class:`StrategySpec` is a ``health_check`` table."""

    def __init__(
        self, registry: StrategyRegistry, plans: dict[type[Any], Any] | None = None
    ) -> None:
        super().__init__(plans)
        self.registry = registry
        self.depth = 0

    def value(self, tp: Any, raw: Any, path: str) -> Any:
        if tp is StrategySpec:
            if self.depth >= MAX_COMPOSITE_DEPTH:
                raise self.fail(path, f"strategies nest at most {MAX_COMPOSITE_DEPTH} levels deep")
            self.depth += 1
            try:
                return self.spec(raw, path)
            finally:
                self.depth -= 1
        return super().value(tp, raw, path)

    def placeholder(self, item_tp: Any, items: list[Any]) -> Any:
        if item_tp is StrategySpec:
            filler = StrategySpec(strategy=DEFAULT_STRATEGY, config=None)
            return tuple(filler if x is NO_PLACEHOLDER else x for x in items)
        return NO_PLACEHOLDER

    def spec(self, raw: Any, path: str, *, allow_monitor: bool = False) -> StrategySpec:
        spec, _ = self.health_check(raw, path, allow_monitor=allow_monitor)
        return spec

    def strategy_keys(self, name: str) -> frozenset[str]:
        return self.plan(self.registry.get(name).config_class).keys

    def _foreign_key_hint(self, name: str, named: bool) -> Callable[[str], str | None]:
        """For a key that belongs to other strategies: say which, and how to pick one."""

        def hint(key: str) -> str | None:
            owners = sorted(
                (
                    other
                    for other in self.registry.names()
                    # "in": a plugin strategy whose lazy import fails is left out.
                    if other != name and other in self.registry and key in self.strategy_keys(other)
                ),
                # The usual strategies first: base_url is also a key of 'healthkit'
                # (federation), but a user who wrote one most likely means 'http'.
                key=lambda other: (other not in _USUAL_STRATEGIES, other),
            )
            if not owners:
                return None
            listed = ", ".join(repr(o) for o in owners)
            if not named:
                return (
                    f"no strategy is named, so this is {name!r}, which takes no such key; "
                    f"add strategy = {owners[0]!r} ({key!r} is a key of {listed})"
                )
            return f"strategy {name!r} takes no such key ({key!r} is a key of {listed})"

        return hint

    def health_check(
        self, raw: Any, path: str, *, allow_monitor: bool = True
    ) -> tuple[StrategySpec, MonitorSettings]:
        if not isinstance(raw, Mapping):
            raise self.fail(path, f"expected a table, got {raw!r}")
        name = raw.get("strategy", DEFAULT_STRATEGY)
        if not isinstance(name, str):
            raise self.fail(join(path, "strategy"), f"expected a string, got {name!r}")
        if name not in self.registry:
            import difflib  # an error path only

            known = self.registry.names()
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            suggestion = f"did you mean {close[0]!r}? " if close else ""
            # A plugin that failed to load or is disabled may be where it lives: say so.
            hint = self.registry.unknown_strategy_hint(name)
            raise self.fail(
                join(path, "strategy"),
                f"unknown strategy {name!r}; {suggestion}known strategies: {', '.join(known)}"
                + (f"; {hint}" if hint else ""),
            )
        stype = self.registry.get(name)
        if stype.unavailable:
            raise self.fail(
                join(path, "strategy"), f"strategy {name!r} is unavailable: {stype.unavailable}"
            )
        strategy_keys = self.strategy_keys(name)
        strategy_raw: dict[str, Any] = {}
        monitor_raw: dict[str, Any] = {}
        isolation = raw.get("isolation", "none")
        if isolation not in ISOLATION_MODES:
            modes = ", ".join(repr(m) for m in ISOLATION_MODES)
            self.fail(join(path, "isolation"), f"must be one of {modes}, got {isolation!r}")
            isolation = "none"
        for key, val in raw.items():
            if key in ("strategy", "isolation"):  # the spec's own keys, not the config's
                continue
            if allow_monitor and key in MONITOR_KEYS:
                monitor_raw[key] = val
                if key in strategy_keys:  # ``timeout`` serves both: strategy and monitor deadline
                    strategy_raw[key] = val
            else:
                strategy_raw[key] = val
        monitor_ok = True
        monitor = MonitorSettings()
        if allow_monitor:
            try:
                monitor = self.record(MonitorSettings, monitor_raw, path)
            except Invalid:
                monitor_ok = False
        config = self.record(
            stype.config_class,
            strategy_raw,
            path,
            extra_valid=("strategy", *(MONITOR_KEYS if allow_monitor else ())),
            unknown_hint=self._foreign_key_hint(name, "strategy" in raw),
        )
        try:
            hash(config)
        except TypeError:
            key, message = _unhashable(config, name)
            raise self.fail(join(path, key) if key else path, message) from None
        if not monitor_ok:
            raise Invalid()
        return StrategySpec(strategy=name, config=config, isolation=isolation), monitor


def _unhashable(config: Any, strategy: str) -> tuple[str, str]:
    """The key (or ``""``) and message for a config that cannot be hashed."""
    if type(config).__hash__ is None:
        return "", (
            f"strategy {strategy!r}: its config class {type(config).__name__} is not hashable, "
            "so equal configs cannot share an instance (a plugin bug: declare it @attrs.frozen)"
        )
    for field in attrs.fields(type(config)):
        try:
            hash(getattr(config, field.name))
        except TypeError:
            return field.alias or field.name, (
                "plugin config values must be hashable: use a tuple "
                "(a list or table was kept as it was by the field's converter)"
            )
    return "", f"strategy {strategy!r}: plugin config values must be hashable: use a tuple"
