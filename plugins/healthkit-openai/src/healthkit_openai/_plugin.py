"""The entry point of this plugin: registers strategy ``openai`` through healthkit's hook."""

from __future__ import annotations

from typing import TYPE_CHECKING

from healthkit import hookimpl

if TYPE_CHECKING:
    from healthkit import StrategyRegistrar


@hookimpl
def healthkit_register_strategies(registrar: StrategyRegistrar) -> None:
    registrar.add(
        "openai",
        # Import strings: healthkit imports them only when a config uses "openai".
        config="healthkit_openai._config:OpenAIConfig",
        factory="healthkit_openai._strategy:OpenAIStrategy.create",
        description="OpenAI-compatible servers: GET /health and/or /v1/models lists the model.",
    )
