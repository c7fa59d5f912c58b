"""``healthkit validate CONFIG``: check a config and show which models would share an instance."""

from __future__ import annotations

import json

import click

from .._errors import ConfigError
from .._registry import StrategyRegistry
from ._output import (
    FORMAT_OPTION,
    MonitoringCommand,
    Redactor,
    create_instances,
    dedupe_plan,
    emit,
    fail,
    load_or_exit,
    plan_dict,
    plan_figures,
    plan_lines,
)

__all__ = ["validate"]


@click.command(cls=MonitoringCommand)
@click.argument("config", metavar="CONFIG")
@FORMAT_OPTION
def validate(config: str, fmt: str) -> None:
    """Validate CONFIG and print its dedupe plan: models -> shared strategy instances.

    Nothing is contacted: each distinct strategy instance is created (clients,
    channels, TLS contexts) and closed again, so exit 0 means `serve` and
    `check` can start them. Models whose health-check configs are equal after
    normalization are grouped as the resolver would group them. Exits 3 with
    every error (and its path) on stderr when the config is invalid.
    """
    registry = StrategyRegistry()
    server_config = load_or_exit(config, registry)
    redact = Redactor.for_config(server_config)
    problems = create_instances(server_config, registry)
    if problems:
        raise fail(str(ConfigError(problems, source=config)))
    plan = dedupe_plan(server_config)
    notices = [redact(str(n)) for n in server_config.notices]
    if fmt == "json":
        data = {"valid": True, **plan_dict(plan, redact=redact), "notices": notices}
        emit([json.dumps(data, indent=2)])  # a reader that stops early leaves the exit 0
        return
    models, instances = plan_figures(plan)
    lines = [f"{config}: valid"]
    if notices:
        lines.extend(["", "notices:", *(f"  {line}" for line in notices)])
    if plan:
        lines.extend(
            ["", "dedupe plan (instance, redacted config, who holds it; defaults omitted):"]
        )
        lines.extend(f"  {line}".rstrip() for line in plan_lines(plan, redact=redact))
    lines.extend(["", f"{models} models, {instances} instances"])
    emit(lines)
