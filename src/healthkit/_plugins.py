"""What the registry knows about plugins: its settings, and the records it reports.

The entry-point group and the environment variables it reads, the records of a
plugin that loaded (:class:`PluginInfo`) or failed (:class:`PluginFailure`), and
small helpers to describe what a plugin handed over.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import traceback
from collections.abc import Iterable
from importlib.machinery import PathFinder
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
    "distribution_version",
    "find_entry_points",
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
#
# importlib.metadata costs a one-shot ``healthkit check`` more than healthkit's
# own registry: its import (zipfile, csv, email parsing...) and a parse of every
# distribution's entry points and metadata. Plain directories on sys.path with
# no other distribution finder installed (nearly every deployment) are read here
# directly, the way importlib.metadata reads them; anything else (a zip or egg on
# sys.path, a meta-path finder of its own) goes through importlib.metadata.


class FoundEntryPoint:
    """An entry point of group ``healthkit``: its name, value and distribution."""

    __slots__ = ("distribution", "name", "value", "version")

    def __init__(self, name: str, value: str, distribution: str | None, version: str | None):
        self.name = name
        self.value = value
        self.distribution = distribution
        self.version = version

    def load(self) -> object:
        """Import ``module`` or ``module:attr.attr``, as ``EntryPoint.load`` does."""
        module_name, _, attr = self.value.partition(":")
        # "module:attr [extra]": extras do not change what is loaded.
        attr = attr.split("[", 1)[0].strip()
        value: object = importlib.import_module(module_name.split("[", 1)[0].strip())
        for part in filter(None, attr.split(".")):
            value = getattr(value, part)
        return value

    def __repr__(self) -> str:
        return f"FoundEntryPoint({self.name!r}, {self.value!r}, {self.distribution!r})"


def _normalize(name: str) -> str:
    """importlib.metadata's normalized distribution name (``Prepared.normalize``)."""
    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


def _distribution_dirs() -> list[tuple[str, str]] | None:
    """``(normalized name, metadata directory)`` of every distribution on sys.path, the
    first of each name, in importlib.metadata's order; ``None`` when only
    importlib.metadata can tell (a zip or egg on sys.path, another finder)."""
    for finder in sys.meta_path:
        if finder is not PathFinder and getattr(finder, "find_distributions", None):
            return None
    found: dict[str, str] = {}
    for entry in sys.path:
        if not isinstance(entry, str):
            return None
        root = entry or "."
        try:
            children = os.listdir(root)
        except OSError:
            if os.path.exists(root):  # a zip file: importlib.metadata reads those
                return None
            continue
        if os.path.basename(root).lower().endswith(".egg"):
            return None
        for child in children:
            low = child.lower()
            if low.endswith((".dist-info", ".egg-info")):
                name = _normalize(low.rpartition(".")[0].partition("-")[0])
                found.setdefault(name, os.path.join(root, child))
    return list(found.items())


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError):
        return None


def _name_and_version(info: str) -> tuple[str | None, str | None]:
    """``Name`` and ``Version`` from a distribution's ``METADATA`` (or ``PKG-INFO``) headers."""
    text = _read(os.path.join(info, "METADATA")) or _read(os.path.join(info, "PKG-INFO")) or ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the headers end at the first blank line; the description follows
        key, sep, value = line.partition(":")
        if sep and key in ("Name", "Version"):
            fields.setdefault(key, value.strip())
    return fields.get("Name"), fields.get("Version")


def _entry_points_of(info: str, group: str) -> list[tuple[str, str]]:
    """``(name, value)`` of group ``group`` in ``info/entry_points.txt`` (its INI-like format)."""
    text = _read(os.path.join(info, "entry_points.txt"))
    if not text or f"[{group}]" not in text:
        return []
    section = None
    pairs = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
            continue
        name, sep, value = line.partition("=")
        if section == group and sep:
            pairs.append((name.strip(), value.strip()))
    return pairs


class Distributions:
    """One look at the distributions on sys.path, for every question a registry asks."""

    __slots__ = ("_dirs",)

    def __init__(self) -> None:
        self._dirs = _distribution_dirs()

    def entry_points(self, group: str) -> list[FoundEntryPoint]:
        return find_entry_points(group, self._dirs)

    def version(self, name: str) -> str | None:
        return distribution_version(name, self._dirs)


_SCAN: list[tuple[str, str]] | None = []  # a marker: "look now"


def find_entry_points(
    group: str, dirs: list[tuple[str, str]] | None = _SCAN
) -> list[FoundEntryPoint]:
    """Every entry point of ``group`` in the distributions on sys.path, as
    ``importlib.metadata.entry_points(group=group)`` finds them (one distribution per name:
    the first on sys.path)."""
    if dirs is _SCAN:
        dirs = _distribution_dirs()
    if dirs is None:
        import importlib.metadata

        return [
            FoundEntryPoint(ep.name, ep.value, *dist_of(ep))
            for ep in importlib.metadata.entry_points(group=group)
        ]
    found: list[FoundEntryPoint] = []
    for _name, info in dirs:
        pairs = _entry_points_of(info, group)
        if pairs:
            dist, version = _name_and_version(info)
            found.extend(FoundEntryPoint(name, value, dist, version) for name, value in pairs)
    return found


def distribution_version(name: str, dirs: list[tuple[str, str]] | None = _SCAN) -> str | None:
    """The version of installed distribution ``name``, ``None`` if not installed."""
    if dirs is _SCAN:
        dirs = _distribution_dirs()
    if dirs is None:
        import importlib.metadata

        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None
    info = dict(dirs).get(_normalize(name))
    return None if info is None else _name_and_version(info)[1]


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
