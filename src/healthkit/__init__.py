"""healthkit: pluggable, per-model health checks for model servers.

Equal configs share one strategy instance; strategies are pluggy plugins that
implement :class:`HealthCheckStrategy`.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._config import ModelConfig, ServerConfig, describe_spec, load_config, parse_spec
    from ._errors import (
        ClosedError,
        ConfigError,
        ConfigIssue,
        HealthkitError,
        StrategyConflictError,
        StrategyCreationError,
        UnknownStrategyError,
    )
    from ._healthkit import HealthKit, HealthReport
    from ._hookspecs import hookimpl
    from ._monitor import Monitor, MonitorStats, Transition
    from ._monitor_settings import MonitorSettings
    from ._plugin_failure import PluginFailure
    from ._registrar import StrategyRegistrar
    from ._registry import ENTRY_POINT_GROUP, PluginInfo, StrategyRegistry
    from ._resolver import ReloadPlan, Resolver, ResolverStats
    from ._result import CheckResult, ErrorInfo, RequestInfo, Target
    from ._secret import Secret
    from ._status import Status, worst_status
    from ._strategy import (
        BatchStrategy,
        DeadlineConfig,
        HealthCheckStrategy,
        StrategyContext,
        StrategySpec,
        StrategyType,
    )
    from ._strategy import Strategy as Strategy  # the older name of HealthCheckStrategy
    from ._url import SecretUrl

# Every public name is imported on first use (PEP 562), so that ``import healthkit.cli``
# or a plugin importing ``healthkit.hookimpl`` does not load the monitor, the config
# loader and httpx: a one-shot ``healthkit check`` is run every few seconds by probes.
#: Module (relative to this package) -> the public names it provides.
_PROVIDERS = {
    "._config": ("ModelConfig", "ServerConfig", "describe_spec", "load_config", "parse_spec"),
    "._errors": (
        "ClosedError",
        "ConfigError",
        "ConfigIssue",
        "HealthkitError",
        "StrategyConflictError",
        "StrategyCreationError",
        "UnknownStrategyError",
    ),
    "._healthkit": ("HealthKit", "HealthReport"),
    "._hookspecs": ("hookimpl",),
    "._monitor": ("Monitor", "MonitorStats", "Transition"),
    "._monitor_settings": ("MonitorSettings",),
    "._registrar": ("StrategyRegistrar",),
    "._plugin_failure": ("PluginFailure",),
    "._registry": ("ENTRY_POINT_GROUP", "PluginInfo", "StrategyRegistry"),
    "._resolver": ("ReloadPlan", "Resolver", "ResolverStats"),
    "._result": ("CheckResult", "ErrorInfo", "RequestInfo", "Target"),
    "._secret": ("Secret",),
    "._status": ("Status", "worst_status"),
    "._strategy": (
        "BatchStrategy",
        "DeadlineConfig",
        "HealthCheckStrategy",
        "Strategy",
        "StrategyContext",
        "StrategySpec",
        "StrategyType",
    ),
    "._url": ("SecretUrl",),
}
_LAZY = {name: module for module, names in _PROVIDERS.items() for name in names}

__all__ = [
    "BatchStrategy",
    "CheckResult",
    "ClosedError",
    "ConfigError",
    "ConfigIssue",
    "DeadlineConfig",
    "ENTRY_POINT_GROUP",
    "ErrorInfo",
    "HealthCheckStrategy",
    "HealthKit",
    "HealthReport",
    "HealthkitError",
    "ModelConfig",
    "Monitor",
    "MonitorSettings",
    "MonitorStats",
    "PluginFailure",
    "PluginInfo",
    "ReloadPlan",
    "RequestInfo",
    "Resolver",
    "ResolverStats",
    "Secret",
    "SecretUrl",
    "ServerConfig",
    "Status",
    "StrategyConflictError",
    "StrategyContext",
    "StrategyCreationError",
    "StrategyRegistrar",
    "StrategyRegistry",
    "StrategySpec",
    "StrategyType",
    "Target",
    "Transition",
    "UnknownStrategyError",
    "describe_spec",
    "hookimpl",
    "load_config",
    "parse_spec",
    "worst_status",
]

#: Names that left the public surface, still importable for a while: where each lives now.
_MOVED = {
    "FrozenMap": ("healthkit.toolkit", "FrozenMap"),
    "guarded_check": ("healthkit.toolkit", "guarded_check"),
    "hookspec": ("healthkit._hookspecs", "hookspec"),
    "create_asgi_app": ("healthkit.asgi", "create_app"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    moved = _MOVED.get(name)
    if moved is None:
        raise AttributeError(f"module 'healthkit' has no attribute {name!r}")
    module_name, attr = moved
    where = f"{module_name}.{attr}"
    if module_name == "healthkit._hookspecs":
        # Plugins only implement hooks; declaring new ones is healthkit's own business.
        hint = "plugins need only healthkit.hookimpl"
    else:
        hint = f"use {where}"
    warnings.warn(
        f"healthkit.{name} is deprecated and will be removed; {hint}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(module_name), attr)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
