"""What the registry knows about plugins: its settings, and the records it reports.

The entry-point group and the environment variables it reads, the records of a
plugin that loaded (:class:`PluginInfo`) or failed (:class:`PluginFailure`), and
small helpers to describe what a plugin handed over.
"""

from __future__ import annotations

import importlib.metadata
import os
import traceback
from collections.abc import Iterable

import attrs

__all__ = [
    "BUILTIN_PLUGIN",
    "DISABLE_ENV_VAR",
    "ENTRY_POINT_GROUP",
    "HOOK_NAME",
    "Loaded",
    "NOTIFIER_HOOK_NAME",
    "PLUGINS_ENV_VAR",
    "PluginFailure",
    "PluginInfo",
    "TRACEBACK_ENV_VAR",
    "describe",
    "dist_of",
    "format_traceback",
    "parse_disabled",
    "parse_names",
    "traceback_enabled",
]

ENTRY_POINT_GROUP = "healthkit"
DISABLE_ENV_VAR = "HEALTHKIT_DISABLE_PLUGINS"
#: Plugin modules to load without installing them (``healthkit -p MODULE``), comma-separated.
PLUGINS_ENV_VAR = "HEALTHKIT_PLUGINS"
#: ``1`` logs each plugin failure with its traceback at WARNING (``healthkit --traceback``).
TRACEBACK_ENV_VAR = "HEALTHKIT_TRACEBACK"
BUILTIN_PLUGIN = "healthkit.builtin"
HOOK_NAME = "healthkit_register_strategies"
NOTIFIER_HOOK_NAME = "healthkit_register_notifiers"


@attrs.frozen(kw_only=True)
class PluginInfo:
    """A plugin that loaded, and the strategies it registered."""

    name: str
    distribution: str | None
    version: str | None
    strategies: tuple[str, ...]
    notifiers: tuple[str, ...] = ()


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


def parse_names(value: str | Iterable[str]) -> tuple[str, ...]:
    """``"a, b,,c"`` or ``["a", " b"]`` -> ``("a", "b", "c")``, first occurrence kept."""
    parts = value.split(",") if isinstance(value, str) else value
    return tuple(dict.fromkeys(part.strip() for part in parts if part.strip()))


def parse_disabled(value: str | Iterable[str]) -> frozenset[str]:
    return frozenset(parse_names(value))


def traceback_enabled() -> bool:
    """Whether ``HEALTHKIT_TRACEBACK`` asks for plugin failure tracebacks."""
    return os.environ.get(TRACEBACK_ENV_VAR, "").strip().lower() not in ("", "0", "false", "no")


def format_traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def describe(value: object) -> str:
    try:
        text = repr(value)
    except Exception:  # a plugin's object may fail even at that
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else f"{text[:77]}..."


def dist_of(ep: importlib.metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


@attrs.frozen
class Loaded:
    """A plugin object found, in load order, with where it comes from."""

    plugin: object
    name: str
    distribution: str | None
    version: str | None
