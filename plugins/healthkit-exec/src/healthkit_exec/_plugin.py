"""The entry point of this plugin: registers strategy ``exec`` through healthkit's hook."""

from __future__ import annotations

from healthkit import StrategyRegistrar, hookimpl

from ._config import ExecConfig
from ._strategy import ExecStrategy


@hookimpl
def healthkit_register_strategies(registrar: StrategyRegistrar) -> None:
    registrar.add(
        "exec",
        config=ExecConfig,
        factory=ExecStrategy.create,
        description="Run a command (argv, no shell); exit 0/1/2 = healthy/degraded/unhealthy.",
    )
