"""The entry point of this plugin: registers strategy ``openai`` through healthkit's hook."""

from __future__ import annotations

from healthkit import StrategyRegistrar, hookimpl

from ._config import OpenAIConfig
from ._strategy import OpenAIStrategy


@hookimpl
def healthkit_register_strategies(registrar: StrategyRegistrar) -> None:
    registrar.add(
        "openai",
        config=OpenAIConfig,
        factory=OpenAIStrategy.create,
        description="OpenAI-compatible servers: GET /health and/or /v1/models lists the model.",
    )
