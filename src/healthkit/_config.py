"""Loading and validating configs: files and dicts in, frozen records out.

Every problem is collected with its dotted path before anything is raised, so
a user fixes a config in one pass.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import attrs

from ._errors import ConfigError, ConfigIssue
from ._frozen import FrozenMap
from ._monitor_settings import MonitorSettings
from ._registry import StrategyRegistry
from ._result import Target
from ._secret import Secret
from ._strategy import StrategySpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "DEFAULT_STRATEGY",
    "ModelConfig",
    "ServerConfig",
    "describe_spec",
    "load_config",
    "parse_spec",
]

#: The strategy of a model when neither it nor ``defaults`` names one: no check at all,
#: which is what model servers do today with their health check switched off.
DEFAULT_STRATEGY = "noop"

T = TypeVar("T")

_TOP_KEYS = ("defaults", "models")
_DEFAULTS_KEYS = ("health_check",)
_MODEL_KEYS = ("health_check", "version")
_MONITOR_KEYS = tuple(f.name for f in attrs.fields(MonitorSettings))
_ENV_RE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@attrs.frozen(kw_only=True)
class ModelConfig:
    """One model's resolved health check: its strategy spec and monitor settings."""

    name: str
    version: str | None = None
    check: StrategySpec
    monitor: MonitorSettings = attrs.field(factory=MonitorSettings)

    @property
    def target(self) -> Target:
        return Target(model=self.name, version=self.version)


def _model_map(models: Mapping[str, ModelConfig]) -> FrozenMap[str, ModelConfig]:
    return FrozenMap(models)


@attrs.frozen(kw_only=True)
class ServerConfig:
    """A whole config: the server-wide default and every model, defaults filled in."""

    default: StrategySpec
    default_monitor: MonitorSettings = attrs.field(factory=MonitorSettings)
    models: FrozenMap[str, ModelConfig] = attrs.field(factory=FrozenMap, converter=_model_map)
    source: str | None = attrs.field(default=None, eq=False)


# -- raw input ----------------------------------------------------------------


def _read_source(source: str | os.PathLike[str]) -> Any:
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue("", f"cannot read {path}: {exc.strerror or exc}")]) from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix == ".json":
            return json.loads(text)
        if suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise ConfigError(
                    [ConfigIssue("", "YAML configs need PyYAML: pip install 'healthkit[yaml]'")],
                    source=str(path),
                ) from None
            return yaml.safe_load(text)
    except ConfigError:
        raise
    except Exception as exc:  # each parser has its own error type
        message = f"invalid {suffix.lstrip('.').upper()}: {_parse_error(exc)}"
        raise ConfigError([ConfigIssue("", message)], source=str(path)) from None
    message = f"unsupported config file type {suffix!r}; use .toml, .json, .yaml or .yml"
    raise ConfigError([ConfigIssue("", message)], source=str(path))


def _parse_error(exc: Exception) -> str:
    """A parser's message without quoting the source line: it may hold a secret.

    PyYAML prints the offending line with a caret; TOML and JSON only say where.
    """
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem is None or mark is None:
        return str(exc)
    context = getattr(exc, "context", None)
    prefix = f"{context}: " if context else ""
    return f"{prefix}{problem} (line {mark.line + 1}, column {mark.column + 1})"


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _interpolate(value: Any, path: str, issues: list[ConfigIssue]) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string; ``$$`` is a literal ``$``."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name)
            if found is not None:
                return found
            if default is not None:
                return default
            issues.append(ConfigIssue(path, f"environment variable {name!r} is not set"))
            return ""

        return _ENV_RE.sub(sub, value)
    if isinstance(value, Mapping):
        return {k: _interpolate(v, _join(path, str(k)), issues) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_interpolate(v, _join(path, i), issues) for i, v in enumerate(value)]
    return value


def _unknown_key(path: str, key: str, valid: typing.Iterable[str]) -> ConfigIssue:
    valid = sorted(valid)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if close:
        hint = f"; did you mean {close[0]!r}?"
    else:
        hint = f"; valid keys: {', '.join(valid) or '(none)'}"
    return ConfigIssue(_join(path, key), f"unknown key{hint}")


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if tp is Secret:
        return "a string"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        return "a list"
    if origin in (dict, Mapping, FrozenMap) or tp in (dict, Mapping):
        return "a table"
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _type_hints(cls: type[Any]) -> dict[str, Any]:
    """Field types of ``cls``; a plugin's unresolvable annotation counts as ``Any``.

    A config class may annotate with names imported under ``TYPE_CHECKING`` only;
    that must not crash loading, its converters and validators still apply.
    """
    try:
        return typing.get_type_hints(cls)
    except Exception:  # NameError, TypeError: anything a foreign annotation can raise
        hints: dict[str, Any] = {}
        for f in attrs.fields(cls):
            hints[f.name] = Any if f.type is None or isinstance(f.type, str) else f.type
        return hints


class _Invalid(Exception):
    """Internal: the value at a path could not be structured (issues already recorded)."""


class _Parser:
    def __init__(self, registry: StrategyRegistry) -> None:
        self.registry = registry
        self.issues: list[ConfigIssue] = []

    def fail(self, path: str, message: str) -> _Invalid:
        self.issues.append(ConfigIssue(path, message))
        return _Invalid()

    # -- values ---------------------------------------------------------------

    def value(self, tp: Any, raw: Any, path: str) -> Any:
        if tp is Any or tp is object:
            return raw
        if tp is StrategySpec:
            return self.spec(raw, path)
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (Union, types.UnionType):
            if raw is None and type(None) in args:
                return None
            candidates = [a for a in args if a is not type(None)]
            if len(candidates) == 1:
                return self.value(candidates[0], raw, path)
            for cand in candidates:
                probe = _Parser(self.registry)
                try:
                    return probe.value(cand, raw, path)
                except _Invalid:
                    continue
            raise self.fail(path, f"expected {_type_name(tp)}, got {raw!r}")
        if origin is Literal:
            if raw in args:
                return raw
            raise self.fail(path, f"must be one of {', '.join(repr(a) for a in args)}, got {raw!r}")
        if origin in (tuple, list):
            if not isinstance(raw, list | tuple):
                raise self.fail(path, f"expected a list, got {raw!r}")
            item_tp = args[0] if args else Any
            out, bad = [], False
            for i, item in enumerate(raw):
                try:
                    out.append(self.value(item_tp, item, _join(path, i)))
                except _Invalid:
                    bad = True
            if bad:
                raise _Invalid()
            return tuple(out)
        if origin in (dict, Mapping, FrozenMap, typing.Mapping) or tp in (dict, Mapping):
            if not isinstance(raw, Mapping):
                raise self.fail(path, f"expected a table, got {raw!r}")
            val_tp = args[1] if len(args) == 2 else Any
            result, bad = {}, False
            for k, item in raw.items():
                if not isinstance(k, str):
                    self.fail(path, f"keys must be strings, got {k!r}")
                    bad = True
                    continue
                try:
                    result[k] = self.value(val_tp, item, _join(path, k))
                except _Invalid:
                    bad = True
            if bad:
                raise _Invalid()
            return FrozenMap(result)
        if tp is Secret:
            if isinstance(raw, Secret):
                return raw
            if not isinstance(raw, str):
                raise self.fail(path, "expected a string")  # never echo a secret value
            return Secret(raw)
        if tp is bool:
            if not isinstance(raw, bool):
                raise self.fail(path, f"expected a boolean, got {raw!r}")
            return raw
        if tp is int:
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise self.fail(path, f"expected an integer, got {raw!r}")
            return raw
        if tp is float:
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise self.fail(path, f"expected a number, got {raw!r}")
            return float(raw)
        if tp is str:
            if not isinstance(raw, str):
                raise self.fail(path, f"expected a string, got {raw!r}")
            return raw
        if tp is type(None):
            if raw is not None:
                raise self.fail(path, f"expected null, got {raw!r}")
            return None
        if isinstance(tp, type) and attrs.has(tp):
            return self.record(tp, raw, path)
        if isinstance(tp, type):
            if isinstance(raw, tp):
                return raw
            raise self.fail(path, f"expected {_type_name(tp)}, got {raw!r}")
        return raw

    def record(
        self, cls: type[Any], raw: Any, path: str, *, extra_valid: typing.Iterable[str] = ()
    ) -> Any:
        """Structure a mapping into attrs class ``cls``, collecting every issue."""
        if not isinstance(raw, Mapping):
            raise self.fail(path, f"expected a table, got {raw!r}")
        hints = _type_hints(cls)
        fields = {(f.alias or f.name): f for f in attrs.fields(cls) if f.init}
        kwargs: dict[str, Any] = {}
        bad = False
        for key in raw:
            if key not in fields:
                self.issues.append(_unknown_key(path, str(key), [*fields, *extra_valid]))
                bad = True
        for key, field in fields.items():
            fpath = _join(path, key)
            if key not in raw:
                if field.default is attrs.NOTHING:
                    expected = _type_name(hints.get(field.name, Any))
                    self.fail(fpath, f"missing required key (expected {expected})")
                    bad = True
                continue
            try:
                if field.converter is not None:
                    # A converter owns parsing (and type errors) of its field.
                    value = self._convert_and_validate(field, raw[key], fpath)
                else:
                    value = self.value(hints.get(field.name, Any), raw[key], fpath)
                    value = self._convert_and_validate(field, value, fpath)
            except _Invalid:
                bad = True
                continue
            kwargs[key] = value
        if bad:
            raise _Invalid()
        try:
            return cls(**kwargs)
        except (ValueError, TypeError) as exc:
            # Cross-field checks (``__attrs_post_init__``) say "key: problem"; put the
            # key into the path so the message reads like every other one.
            message = str(exc)
            key, sep, rest = message.partition(": ")
            if sep and key in fields:
                raise self.fail(_join(path, key), rest) from None
            raise self.fail(path or "(root)", message) from None

    def _convert_and_validate(self, field: attrs.Attribute[Any], value: Any, path: str) -> Any:
        conv = field.converter
        if conv is not None:
            # attrs wraps some converters in ``attrs.Converter``; call the plain function.
            func: Callable[[Any], Any] = getattr(conv, "converter", None) or conv  # type: ignore[assignment]
            try:
                value = func(value)
            except (ValueError, TypeError) as exc:
                raise self.fail(path, str(exc)) from None
        if field.validator is not None:
            try:
                field.validator(None, field, value)
            except (ValueError, TypeError) as exc:
                raise self.fail(path, str(exc)) from None
        return value

    # -- strategies -----------------------------------------------------------

    def spec(self, raw: Any, path: str, *, allow_monitor: bool = False) -> StrategySpec:
        spec, _ = self.health_check(raw, path, allow_monitor=allow_monitor)
        return spec

    def health_check(
        self, raw: Any, path: str, *, allow_monitor: bool = True
    ) -> tuple[StrategySpec, MonitorSettings]:
        if not isinstance(raw, Mapping):
            raise self.fail(path, f"expected a table, got {raw!r}")
        name = raw.get("strategy", DEFAULT_STRATEGY)
        if not isinstance(name, str):
            raise self.fail(_join(path, "strategy"), f"expected a string, got {name!r}")
        if name not in self.registry:
            raise self.fail(
                _join(path, "strategy"),
                f"unknown strategy {name!r}; known strategies: {', '.join(self.registry.names())}",
            )
        stype = self.registry.get(name)
        if stype.unavailable:
            raise self.fail(
                _join(path, "strategy"), f"strategy {name!r} is unavailable: {stype.unavailable}"
            )
        strategy_keys = {(f.alias or f.name) for f in attrs.fields(stype.config_class) if f.init}
        strategy_raw: dict[str, Any] = {}
        monitor_raw: dict[str, Any] = {}
        for key, val in raw.items():
            if key == "strategy":
                continue
            if allow_monitor and key in _MONITOR_KEYS:
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
            except _Invalid:
                monitor_ok = False
        config = self.record(
            stype.config_class,
            strategy_raw,
            path,
            extra_valid=("strategy", *(_MONITOR_KEYS if allow_monitor else ())),
        )
        if not monitor_ok:
            raise _Invalid()
        return StrategySpec(strategy=name, config=config), monitor


def _merge(default_raw: Mapping[str, Any] | None, model_raw: Mapping[str, Any]) -> dict[str, Any]:
    """A model's ``health_check`` over the default one.

    Same strategy (or none named): the default's keys are inherited. Another
    strategy: only the monitor settings are inherited, since the default's
    strategy keys would mean nothing to it.
    """
    if not default_raw:
        return dict(model_raw)
    default_name = default_raw.get("strategy", DEFAULT_STRATEGY)
    model_name = model_raw.get("strategy", default_name)
    if model_name == default_name:
        return {**default_raw, **model_raw}
    inherited = {k: v for k, v in default_raw.items() if k in _MONITOR_KEYS}
    return {**inherited, **model_raw}


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any], *, registry: StrategyRegistry
) -> ServerConfig:
    """Load and validate a config from a file path (TOML, JSON, YAML) or a mapping.

    Raises :class:`ConfigError` listing every issue with its path.
    """
    if isinstance(source, Mapping):
        raw: Any = source
        source_name = None
    else:
        raw = _read_source(source)
        source_name = str(source)
    parser = _Parser(registry)
    issues = parser.issues
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        message = f"expected a table at the top level, got {type(raw).__name__}"
        raise ConfigError([ConfigIssue("", message)], source=source_name)
    raw = _interpolate(raw, "", issues)
    for key in raw:
        if key not in _TOP_KEYS:
            issues.append(_unknown_key("", str(key), _TOP_KEYS))

    # ``None`` is an empty YAML table; other falsy values ([], 0, "") are mistakes.
    defaults = _or_empty(raw.get("defaults"))
    default_hc: Mapping[str, Any] = {}
    if not isinstance(defaults, Mapping):
        issues.append(ConfigIssue("defaults", f"expected a table, got {defaults!r}"))
        defaults = {}
    for key in defaults:
        if key not in _DEFAULTS_KEYS:
            issues.append(_unknown_key("defaults", str(key), _DEFAULTS_KEYS))
    default_spec = StrategySpec(strategy=DEFAULT_STRATEGY, config=None)
    default_monitor = MonitorSettings()
    hc_raw = _or_empty(defaults.get("health_check"))
    if isinstance(hc_raw, Mapping):
        default_hc = hc_raw
    with contextlib.suppress(_Invalid):
        default_spec, default_monitor = parser.health_check(hc_raw, "defaults.health_check")

    models_raw = _or_empty(raw.get("models"))
    models: dict[str, ModelConfig] = {}
    # Equal specs and settings are shared, not copied per model: thousands of
    # models over a handful of configs then hold a handful of config objects.
    interned_specs: dict[StrategySpec, StrategySpec] = {}
    interned_monitors: dict[MonitorSettings, MonitorSettings] = {}
    if not isinstance(models_raw, Mapping):
        issues.append(ConfigIssue("models", f"expected a table, got {models_raw!r}"))
        models_raw = {}
    for name, model_raw in models_raw.items():
        mpath = _join("models", str(name))
        if model_raw is None:
            model_raw = {}
        if not isinstance(model_raw, Mapping):
            issues.append(ConfigIssue(mpath, f"expected a table, got {model_raw!r}"))
            continue
        for key in model_raw:
            if key not in _MODEL_KEYS:
                issues.append(_unknown_key(mpath, str(key), _MODEL_KEYS))
        version = model_raw.get("version")
        if version is not None and not isinstance(version, str | int):
            issues.append(
                ConfigIssue(_join(mpath, "version"), f"expected a string, got {version!r}")
            )
            version = None
        own = model_raw.get("health_check")
        if own is None:
            merged: Any = dict(default_hc)
        elif isinstance(own, Mapping):
            merged = _merge(default_hc, own)
        else:
            issues.append(
                ConfigIssue(_join(mpath, "health_check"), f"expected a table, got {own!r}")
            )
            continue
        try:
            spec, monitor = parser.health_check(merged, _join(mpath, "health_check"))
        except _Invalid:
            continue
        models[str(name)] = ModelConfig(
            name=str(name),
            version=None if version is None else str(version),
            check=_intern(interned_specs, spec),
            monitor=_intern(interned_monitors, monitor),
        )
    if issues:
        raise ConfigError(_dedupe(issues), source=source_name)
    return ServerConfig(
        default=default_spec,
        default_monitor=default_monitor,
        models=models,
        source=source_name,
    )


def _intern(pool: dict[T, T], value: T) -> T:
    try:
        return pool.setdefault(value, value)
    except TypeError:
        # An unhashable (mutable) plugin config cannot be shared; the resolver
        # reports that when it is used, with the strategy's name.
        return value


def parse_spec(
    raw: Mapping[str, Any], *, registry: StrategyRegistry, path: str = ""
) -> StrategySpec:
    """Validate one ``{strategy = ..., ...}`` table into a :class:`StrategySpec`."""
    parser = _Parser(registry)
    data = _interpolate(raw, path, parser.issues)
    try:
        spec = parser.spec(data, path)
    except _Invalid:
        spec = None
    if parser.issues or spec is None:
        raise ConfigError(_dedupe(parser.issues))
    return spec


def _or_empty(value: Any) -> Any:
    return {} if value is None else value


def _dedupe(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    seen: set[ConfigIssue] = set()
    out = []
    for issue in issues:
        if issue not in seen:
            seen.add(issue)
            out.append(issue)
    return out


def _public(value: Any) -> Any:
    if isinstance(value, Secret):
        return str(value)
    if isinstance(value, StrategySpec):
        return describe_spec(value)
    if attrs.has(type(value)):
        return {
            (f.alias or f.name): _public(getattr(value, f.name))
            for f in attrs.fields(type(value))
            if f.repr is not False
        }
    if isinstance(value, Mapping):
        return {str(k): _public(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_public(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    # Anything else (URLs with secrets, say) shows its own redacted str().
    return str(value)


def describe_spec(spec: StrategySpec) -> dict[str, Any]:
    """A JSON-ready view of a spec with every secret masked."""
    out: dict[str, Any] = {"strategy": spec.strategy}
    if spec.config is not None:
        config = _public(spec.config)
        if isinstance(config, dict):
            out.update(config)
    return out
