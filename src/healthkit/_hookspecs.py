"""The pluggy hook specifications of project ``healthkit``.

Every hook is prefixed ``healthkit_`` and documented in ``docs/plugins.md``;
a test fails when a hook here lacks documentation or a test. A new hook is
also listed in :class:`HookSpecs`, the namespace the registry hands to pluggy
(a test fails when one is missing there).
"""

from __future__ import annotations

import pluggy

from ._registrar import NotifierRegistrar, StrategyRegistrar

__all__ = [
    "PROJECT_NAME",
    "HookSpecs",
    "healthkit_register_notifiers",
    "healthkit_register_strategies",
    "hookimpl",
    "hookspec",
]

PROJECT_NAME = "healthkit"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def healthkit_register_strategies(registrar: StrategyRegistrar) -> None:
    """Contribute strategies by calling ``registrar.add(...)`` once per strategy.

    Called once per plugin when a :class:`~healthkit.StrategyRegistry` loads,
    through a hook caller of that plugin's own (pluggy's ``subset_hook_caller``),
    so wrappers and ``tryfirst``/``trylast`` behave as pluggy documents. If it
    raises or returns a value, none of the plugin's strategies are registered,
    the failure is reported, and every other plugin keeps working.
    """


@hookspec
def healthkit_register_notifiers(registrar: NotifierRegistrar) -> None:
    """Contribute notifiers by calling ``registrar.add(...)`` once per notifier.

    Called once per plugin when a :class:`~healthkit.StrategyRegistry` loads,
    after its ``healthkit_register_strategies``, through a hook caller of that
    plugin's own. If it raises or returns a value, none of the plugin's
    notifiers are registered and the failure is reported (``healthkit plugins``);
    the plugin's strategies, every other plugin, checks and readiness are untouched.
    """


class HookSpecs:
    """Every hook above, as the namespace ``PluginManager.add_hookspecs`` takes.

    A class rather than this module, so the registry imports names from here
    instead of importing the ``healthkit`` package for its submodule.
    """

    healthkit_register_strategies = staticmethod(healthkit_register_strategies)
    healthkit_register_notifiers = staticmethod(healthkit_register_notifiers)
