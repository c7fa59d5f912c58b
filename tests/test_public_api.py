"""The public surface of ``healthkit`` is small, sorted and deliberate.

Changing it should be a conscious act: this test pins the exact list.
"""

from __future__ import annotations

import subprocess
import sys

import healthkit

EXPECTED = [
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


def test_all_is_pinned_and_sorted() -> None:
    assert healthkit.__all__ == EXPECTED
    assert healthkit.__all__ == sorted(healthkit.__all__)


def test_every_name_in_all_exists() -> None:
    missing = [name for name in healthkit.__all__ if not hasattr(healthkit, name)]
    assert missing == []


def test_entry_point_group_is_the_contract() -> None:
    assert healthkit.ENTRY_POINT_GROUP == "healthkit"


def test_import_has_no_heavy_side_effects() -> None:
    """Importing healthkit loads no web server, gRPC or plugin and creates no registry."""
    code = (
        "import sys, healthkit;"
        "heavy = [m for m in ('starlette', 'uvicorn', 'grpc', 'prometheus_client', 'yaml',"
        " 'healthkit_tcp', 'healthkit_exec', 'healthkit_openai') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""
