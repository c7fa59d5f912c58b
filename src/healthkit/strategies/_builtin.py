"""Registers the built-in strategies through the public hook, like any plugin."""

from __future__ import annotations

from .._hookspecs import hookimpl
from .._registry import StrategyRegistrar
from .composite import CompositeConfig, CompositeStrategy
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
        "composite",
        config=CompositeConfig,
        factory=CompositeStrategy.create,
        description="Combine child strategies: all, any or quorum.",
    )
