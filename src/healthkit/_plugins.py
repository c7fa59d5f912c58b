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

    from ._plugin_failure import PluginFailure

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
    # One parse of METADATA for both (``dist.version`` would parse it again).
    metadata = dist.metadata
    return metadata["Name"], metadata["Version"]


def __getattr__(name: str) -> object:
    # Defined in a module of its own, imported on the first failure: an attrs class
    # costs every process that builds a registry (every ``healthkit check``) about a
    # millisecond to define, and most never see a plugin fail.
    if name == "PluginFailure":
        from ._plugin_failure import PluginFailure

        return PluginFailure
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
        """What ``importlib.metadata.entry_points(group=group)`` returns, in its order.

        The same walk as the standard call (the first distribution of each
        normalized name on ``sys.path``; the others are shadowed), but only the
        distributions whose ``entry_points.txt`` mentions ``group`` have their
        entry points parsed: up to Python 3.11 the standard call builds every
        entry point of every distribution and sorts them all by group, about
        twice the cost of reading the files, in every ``healthkit check``.
        """
        metadata = self._metadata
        found: list[FoundEntryPoint] = []
        seen: set[str] = set()
        for dist in metadata.distributions():
            # The key the standard call dedupes on (private, so checked for).
            key = getattr(dist, "_normalized_name", None)
            if not isinstance(key, str):
                return [FoundEntryPoint(ep) for ep in metadata.entry_points(group=group)]
            if key in seen:
                continue
            seen.add(key)
            text = dist.read_text("entry_points.txt")
            # A section [group] contains the word: a file without it has none of its entry points.
            if text is None or group not in text:
                continue
            found.extend(FoundEntryPoint(ep) for ep in dist.entry_points if ep.group == group)
        return found

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
