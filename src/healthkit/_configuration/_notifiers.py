"""The ``notifiers`` section: ``[[notifiers]]`` entries or ``[notifiers.NAME]`` tables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .._errors import ConfigIssue
from .._notifier import SPEC_KEYS, NotifierSettings, NotifierSpec

if TYPE_CHECKING:
    from ._schema import SpecParser

__all__ = ["parse_notifiers"]

_SETTINGS_KEYS = tuple(f.name for f in attrs.fields(NotifierSettings))


def parse_notifiers(parser: SpecParser, raw: Any) -> tuple[NotifierSpec, ...]:
    """Every entry, validated; problems go to ``parser.issues`` with their paths."""
    from ._structure import Invalid

    if raw is None:
        return ()
    entries: list[tuple[str, str | None, Any]] = []
    if isinstance(raw, Mapping):
        entries = [(f"notifiers.{name}", str(name), table) for name, table in raw.items()]
    elif isinstance(raw, list):
        entries = [(f"notifiers[{i}]", None, table) for i, table in enumerate(raw)]
    else:
        parser.issues.append(
            ConfigIssue(
                "notifiers",
                f"expected [[notifiers]] entries or [notifiers.NAME] tables, got {raw!r}",
            )
        )
        return ()
    specs: list[NotifierSpec] = []
    names: set[str] = set()
    registry = parser.registry
    for path, name, table in entries:
        if not isinstance(table, Mapping):
            parser.issues.append(ConfigIssue(path, f"expected a table, got {table!r}"))
            continue
        kind = table.get("type")
        known = list(registry.notifiers)
        if not isinstance(kind, str) or kind not in registry.notifiers:
            import difflib  # an error path only

            close = difflib.get_close_matches(str(kind), known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            what = "missing" if kind is None else f"unknown notifier type {kind!r}"
            more = registry.unknown_strategy_hint(str(kind))
            parser.issues.append(
                ConfigIssue(
                    f"{path}.type",
                    f"{what}; {hint}known types: {', '.join(known)}"
                    + (f"; {more}" if more else ""),
                )
            )
            continue
        own_name = table.get("name", name)
        if own_name is None:
            own_name = kind if kind not in names else f"{kind}-{len(specs) + 1}"
        if not isinstance(own_name, str) or not own_name:
            parser.issues.append(
                ConfigIssue(f"{path}.name", f"expected a string, got {own_name!r}")
            )
            continue
        if own_name in names:
            parser.issues.append(
                ConfigIssue(f"{path}.name", f"notifier name {own_name!r} is used twice")
            )
            continue
        names.add(own_name)
        settings_raw = {k: v for k, v in table.items() if k in _SETTINGS_KEYS}
        own_raw = {k: v for k, v in table.items() if k not in _SETTINGS_KEYS and k not in SPEC_KEYS}
        ok = True
        try:
            settings = parser.record(NotifierSettings, settings_raw, path)
        except Invalid:
            ok = False
        try:
            config = parser.record(
                registry.notifiers[kind].config_class,
                own_raw,
                path,
                extra_valid=(*SPEC_KEYS, *_SETTINGS_KEYS),
            )
        except Invalid:
            continue
        if ok:
            specs.append(NotifierSpec(name=own_name, type=kind, settings=settings, config=config))
    return tuple(specs)
