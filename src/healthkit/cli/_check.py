"""``healthkit check CONFIG``: run the checks once; the exit code is the status."""

from __future__ import annotations

import json
from collections import Counter

import click

from .._config import ServerConfig
from .._errors import HealthkitError
from .._frozen import FrozenMap
from .._guard import run_bounded
from .._healthkit import HealthKit, HealthReport
from .._registry import StrategyRegistry
from .._resolver import ONE_SHOT_CLOSE_TIMEOUT
from .._status import Status
from ._output import (
    EXIT_CODES,
    FORMAT_OPTION,
    MonitoringCommand,
    Redactor,
    fail,
    load_or_exit,
    result_dict,
    result_rows,
    styled_status,
    table,
)

__all__ = ["check", "report_lines"]


async def _run(config: ServerConfig, registry: StrategyRegistry, model: str | None) -> HealthReport:
    # One shot: a close that hangs is not worth waiting for, the process exits next.
    async with HealthKit(config, registry=registry, close_timeout=ONE_SHOT_CLOSE_TIMEOUT) as kit:
        if model is None:
            return await kit.acheck_all()
        result = await kit.acheck(model)
        return HealthReport(
            status=result.status, results=FrozenMap({model: result}), resolver=kit.stats()
        )


def report_lines(report: HealthReport) -> list[str]:
    """A report as a table, then one summary line."""
    rows = [row for name, result in report.results.items() for row in result_rows(name, result)]
    lines = table(("MODEL", "STATUS", "STRATEGY", "LATENCY", "DETAIL"), rows)
    counts = Counter(r.status for r in report.results.values())
    summary = ", ".join(f"{counts[s]} {s.value}" for s in Status if counts[s]) or "no models"
    stats = report.resolver
    lines.append("")
    lines.append(
        f"{styled_status(report.status)}: {summary}; "
        f"resolver: {stats.models} models, {stats.instances} instances"
    )
    return lines


@click.command(cls=MonitoringCommand)
@click.argument("config", metavar="CONFIG")
@click.option("--model", metavar="NAME", help="Check only this model (default: every model).")
@FORMAT_OPTION
def check(config: str, model: str | None, fmt: str) -> None:
    """Run the health checks of CONFIG once and exit with the status.

    Exit codes (monitoring-plugins convention): 0 healthy, 1 degraded,
    2 unhealthy, 3 unknown or an error (bad config, bad usage, unknown model).
    Errors go to stderr.
    """
    registry = StrategyRegistry()
    server_config = load_or_exit(config, registry)
    redact = Redactor.for_config(server_config)
    if model is not None and model not in server_config.models:
        known = ", ".join(server_config.models) or "(none)"
        raise fail(f"unknown model {model!r}; models in {config}: {known}")
    try:
        # Not asyncio.run: it would wait forever for a check that swallows cancellation.
        report = run_bounded(_run(server_config, registry, model))
    except HealthkitError as exc:
        # A strategy that cannot even start (a missing CA bundle, say): nothing was checked.
        raise fail(redact(f"error: {exc}")) from None
    if fmt == "json":
        data = {
            "status": report.status.value,
            "models": {name: result_dict(r) for name, r in report.results.items()},
            "resolver": report.resolver.to_dict(),
        }
        click.echo(json.dumps(redact.data(data), indent=2))
    else:
        for line in report_lines(report):
            click.echo(redact(line))
    raise click.exceptions.Exit(EXIT_CODES[report.status])
