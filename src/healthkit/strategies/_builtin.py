"""Registers the built-in strategies through the public hook, like any plugin."""

from __future__ import annotations

from .._hookspecs import hookimpl
from .._registrar import NotifierRegistrar, StrategyRegistrar
from ..notify._builtin import register as register_notifiers
from .composite import CompositeConfig, CompositeStrategy
from .federation import FederationConfig, FederationStrategy
from .grpc import GRPC_EXTRA_HINT, GrpcConfig, create_grpc_strategy, missing_grpc_modules
from .http import HttpConfig, HttpStrategy
from .noop import NoopConfig, NoopStrategy


@hookimpl
def healthkit_register_strategies(registrar: StrategyRegistrar) -> None:
    registrar.add(
        "noop",
        config=NoopConfig,
        factory=NoopStrategy.create,
        description="Always healthy: no upstream check.",
    )
    registrar.add(
        "http",
        config=HttpConfig,
        factory=HttpStrategy.create,
        description="HTTP readiness: Open Inference Protocol v2, KServe v1 or a URL template.",
    )
    registrar.add(
        "grpc",
        config=GrpcConfig,
        factory=create_grpc_strategy,
        description="gRPC readiness: Open Inference Protocol v2 or grpc.health.v1 Check.",
        # Known but unusable without the extra: choosing it says what to install.
        unavailable=GRPC_EXTRA_HINT if missing_grpc_modules() else None,
    )
    registrar.add(
        "composite",
        config=CompositeConfig,
        factory=CompositeStrategy.create,
        description="Combine child strategies: all, any or quorum.",
    )
    registrar.add(
        "healthkit",
        config=FederationConfig,
        factory=FederationStrategy.create,
        description="Federation: every model of another healthkit from its /v1/status.",
    )


@hookimpl
def healthkit_register_notifiers(registrar: NotifierRegistrar) -> None:
    register_notifiers(registrar)
