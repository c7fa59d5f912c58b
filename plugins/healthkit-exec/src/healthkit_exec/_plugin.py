"""The entry point of this plugin: registers strategy ``exec`` through healthkit's hook."""

from __future__ import annotations

from typing import TYPE_CHECKING

from healthkit import hookimpl

if TYPE_CHECKING:
    from healthkit import StrategyRegistrar


@hookimpl
def healthkit_register_strategies(registrar: StrategyRegistrar) -> None:
    registrar.add(
        "exec",
        # Import strings: healthkit imports them only when a config uses "exec".
        config="healthkit_exec._config:ExecConfig",
        factory="healthkit_exec._strategy:ExecStrategy.create",
        description="Run a command (argv, no shell); exit 0/1/2 = healthy/degraded/unhealthy.",
    )
