"""The pluggy hook specifications of project ``healthkit``.

Every hook is prefixed ``healthkit_`` and documented in ``docs/plugins.md``;
a test fails when a hook here lacks documentation or a test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ._registry import StrategyRegistrar

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec", "healthkit_register_strategies"]

PROJECT_NAME = "healthkit"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def healthkit_register_strategies(registrar: StrategyRegistrar) -> None:
    """Contribute strategies by calling ``registrar.add(...)`` once per strategy.

    Called once per plugin when a :class:`~healthkit.StrategyRegistry` loads.
    If this hook raises, none of the plugin's strategies are registered, the
    failure is reported, and every other plugin keeps working.
    """
