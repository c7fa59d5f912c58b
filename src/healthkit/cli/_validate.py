"""``healthkit validate CONFIG``: check a config and show which models would share an instance."""

from __future__ import annotations

import json

import click

from .._registry import StrategyRegistry
from ._output import (
    FORMAT_OPTION,
    MonitoringCommand,
    dedupe_plan,
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

    Nothing is contacted and no client is created: models whose health-check
    configs are equal after normalization are grouped as the resolver would
    group them. Exits 3 with every error (and its path) on stderr when the
    config is invalid.
    """
    server_config = load_or_exit(config, StrategyRegistry())
    plan = dedupe_plan(server_config)
    if fmt == "json":
        click.echo(json.dumps({"valid": True, **plan_dict(plan)}, indent=2))
        return
    models, instances = plan_figures(plan)
    click.echo(f"{config}: valid")
    if plan:
        click.echo("")
        click.echo("dedupe plan (instance, redacted config, who holds it; defaults omitted):")
        for line in plan_lines(plan):
            click.echo(f"  {line}".rstrip())
    click.echo("")
    click.echo(f"{models} models, {instances} instances")
