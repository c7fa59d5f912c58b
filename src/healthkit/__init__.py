"""healthkit: pluggable, per-model health checks for model servers.

Equal configs share one strategy instance; strategies are pluggy plugins.
"""

from __future__ import annotations

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
from ._frozen import FrozenMap
from ._guard import guarded_check
from ._healthkit import HealthKit, HealthReport
from ._hookspecs import hookimpl, hookspec
from ._monitor import Monitor, MonitorStats, Transition
from ._monitor_settings import MonitorSettings
from ._registry import (
    ENTRY_POINT_GROUP,
    PluginFailure,
    PluginInfo,
    StrategyRegistrar,
    StrategyRegistry,
)
from ._resolver import ReloadPlan, Resolver, ResolverStats
from ._result import CheckResult, ErrorInfo, RequestInfo, Target
from ._secret import Secret
from ._status import Status, worst_status
from ._strategy import (
    BatchStrategy,
    DeadlineConfig,
    Strategy,
    StrategyContext,
    StrategySpec,
    StrategyType,
)
from ._url import SecretUrl
from .asgi import create_app as create_asgi_app

__all__ = [
    "BatchStrategy",
    "CheckResult",
    "ClosedError",
    "ConfigError",
    "ConfigIssue",
    "DeadlineConfig",
    "ENTRY_POINT_GROUP",
    "ErrorInfo",
    "FrozenMap",
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
    "Strategy",
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
    "create_asgi_app",
    "describe_spec",
    "guarded_check",
    "hookimpl",
    "hookspec",
    "load_config",
    "parse_spec",
    "worst_status",
]
