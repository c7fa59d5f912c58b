"""``load_config`` and ``parse_spec``: the layers of config loading, put together.

Every problem is collected with its dotted path before anything is raised, so
a user fixes a config in one pass.
"""

from __future__ import annotations

import array
import marshal
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from .._errors import ConfigError, ConfigIssue
from .._monitor_settings import MonitorSettings
from .._strategy import StrategySpec
from ..validators import format_template, target_name
from ._env import after_env_errors, interpolate
from ._inherit import (
    INHERIT_SECRETS,
    blame_default,
    changed_host,
    dropped_notice,
    merge,
    secret_keys,
)
from ._schema import DEFAULT_STRATEGY, ModelConfig, ServerConfig, SpecParser
from ._source import check_shape, join, read_source
from ._structure import Invalid, unknown_key

if TYPE_CHECKING:
    from .._registry import StrategyRegistry  # its type only, as in _schema

__all__ = ["load_config", "parse_spec"]

T = TypeVar("T")

_TOP_KEYS = ("defaults", "models", "history", "notifiers")
_DEFAULTS_KEYS = ("health_check",)
_MODEL_KEYS = ("health_check", "version", "upstream_model")


def _upstream_model(raw: Any, name: str) -> str:
    """``upstream_model``: a name, or a template of one with ``{model}`` (the served name)."""
    if not isinstance(raw, str):
        raise ValueError(f"expected a string, got {raw!r}")
    format_template(raw, fields=("model",))
    return target_name(raw.format(model=name), what="upstream model name", allow_slash=True)


def _raw_key(value: Any) -> Any:
    """A hashable key of a raw value that tells ``1``, ``1.0`` and ``True`` apart."""
    if isinstance(value, Mapping):
        return frozenset((k, _raw_key(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return (list, tuple(_raw_key(v) for v in value))
    return (type(value), value)


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
        raw = read_source(source)
        source_name = str(source)
    parser = SpecParser(registry)
    issues = parser.issues
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        message = f"expected a table at the top level, got {type(raw).__name__}"
        raise ConfigError([ConfigIssue("", message)], source=source_name)
    shape = check_shape(raw)
    if shape is not None:
        raise ConfigError([shape], source=source_name)
    secrets: set[str] = set()
    raw = interpolate(raw, "", issues, secrets)
    for key in raw:
        if key not in _TOP_KEYS:
            issues.append(unknown_key("", str(key), _TOP_KEYS))

    # ``None`` is an empty YAML table; other falsy values ([], 0, "") are mistakes.
    defaults = _or_empty(raw.get("defaults"))
    default_hc: Mapping[str, Any] = {}
    if not isinstance(defaults, Mapping):
        issues.append(ConfigIssue("defaults", f"expected a table, got {defaults!r}"))
        defaults = {}
    for key in defaults:
        if key not in _DEFAULTS_KEYS:
            issues.append(unknown_key("defaults", str(key), _DEFAULTS_KEYS))
    default_spec = StrategySpec(strategy=DEFAULT_STRATEGY, config=None)
    default_monitor = MonitorSettings()
    hc_raw = _or_empty(defaults.get("health_check"))
    if isinstance(hc_raw, Mapping):
        if INHERIT_SECRETS in hc_raw:
            issues.append(
                ConfigIssue(
                    join("defaults.health_check", INHERIT_SECRETS),
                    "only allowed in a model's health_check",
                )
            )
            hc_raw = {k: v for k, v in hc_raw.items() if k != INHERIT_SECRETS}
        default_hc = hc_raw
    default_ok = True
    try:
        default_spec, default_monitor = parser.health_check(hc_raw, "defaults.health_check")
    except Invalid:
        default_ok = False
    default_secrets = secret_keys(default_spec) if default_ok else set()

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
    history_raw, notifiers_raw = raw.get("history"), raw.get("notifiers")
    entries: Iterable[tuple[Any, Any]] = models_raw.items()
    if source_name is not None:
        # A document read from a file is ours alone, of the parser's plain types:
        # pack its model tables and drop it before building a model (see _packed).
        # A mapping's caller keeps its own memory anyway, and its values may be of
        # any type (marshal would turn a bytearray into bytes).
        entries = _packed(entries)
        del raw, models_raw
    for name, model_raw in entries:
        if isinstance(name, bool) or not isinstance(name, str | int):
            issues.append(ConfigIssue("models", f"model names must be strings, got {name!r}"))
            continue
        name = str(name)
        try:
            target_name(name)
        except ValueError as exc:
            issues.append(ConfigIssue("models", f"model name {_show_name(name)}: {exc}"))
            continue
        mpath = join("models", name)
        if model_raw is None:
            model_raw = {}
        if not isinstance(model_raw, Mapping):
            issues.append(ConfigIssue(mpath, f"expected a table, got {model_raw!r}"))
            continue
        for key in model_raw:
            if key not in _MODEL_KEYS:
                issues.append(unknown_key(mpath, str(key), _MODEL_KEYS))
        version = model_raw.get("version")
        if version is not None:
            if isinstance(version, bool) or not isinstance(version, str | int):
                issues.append(
                    ConfigIssue(join(mpath, "version"), f"expected a string, got {version!r}")
                )
                version = None
            else:
                try:
                    version = target_name(str(version), what="version")
                except ValueError as exc:
                    issues.append(ConfigIssue(join(mpath, "version"), str(exc)))
                    version = None
        upstream_model = model_raw.get("upstream_model")
        if upstream_model is not None:
            try:
                upstream_model = _upstream_model(upstream_model, name)
            except ValueError as exc:
                issues.append(ConfigIssue(join(mpath, "upstream_model"), str(exc)))
                upstream_model = None
        hc_path = join(mpath, "health_check")
        own = model_raw.get("health_check")
        if own is None:
            # Exactly the default: its result (or its errors, reported once) stands.
            if not default_ok:
                continue
            spec, monitor = default_spec, default_monitor
        elif isinstance(own, Mapping):
            inherit = own.get(INHERIT_SECRETS)
            if inherit is not None and not isinstance(inherit, bool):
                issues.append(
                    ConfigIssue(
                        join(hc_path, INHERIT_SECRETS), f"expected a boolean, got {inherit!r}"
                    )
                )
            merged, dropped = merge(default_hc, own, default_secrets)
            merged.pop(INHERIT_SECRETS, None)
            if dropped:
                notices.append(dropped_notice(hc_path, changed_host(default_hc, own), dropped))
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
                except Invalid:
                    blame_default(issues, before, hc_path, default_hc, own)
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
            upstream_model=None if upstream_model == name else upstream_model,
        )
    _same_upstream(models, issues)
    # Each section's module only for a config that has the section: a one-shot
    # check of a plain config (every few seconds in probes) never imports them.
    history = None
    if history_raw is not None:
        from ._history import history_from_raw

        history = history_from_raw(parser, history_raw, source_name)
    notifiers: tuple[Any, ...] = ()
    if notifiers_raw is not None:
        from ._notifiers import parse_notifiers

        notifiers = parse_notifiers(parser, notifiers_raw)
    if issues:
        raise ConfigError(_dedupe(after_env_errors(issues)), source=source_name)
    return ServerConfig(
        history=history,
        notifiers=notifiers,
        default=default_spec,
        default_monitor=default_monitor,
        models=models,
        source=source_name,
        notices=tuple(notices),
        secrets=frozenset(secrets),
    )


def _packed(entries: Iterable[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
    """``entries`` (a document's ``(name, model table)`` pairs), packed into one buffer.

    Why: a parser's peak (tomllib's is about 2 KiB a model) spreads the document
    over many of pymalloc's arenas, and an arena goes back to the OS only once
    every object in it is freed. Models built while the document is alive land in
    its holes, one or two per arena, and keep it all resident when the document
    goes: 2 KiB of RSS a model for 150 bytes of live objects. Packed here into one
    big allocation (outside those arenas), the document can be dropped before the
    models are built; each model's table is then unpacked from it in turn, and
    its temporaries are freed and reused at once, so the models pack densely.

    Call it, drop every reference to the document, then iterate. marshal restores
    the parser's plain types exactly (dict, list, str, int, float, bool, None,
    bytes, set); a table holding a value it has no format for (a TOML date, say)
    is kept as it is, and only that table stays alive.
    """
    buffer = bytearray()
    ends = array.array("Q")
    kept: dict[int, tuple[Any, Any]] = {}
    for index, entry in enumerate(entries):
        try:
            buffer += marshal.dumps(entry)
        except ValueError:  # "unmarshallable object"
            kept[index] = entry
        ends.append(len(buffer))
    return _unpacked(buffer, ends, kept)


def _unpacked(
    buffer: bytearray, ends: array.array[int], kept: dict[int, tuple[Any, Any]]
) -> Iterator[tuple[Any, Any]]:
    view = memoryview(buffer)
    start = 0
    for index, end in enumerate(ends):
        # marshal never writes nothing: an empty slice is a table kept as it was.
        yield marshal.loads(view[start:end]) if end > start else kept.pop(index)
        start = end


def _same_upstream(models: Mapping[str, ModelConfig], issues: list[ConfigIssue]) -> None:
    """Two models may not be one check: the same health_check of the same upstream target.

    Only ``upstream_model`` can make them so; a monitor keeps one result per check.
    """
    if all(mc.upstream_model is None for mc in models.values()):
        # Then every target is a model's own name: none can clash. Saves a key per
        # model (temporaries that fragment the memory the models were just packed in).
        return
    seen: dict[tuple[StrategySpec, Any], str] = {}
    for name, mc in models.items():
        key = (mc.check, mc.target)
        other = seen.setdefault(key, name)
        if other != name and (mc.upstream_model is not None or models[other].upstream_model):
            mapped = name if mc.upstream_model is not None else other
            issues.append(
                ConfigIssue(
                    join(join("models", mapped), "upstream_model"),
                    f"models {other!r} and {name!r} would be one check (the same health_check "
                    f"of upstream model {mc.target}); give one its own version or check, "
                    "or keep only one of them",
                )
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
    parser = SpecParser(registry)
    shape = check_shape(raw)
    if shape is not None:
        raise ConfigError(
            [ConfigIssue(join(path, shape.path) if shape.path else path, shape.message)]
        )
    data = interpolate(raw, path, parser.issues, set())
    try:
        spec = parser.spec(data, path)
    except Invalid:
        spec = None
    if parser.issues or spec is None:
        raise ConfigError(_dedupe(after_env_errors(parser.issues)))
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
