"""The entry point of this plugin: registers strategy ``tcp`` through healthkit's hook."""

from __future__ import annotations

from healthkit import StrategyRegistrar, hookimpl

from ._config import TcpConfig
from ._strategy import TcpStrategy


@hookimpl
def healthkit_register_strategies(registrar: StrategyRegistrar) -> None:
    registrar.add(
        "tcp",
        config=TcpConfig,
        factory=TcpStrategy.create,
        description="TCP connect to host:port; optional send/expect bytes and TLS handshake.",
    )
