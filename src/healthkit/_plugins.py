"""What the registry knows about plugins: its settings, and the records it reports.

The entry-point group and the environment variables it reads, the records of a
plugin that loaded (:class:`PluginInfo`) or failed (:class:`PluginFailure`), and
small helpers to describe what a plugin handed over.
"""

from __future__ import annotations

import importlib
import os
import traceback
from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    import importlib.metadata

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
    "Distributions",
    "FoundEntryPoint",
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


# -- finding entry points ----------------------------------------------------------


class FoundEntryPoint:
    """An entry point of group ``healthkit``, with the distribution that declares it."""

    __slots__ = ("_ep", "distribution", "name", "value", "version")

    def __init__(self, ep: importlib.metadata.EntryPoint) -> None:
        self._ep = ep
        self.name = ep.name
        self.value = ep.value
        self.distribution, self.version = dist_of(ep)

    def load(self) -> object:
        return self._ep.load()

    def __repr__(self) -> str:
        return f"FoundEntryPoint({self.name!r}, {self.value!r}, {self.distribution!r})"


class Distributions:
    """The installed distributions, for the questions a registry asks (through
    ``importlib.metadata``, imported here: only a registry that loads plugins needs it)."""

    __slots__ = ("_metadata",)

    def __init__(self) -> None:
        import importlib.metadata

        self._metadata = importlib.metadata

    def entry_points(self, group: str) -> list[FoundEntryPoint]:
        return [FoundEntryPoint(ep) for ep in self._metadata.entry_points(group=group)]

    def version(self, name: str) -> str | None:
        try:
            return self._metadata.version(name)
        except self._metadata.PackageNotFoundError:
            return None


class Loaded:
    """A plugin object found, in load order, with where it comes from.

    A plain class, not an attrs one: internal, and defining an attrs class costs
    each process (every ``healthkit check``) about a millisecond.
    """

    __slots__ = ("distribution", "name", "plugin", "version")

    def __init__(
        self, plugin: object, name: str, distribution: str | None, version: str | None
    ) -> None:
        self.plugin = plugin
        self.name = name
        self.distribution = distribution
        self.version = version

    def __repr__(self) -> str:
        return f"Loaded({self.plugin!r}, {self.name!r}, {self.distribution!r}, {self.version!r})"
