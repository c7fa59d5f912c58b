"""Exceptions raised by healthkit.

A check never raises: failures become results. These exceptions are for
loading configs, plugins and using closed objects::

    HealthkitError
     ├── ConfigError              a config failed validation (every issue, with its path)
     ├── UnknownStrategyError     a strategy name no plugin registered (also a LookupError)
     ├── StrategyConflictError    two plugins registered one strategy name
     ├── StrategyCreationError    a strategy factory failed to build an instance
     └── ClosedError              the object was used after close()/aclose()
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

__all__ = [
    "ClosedError",
    "ConfigError",
    "ConfigIssue",
    "HealthkitError",
    "StrategyConflictError",
    "StrategyCreationError",
    "UnknownStrategyError",
]


class HealthkitError(Exception):
    """Base class of every healthkit exception."""


@attrs.frozen
class ConfigIssue:
    """One problem in a config: where (a dotted path) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(HealthkitError, ValueError):
    """A config is invalid. ``issues`` lists every problem found, not just the first."""

    def __init__(self, issues: Iterable[ConfigIssue], *, source: str | None = None) -> None:
        self.issues: tuple[ConfigIssue, ...] = tuple(issues)
        self.source = source
        head = f"invalid config {source}" if source else "invalid config"
        lines = [f"{head} ({len(self.issues)} error{'s' if len(self.issues) != 1 else ''}):"]
        lines.extend(f"  {issue}" for issue in self.issues)
        super().__init__("\n".join(lines))


class UnknownStrategyError(HealthkitError, LookupError):
    """No plugin registered a strategy of this name."""

    def __init__(self, name: str, known: Sequence[str], *, hint: str = "") -> None:
        self.name = name
        self.known = tuple(sorted(known))
        #: Plugins that failed to load or are disabled, which may have provided ``name``.
        self.hint = hint
        known_text = ", ".join(self.known) or "(none)"
        message = f"unknown strategy {name!r}; known strategies: {known_text}"
        super().__init__(f"{message}; {hint}" if hint else message)

    def __str__(self) -> str:
        return str(self.args[0])


class StrategyConflictError(HealthkitError):
    """Two plugins registered the same strategy name."""


class StrategyCreationError(HealthkitError):
    """A strategy factory raised while building an instance."""


class ClosedError(HealthkitError, RuntimeError):
    """The object was closed and cannot be used any more."""
