"""Registers the built-in strategies through the public hook, like any plugin.

Config classes and factories are import strings: a registry (every ``healthkit
check``) imports a strategy's modules only when a config uses it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._hookspecs import hookimpl
from .grpc._extra import GRPC_EXTRA_HINT, missing_grpc_modules

if TYPE_CHECKING:
    from .._registrar import NotifierRegistrar, StrategyRegistrar


@hookimpl
def healthkit_register_strategies(registrar: StrategyRegistrar) -> None:
    registrar.add(
        "noop",
        config="healthkit.strategies.noop:NoopConfig",
        factory="healthkit.strategies.noop:NoopStrategy.create",
        description="Always healthy: no upstream check.",
    )
    registrar.add(
        "http",
        config="healthkit.strategies.http._config:HttpConfig",
        factory="healthkit.strategies.http._strategy:HttpStrategy.create",
        description="HTTP readiness: Open Inference Protocol v2, KServe v1 or a URL template.",
    )
    registrar.add(
        "grpc",
        config="healthkit.strategies.grpc._config:GrpcConfig",
        # Imports grpcio only when an instance is created.
        factory="healthkit.strategies.grpc:create_grpc_strategy",
        description="gRPC readiness: Open Inference Protocol v2 or grpc.health.v1 Check.",
        # Known but unusable without the extra: choosing it says what to install.
        unavailable=GRPC_EXTRA_HINT if missing_grpc_modules() else None,
    )
    registrar.add(
        "composite",
        config="healthkit.strategies.composite:CompositeConfig",
        factory="healthkit.strategies.composite:CompositeStrategy.create",
        description="Combine child strategies: all, any or quorum.",
    )
    registrar.add(
        "healthkit",
        config="healthkit.strategies.federation._config:FederationConfig",
        factory="healthkit.strategies.federation._strategy:FederationStrategy.create",
        description="Federation: every model of another healthkit from its /v1/status.",
    )


@hookimpl
def healthkit_register_notifiers(registrar: NotifierRegistrar) -> None:
    # Only the names: a config without [[notifiers]] never imports healthkit.notify.
    registrar.add(
        "webhook",
        config="healthkit.notify._webhook:WebhookConfig",
        factory="healthkit.notify._webhook:WebhookNotifier",
        description="POST JSON to a URL, with a body template (Slack, Teams, generic).",
    )
    registrar.add(
        "log",
        config="healthkit.notify._log:LogConfig",
        factory="healthkit.notify._log:LogNotifier",
        description="One structured JSON line per notification on logger healthkit.notify.",
    )
