"""The record of a plugin (or one of its strategies) that could not be used.

A module of its own so that a registry imports it only when something fails
(see ``healthkit._plugins``).
"""

from __future__ import annotations

import attrs

__all__ = ["PluginFailure"]


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
