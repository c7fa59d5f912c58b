"""Loading and validating configs: files and dicts in, frozen records out.

Every problem is collected with its dotted path before anything is raised, so
a user fixes a config in one pass.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
import types
import typing
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import attrs

from ._errors import ConfigError, ConfigIssue
from ._frozen import FrozenMap
from ._monitor_settings import MonitorSettings
from ._registry import StrategyRegistry
from ._result import Target
from ._secret import Secret
from ._strategy import ISOLATION_MODES, StrategySpec
from ._url import SecretUrl
from .validators import target_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "DEFAULT_STRATEGY",
    "MAX_ALIAS_EXPANSION",
    "MAX_COMPOSITE_DEPTH",
    "MAX_DEPTH",
    "ModelConfig",
    "ServerConfig",
    "describe_spec",
    "load_config",
    "parse_spec",
]

#: The strategy of a model when neither it nor ``defaults`` names one: no check at all,
#: which is what model servers do today with their health check switched off.
DEFAULT_STRATEGY = "noop"

#: Strategies nest (a composite's ``checks``) at most this many levels deep.
MAX_COMPOSITE_DEPTH = 32
#: Tables and lists of a config document nest at most this many levels deep.
MAX_DEPTH = 100
#: YAML aliases may add at most this many values to a document when expanded: a few
#: hundred bytes of nested aliases can otherwise stand for billions of values.
MAX_ALIAS_EXPANSION = 1_000_000

T = TypeVar("T")

_TOP_KEYS = ("defaults", "models")
_DEFAULTS_KEYS = ("health_check",)
_MODEL_KEYS = ("health_check", "version")
_MONITOR_KEYS = tuple(f.name for f in attrs.fields(MonitorSettings))
#: A model's ``health_check`` key (not a strategy or monitor key): send the default's
#: secrets even though the model points at another host.
_INHERIT_SECRETS = "inherit_secrets"
#: Keys naming the upstream a strategy talks to; a model changing its host does not
#: inherit the default's secrets (see ``_merge``).
_TARGET_KEYS = ("base_url", "target", "host")
_UNSET = "environment variable"
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
    #: Things a user should know that do not make the config invalid (a model that
    #: did not inherit the default's secrets, say), each with its path.
    notices: tuple[ConfigIssue, ...] = attrs.field(default=(), eq=False)
    #: Values taken from the environment by ``${VAR}``: secrets wherever they landed,
    #: masked by :class:`~healthkit._redact.Redactor` in every output.
    secrets: frozenset[str] = attrs.field(factory=frozenset, eq=False, repr=False)


# -- raw input ----------------------------------------------------------------


def _read_source(source: str | os.PathLike[str]) -> Any:
    path = Path(source)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([ConfigIssue("", f"cannot read {path}: {exc.strerror or exc}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        message = (
            f"not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line}); "
            "save the file as UTF-8"
        )
        raise ConfigError([ConfigIssue("", message)], source=str(path)) from None
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
            return _load_yaml(yaml, text)
    except ConfigError:
        raise
    except RecursionError:
        message = f"nested too deeply to parse (at most {MAX_DEPTH} levels)"
        raise ConfigError([ConfigIssue("", message)], source=str(path)) from None
    except Exception as exc:  # each parser has its own error type
        message = f"invalid {suffix.lstrip('.').upper()}: {_parse_error(exc)}"
        raise ConfigError([ConfigIssue("", message)], source=str(path)) from None
    message = f"unsupported config file type {suffix!r}; use .toml, .json, .yaml or .yml"
    raise ConfigError([ConfigIssue("", message)], source=str(path))


def _load_yaml(yaml: Any, text: str) -> Any:
    """``yaml.safe_load`` that stops at ``MAX_DEPTH`` levels instead of recursing on.

    PyYAML composes recursively: a few KB of ``[[[[...`` would otherwise cost
    seconds of scanning before Python's recursion limit ends it.
    """

    class Loader(yaml.SafeLoader):  # type: ignore[misc]
        _depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    mark = self.peek_event().start_mark
                    raise yaml.composer.ComposerError(
                        None, None, f"nested deeper than {MAX_DEPTH} levels", mark
                    )
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

    loader = Loader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


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


class _ShapeError(Exception):
    def __init__(self, issue: ConfigIssue) -> None:
        super().__init__(str(issue))
        self.issue = issue


def _check_shape(raw: Any) -> ConfigIssue | None:
    """Refuse documents that are cyclic, too deep, or that aliases blow up.

    YAML aliases make tables and lists shared objects (and anchors can make them
    contain themselves). Sizes and heights are memoized per object, so this walk
    costs the document as written, never as expanded, and recursion never goes
    deeper than ``MAX_DEPTH``.
    """
    sizes: dict[int, tuple[int, int]] = {}  # id -> (expanded values, height)
    active: set[int] = set()
    stack: list[str | int] = []
    unique = 0

    def where() -> str:
        path = ""
        for key in stack[:4]:
            path = _join(path, key)
        return path + ("..." if len(stack) > 4 else "")

    def walk(node: Any, depth: int) -> tuple[int, int]:
        nonlocal unique
        if isinstance(node, Mapping):
            items: Iterable[tuple[str | int, Any]] = ((str(k), v) for k, v in node.items())
        elif isinstance(node, list | tuple):
            items = enumerate(node)
        else:
            return 1, 0
        key = id(node)
        known = sizes.get(key)
        if known is not None:
            if depth + known[1] > MAX_DEPTH:
                raise _ShapeError(ConfigIssue(where(), f"nested deeper than {MAX_DEPTH} levels"))
            return known
        if key in active:
            message = "a YAML alias refers to a table or list that contains it (a cycle)"
            raise _ShapeError(ConfigIssue(where(), message))
        if depth >= MAX_DEPTH:
            raise _ShapeError(ConfigIssue(where(), f"nested deeper than {MAX_DEPTH} levels"))
        active.add(key)
        total, height = 1, 0
        unique += 1
        for name, child in items:
            stack.append(name)
            size, child_height = walk(child, depth + 1)
            stack.pop()
            if not isinstance(child, Mapping | list | tuple):
                unique += 1
            total += size
            height = max(height, child_height + 1)
        active.discard(key)
        sizes[key] = (total, height)
        return total, height

    try:
        total, _ = walk(raw, 0)
    except _ShapeError as exc:
        return exc.issue
    if total - unique > MAX_ALIAS_EXPANSION:
        return ConfigIssue(
            "",
            f"YAML aliases expand the document to {total:,} values; at most "
            f"{MAX_ALIAS_EXPANSION:,} may come from aliases (an alias bomb?)",
        )
    return None


def _interpolate(value: Any, path: str, issues: list[ConfigIssue], found: set[str]) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string; ``$$`` is a literal ``$``.

    Values taken from the environment are added to ``found``: they are secrets
    wherever they land (a token in a query string, say).
    """
    if isinstance(value, str):
        if "$" not in value:
            return value

        def sub(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            env = os.environ.get(name)
            if env is not None:
                found.add(env)
                return env
            if default is not None:
                return default
            issues.append(ConfigIssue(path, f"{_UNSET} {name!r} is not set"))
            return ""

        return _ENV_RE.sub(sub, value)
    if isinstance(value, Mapping):
        return {k: _interpolate(v, _join(path, str(k)), issues, found) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_interpolate(v, _join(path, i), issues, found) for i, v in enumerate(value)]
    return value


def _unknown_key(path: str, key: str, valid: Iterable[str], hint: str | None = None) -> ConfigIssue:
    listed = sorted(set(valid))
    close = difflib.get_close_matches(key, listed, n=1, cutoff=0.6)
    if hint:
        message = f"unknown key; {hint}"
    elif close:
        message = f"unknown key; did you mean {close[0]!r}?"
    else:
        message = f"unknown key; valid keys: {', '.join(listed) or '(none)'}"
    return ConfigIssue(_join(path, key), message)


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if tp is Secret:
        return "a string"
    if tp is SecretUrl:
        return "a URL"
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


@attrs.frozen
class _Plan:
    """How to structure one attrs class: computed once per class and load."""

    #: config key -> (attrs field, its type)
    fields: Mapping[str, tuple[attrs.Attribute[Any], Any]]
    keys: frozenset[str]


def _freeze(value: Any) -> Any:
    """Lists and tables of a field typed ``Any`` become tuples and ``FrozenMap``\\ s.

    A config is hashable (equal configs share one instance), so a value kept as
    it was loaded must be too.
    """
    if isinstance(value, Mapping):
        return FrozenMap({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, set | frozenset):
        return frozenset(value)
    return value


def _raw_key(value: Any) -> Any:
    """A hashable key of a raw value that tells ``1``, ``1.0`` and ``True`` apart."""
    if isinstance(value, Mapping):
        return frozenset((k, _raw_key(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return (list, tuple(_raw_key(v) for v in value))
    return (type(value), value)


_NO_PLACEHOLDER: Any = object()


class _Invalid(Exception):
    """Internal: the value at a path could not be structured (issues already recorded).

    ``placeholder`` stands in for the value in cross-field checks, so a bad child
    does not hide a bad ``quorum``: a list of specs keeps its length.
    """

    def __init__(self, placeholder: Any = _NO_PLACEHOLDER) -> None:
        super().__init__()
        self.placeholder = placeholder


class _Parser:
    def __init__(
        self, registry: StrategyRegistry, plans: dict[type[Any], _Plan] | None = None
    ) -> None:
        self.registry = registry
        self.issues: list[ConfigIssue] = []
        self.plans: dict[type[Any], _Plan] = {} if plans is None else plans
        self.depth = 0

    def fail(self, path: str, message: str) -> _Invalid:
        self.issues.append(ConfigIssue(path, message))
        return _Invalid()

    def plan(self, cls: type[Any]) -> _Plan:
        found = self.plans.get(cls)
        if found is None:
            hints = _type_hints(cls)
            fields = {
                (f.alias or f.name): (f, hints.get(f.name, Any))
                for f in attrs.fields(cls)
                if f.init
            }
            found = self.plans[cls] = _Plan(fields=fields, keys=frozenset(fields))
        return found

    # -- values ---------------------------------------------------------------

    def value(self, tp: Any, raw: Any, path: str) -> Any:
        if tp is Any or tp is object:
            return _freeze(raw)
        if tp is StrategySpec:
            if self.depth >= MAX_COMPOSITE_DEPTH:
                raise self.fail(path, f"strategies nest at most {MAX_COMPOSITE_DEPTH} levels deep")
            self.depth += 1
            try:
                return self.spec(raw, path)
            finally:
                self.depth -= 1
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (Union, types.UnionType):
            if raw is None and type(None) in args:
                return None
            candidates = [a for a in args if a is not type(None)]
            if len(candidates) == 1:
                return self.value(candidates[0], raw, path)
            for cand in candidates:
                probe = _Parser(self.registry, self.plans)
                probe.depth = self.depth
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
                    out.append(_NO_PLACEHOLDER)
            if bad:
                if item_tp is StrategySpec:
                    # Same length, so cross-field checks (quorum <= len) still run.
                    filler = StrategySpec(strategy=DEFAULT_STRATEGY, config=None)
                    raise _Invalid(tuple(filler if x is _NO_PLACEHOLDER else x for x in out))
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
        return _freeze(raw)

    def record(
        self,
        cls: type[Any],
        raw: Any,
        path: str,
        *,
        extra_valid: Iterable[str] = (),
        unknown_hint: Callable[[str], str | None] | None = None,
    ) -> Any:
        """Structure a mapping into attrs class ``cls``, collecting every issue."""
        if not isinstance(raw, Mapping):
            raise self.fail(path, f"expected a table, got {raw!r}")
        plan = self.plan(cls)
        fields = plan.fields
        kwargs: dict[str, Any] = {}
        bad = False
        # Whether cls can still be built (with placeholders) to run its cross-field checks.
        buildable = True
        for key in raw:
            if key not in fields:
                hint = unknown_hint(str(key)) if unknown_hint is not None else None
                self.issues.append(_unknown_key(path, str(key), [*fields, *extra_valid], hint))
                bad = True
        for key, (field, hint_tp) in fields.items():
            fpath = _join(path, key)
            if key not in raw:
                if field.default is attrs.NOTHING:
                    expected = _type_name(hint_tp)
                    self.fail(fpath, f"missing required key (expected {expected})")
                    bad = True
                    buildable = False
                continue
            try:
                if field.converter is not None:
                    # A converter owns parsing (and type errors) of its field.
                    value = self._convert_and_validate(field, raw[key], fpath)
                else:
                    value = self.value(hint_tp, raw[key], fpath)
                    value = self._convert_and_validate(field, value, fpath)
            except _Invalid as exc:
                bad = True
                if exc.placeholder is _NO_PLACEHOLDER:
                    buildable = False
                else:
                    kwargs[key] = exc.placeholder
                continue
            kwargs[key] = value
        if bad:
            if buildable:
                # Report the cross-field problems too: one pass shows every problem.
                try:
                    cls(**kwargs)
                except (ValueError, TypeError) as exc:
                    self._cross_field(fields, path, exc)
            raise _Invalid()
        try:
            return cls(**kwargs)
        except (ValueError, TypeError) as exc:
            self._cross_field(fields, path, exc)
            raise _Invalid() from None

    def _cross_field(self, fields: Mapping[str, Any], path: str, exc: Exception) -> None:
        # Cross-field checks (``__attrs_post_init__``) say "key: problem"; put the
        # key into the path so the message reads like every other one.
        message = str(exc)
        key, sep, rest = message.partition(": ")
        if sep and key in fields:
            self.fail(_join(path, key), rest)
        else:
            self.fail(path or "(root)", message)

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

    def strategy_keys(self, name: str) -> frozenset[str]:
        return self.plan(self.registry.get(name).config_class).keys

    def _foreign_key_hint(self, name: str, named: bool) -> Callable[[str], str | None]:
        """For a key that belongs to other strategies: say which, and how to pick one."""

        def hint(key: str) -> str | None:
            owners = [
                other
                for other in self.registry.names()
                if other != name and key in self.strategy_keys(other)
            ]
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
            raise self.fail(_join(path, "strategy"), f"expected a string, got {name!r}")
        if name not in self.registry:
            known = self.registry.names()
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            suggestion = f"did you mean {close[0]!r}? " if close else ""
            raise self.fail(
                _join(path, "strategy"),
                f"unknown strategy {name!r}; {suggestion}known strategies: {', '.join(known)}",
            )
        stype = self.registry.get(name)
        if stype.unavailable:
            raise self.fail(
                _join(path, "strategy"), f"strategy {name!r} is unavailable: {stype.unavailable}"
            )
        strategy_keys = self.strategy_keys(name)
        strategy_raw: dict[str, Any] = {}
        monitor_raw: dict[str, Any] = {}
        isolation = raw.get("isolation", "none")
        if isolation not in ISOLATION_MODES:
            modes = ", ".join(repr(m) for m in ISOLATION_MODES)
            self.fail(_join(path, "isolation"), f"must be one of {modes}, got {isolation!r}")
            isolation = "none"
        for key, val in raw.items():
            if key in ("strategy", "isolation"):  # the spec's own keys, not the config's
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
            unknown_hint=self._foreign_key_hint(name, "strategy" in raw),
        )
        try:
            hash(config)
        except TypeError:
            key, message = _unhashable(config, name)
            raise self.fail(_join(path, key) if key else path, message) from None
        if not monitor_ok:
            raise _Invalid()
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


def _host_of(key: str, value: Any) -> str | None:
    """The host a target key points at, lower-cased; ``None`` when it cannot tell."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if key == "base_url":
        try:
            return urllib.parse.urlsplit(text).hostname
        except ValueError:
            return None
    if "://" in text:  # a gRPC target such as dns:///host:port
        text = text.split("://", 1)[1].lstrip("/")
    elif ":" in text and text.split(":", 1)[0] in ("dns", "ipv4", "ipv6", "unix", "vsock"):
        text = text.split(":", 1)[1]
    host, sep, port = text.rpartition(":")
    return host if sep and port.isdigit() else text


def _changed_host(default_raw: Mapping[str, Any], model_raw: Mapping[str, Any]) -> str | None:
    """The first target key the model points at another host than the default, if any."""
    for key in _TARGET_KEYS:
        if key in model_raw and key in default_raw:
            old, new = _host_of(key, default_raw[key]), _host_of(key, model_raw[key])
            if old is None or new is None:
                if default_raw[key] != model_raw[key]:
                    return key
            elif old != new:
                return key
    return None


def _secret_keys(spec: StrategySpec) -> set[str]:
    """Keys of ``spec``'s config whose values hold a :class:`Secret`."""
    config = spec.config
    if config is None or not attrs.has(type(config)):
        return set()
    return {
        f.alias or f.name
        for f in attrs.fields(type(config))
        if _holds_secret(getattr(config, f.name))
    }


def _holds_secret(value: Any) -> bool:
    if isinstance(value, Secret):
        return True
    if isinstance(value, Mapping):
        return any(_holds_secret(v) for v in value.values())
    if isinstance(value, tuple):
        return any(_holds_secret(v) for v in value)
    return False


def _merge(
    default_raw: Mapping[str, Any] | None,
    model_raw: Mapping[str, Any],
    secret_keys: Iterable[str] = (),
) -> tuple[dict[str, Any], list[str]]:
    """A model's ``health_check`` over the default one, and the secret keys it dropped.

    Same strategy (or none named): the default's keys are inherited, except its
    secrets when the model points at another host (``inherit_secrets = true``
    keeps them). Another strategy: only the monitor settings are inherited, since
    the default's strategy keys would mean nothing to it.
    """
    if not default_raw:
        return dict(model_raw), []
    default_name = default_raw.get("strategy", DEFAULT_STRATEGY)
    model_name = model_raw.get("strategy", default_name)
    if model_name != default_name:
        inherited = {k: v for k, v in default_raw.items() if k in _MONITOR_KEYS}
        return {**inherited, **model_raw}, []
    dropped = sorted(k for k in secret_keys if k in default_raw and k not in model_raw)
    if (
        not dropped
        or model_raw.get(_INHERIT_SECRETS) is True
        or not _changed_host(default_raw, model_raw)
    ):
        dropped = []
    inherited = {k: v for k, v in default_raw.items() if k not in dropped}
    return {**inherited, **model_raw}, dropped


def _show_name(name: str) -> str:
    shown = repr(name[:40])
    return shown + f"... ({len(name)} characters)" if len(name) > 40 else shown


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
    shape = _check_shape(raw)
    if shape is not None:
        raise ConfigError([shape], source=source_name)
    secrets: set[str] = set()
    raw = _interpolate(raw, "", issues, secrets)
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
        if _INHERIT_SECRETS in hc_raw:
            issues.append(
                ConfigIssue(
                    _join("defaults.health_check", _INHERIT_SECRETS),
                    "only allowed in a model's health_check",
                )
            )
            hc_raw = {k: v for k, v in hc_raw.items() if k != _INHERIT_SECRETS}
        default_hc = hc_raw
    default_ok = True
    try:
        default_spec, default_monitor = parser.health_check(hc_raw, "defaults.health_check")
    except _Invalid:
        default_ok = False
    default_secrets = _secret_keys(default_spec) if default_ok else set()

    models_raw = _or_empty(raw.get("models"))
    models: dict[str, ModelConfig] = {}
    notices: list[ConfigIssue] = []
    # Equal specs and settings are shared, not copied per model: thousands of
    # models over a handful of configs then hold a handful of config objects,
    # and an equal health_check table is parsed once.
    interned_specs: dict[StrategySpec, StrategySpec] = {}
    interned_monitors: dict[MonitorSettings, MonitorSettings] = {}
    parsed: dict[Any, tuple[StrategySpec, MonitorSettings]] = {}
    if not isinstance(models_raw, Mapping):
        issues.append(ConfigIssue("models", f"expected a table, got {models_raw!r}"))
        models_raw = {}
    for name, model_raw in models_raw.items():
        if isinstance(name, bool) or not isinstance(name, str | int):
            issues.append(ConfigIssue("models", f"model names must be strings, got {name!r}"))
            continue
        name = str(name)
        try:
            target_name(name)
        except ValueError as exc:
            issues.append(ConfigIssue("models", f"model name {_show_name(name)}: {exc}"))
            continue
        mpath = _join("models", name)
        if model_raw is None:
            model_raw = {}
        if not isinstance(model_raw, Mapping):
            issues.append(ConfigIssue(mpath, f"expected a table, got {model_raw!r}"))
            continue
        for key in model_raw:
            if key not in _MODEL_KEYS:
                issues.append(_unknown_key(mpath, str(key), _MODEL_KEYS))
        version = model_raw.get("version")
        if version is not None:
            if isinstance(version, bool) or not isinstance(version, str | int):
                issues.append(
                    ConfigIssue(_join(mpath, "version"), f"expected a string, got {version!r}")
                )
                version = None
            else:
                try:
                    version = target_name(str(version), what="version")
                except ValueError as exc:
                    issues.append(ConfigIssue(_join(mpath, "version"), str(exc)))
                    version = None
        hc_path = _join(mpath, "health_check")
        own = model_raw.get("health_check")
        if own is None:
            # Exactly the default: its result (or its errors, reported once) stands.
            if not default_ok:
                continue
            spec, monitor = default_spec, default_monitor
        elif isinstance(own, Mapping):
            inherit = own.get(_INHERIT_SECRETS)
            if inherit is not None and not isinstance(inherit, bool):
                issues.append(
                    ConfigIssue(
                        _join(hc_path, _INHERIT_SECRETS), f"expected a boolean, got {inherit!r}"
                    )
                )
            merged, dropped = _merge(default_hc, own, default_secrets)
            merged.pop(_INHERIT_SECRETS, None)
            if dropped:
                key = _changed_host(default_hc, own)
                one = len(dropped) == 1
                notices.append(
                    ConfigIssue(
                        hc_path,
                        f"{key} points at another host than the default's, so the default's "
                        f"secret {', '.join(repr(k) for k in dropped)} {'is' if one else 'are'} "
                        f"not sent there; set {_INHERIT_SECRETS} = true to send "
                        f"{'it' if one else 'them'}",
                    )
                )
            try:
                cache_key: Any = _raw_key(merged)
                hit = parsed.get(cache_key)
            except TypeError:  # an unhashable YAML value (a set, say): just parse it
                cache_key, hit = None, None
            if hit is not None:
                spec, monitor = hit
            else:
                before = len(issues)
                try:
                    spec, monitor = parser.health_check(merged, hc_path)
                except _Invalid:
                    _blame_default(issues, before, hc_path, default_hc, own)
                    continue
                if cache_key is not None:
                    parsed[cache_key] = (spec, monitor)
        else:
            issues.append(ConfigIssue(hc_path, f"expected a table, got {own!r}"))
            continue
        models[name] = ModelConfig(
            name=name,
            version=None if version is None else str(version),
            check=_intern(interned_specs, spec),
            monitor=_intern(interned_monitors, monitor),
        )
    if issues:
        raise ConfigError(_dedupe(_after_env_errors(issues)), source=source_name)
    return ServerConfig(
        default=default_spec,
        default_monitor=default_monitor,
        models=models,
        source=source_name,
        notices=tuple(notices),
        secrets=frozenset(secrets),
    )


def _blame_default(
    issues: list[ConfigIssue],
    start: int,
    hc_path: str,
    default_hc: Mapping[str, Any],
    own: Mapping[str, Any],
) -> None:
    """Put a model's issues about keys it inherited under ``defaults.health_check``.

    The user wrote those keys once, in the default; repeating them under every
    model path (that the user never wrote) only buries the message.
    """
    if default_hc.get("strategy", DEFAULT_STRATEGY) != own.get(
        "strategy", default_hc.get("strategy", DEFAULT_STRATEGY)
    ):
        inherited = {k for k in default_hc if k in _MONITOR_KEYS and k not in own}
    else:
        inherited = {k for k in default_hc if k not in own}
    prefix = hc_path + "."
    for index in range(start, len(issues)):
        issue = issues[index]
        if not issue.path.startswith(prefix):
            continue
        rest = issue.path[len(prefix) :]
        key = re.split(r"[.\[]", rest, maxsplit=1)[0]
        if key in inherited:
            issues[index] = ConfigIssue(_join("defaults.health_check", rest), issue.message)


def _after_env_errors(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    """Drop what an unset ``${VAR}`` caused: its value is a guess, so only that is reported."""
    unset = {i.path for i in issues if i.message.startswith(_UNSET)}
    if not unset:
        return issues

    def related(path: str) -> bool:
        for env_path in unset:
            if path == env_path or path.startswith((env_path + ".", env_path + "[")):
                return True
            if path in ("models", "defaults") or path.endswith("health_check"):
                continue  # a table's own issues are not about this value
            if path and env_path.startswith((path + ".", path + "[")):
                return True
        return False

    return [i for i in issues if i.message.startswith(_UNSET) or not related(i.path)]


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
    shape = _check_shape(raw)
    if shape is not None:
        raise ConfigError(
            [ConfigIssue(_join(path, shape.path) if shape.path else path, shape.message)]
        )
    data = _interpolate(raw, path, parser.issues, set())
    try:
        spec = parser.spec(data, path)
    except _Invalid:
        spec = None
    if parser.issues or spec is None:
        raise ConfigError(_dedupe(_after_env_errors(parser.issues)))
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
    if isinstance(value, list | tuple | frozenset):
        return [_public(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    # Anything else (URLs with secrets, say) shows its own redacted str().
    return str(value)


def describe_spec(
    spec: StrategySpec, *, redact: Callable[[str], str] | None = None
) -> dict[str, Any]:
    """A JSON-ready view of a spec with every secret masked.

    ``redact`` (a :class:`~healthkit._redact.Redactor`, say) is applied to every
    string as well: pass one to also mask values that came from ``${VAR}``.
    """
    out: dict[str, Any] = {"strategy": spec.strategy}
    if spec.config is not None:
        config = _public(spec.config)
        if isinstance(config, dict):
            out.update(config)
    if redact is not None:
        return typing.cast(dict[str, Any], _redact_data(out, redact))
    return out


def _redact_data(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_data(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_data(v, redact) for v in value]
    return value
