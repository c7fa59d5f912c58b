"""The entry point of this plugin: registers strategy ``tcp`` through healthkit's hook."""

from __future__ import annotations

from typing import TYPE_CHECKING

from healthkit import hookimpl

if TYPE_CHECKING:
    from healthkit import StrategyRegistrar


@hookimpl
def healthkit_register_strategies(registrar: StrategyRegistrar) -> None:
    registrar.add(
        "tcp",
        # Import strings: healthkit imports them only when a config uses "tcp".
        config="healthkit_tcp._config:TcpConfig",
        factory="healthkit_tcp._strategy:TcpStrategy.create",
        description="TCP connect to host:port; optional send/expect bytes and TLS handshake.",
    )
