"""The public surface of ``healthkit`` is small, sorted and deliberate.

Changing it should be a conscious act: this test pins the exact list.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

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


def test_the_designs_name_is_the_protocol_and_the_old_name_still_works() -> None:
    from healthkit import Strategy  # no warning: an alias kept for existing plugins

    assert healthkit.HealthCheckStrategy is Strategy
    assert healthkit.BatchStrategy.__mro__[1] is healthkit.HealthCheckStrategy

    class Instance:
        async def acheck(self, target: healthkit.Target) -> healthkit.CheckResult:
            raise NotImplementedError

        async def aclose(self) -> None:
            return None

    assert isinstance(Instance(), healthkit.HealthCheckStrategy)


#: Names that left ``__all__``: still importable, with a warning naming the new place.
MOVED = [
    ("FrozenMap", "healthkit.toolkit", "FrozenMap"),
    ("guarded_check", "healthkit.toolkit", "guarded_check"),
    ("hookspec", "healthkit._hookspecs", "hookspec"),
    ("create_asgi_app", "healthkit.asgi", "create_app"),
]


@pytest.mark.parametrize(("name", "module", "attr"), MOVED, ids=[m[0] for m in MOVED])
def test_a_moved_name_warns_and_is_the_same_object(name: str, module: str, attr: str) -> None:
    assert name not in healthkit.__all__
    with pytest.warns(DeprecationWarning, match=f"healthkit.{name} is deprecated"):
        value = getattr(healthkit, name)
    assert value is getattr(importlib.import_module(module), attr)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        healthkit.nope  # noqa: B018
    assert not hasattr(healthkit, "_MOVED_nothing")
