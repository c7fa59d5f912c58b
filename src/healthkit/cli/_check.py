"""``healthkit check CONFIG``: run the checks once; the exit code is the status."""

from __future__ import annotations

import asyncio
import functools
import json
from collections import Counter
from collections.abc import Callable, Sequence

import click

from .._config import ServerConfig
from .._errors import HealthkitError
from .._frozen import FrozenMap
from .._guard import run_bounded
from .._healthkit import HealthKit, HealthReport
from .._registry import StrategyRegistry
from .._resolver import ONE_SHOT_CLOSE_TIMEOUT
from .._status import Status, worst_status
from ._output import (
    EXIT_CODES,
    FORMAT_OPTION,
    RESULT_HEADERS,
    MonitoringCommand,
    Redactor,
    emit,
    explain_lines,
    fail,
    load_or_exit,
    result_rows,
    styled_status,
    table,
)
from ._startup import end_startup

__all__ = ["check", "report_lines"]


async def _run(
    config: ServerConfig,
    registry: StrategyRegistry,
    models: Sequence[str],
    *,
    started: Callable[[], None],
) -> HealthReport:
    # One shot: a close that hangs is not worth waiting for, the process exits next.
    async with HealthKit(config, registry=registry, close_timeout=ONE_SHOT_CLOSE_TIMEOUT) as kit:
        started()  # every instance exists: start-up is over (see _startup)
        if not models:
            return await kit.acheck_all()
        results = await asyncio.gather(*(kit.acheck(model) for model in models))
        return HealthReport(
            status=worst_status(r.status for r in results),
            results=FrozenMap(dict(zip(models, results, strict=True))),
            resolver=kit.stats(),
        )


def report_lines(report: HealthReport, *, verbose: bool = False) -> list[str]:
    """A report as a table, then one summary line; ``verbose``: why each failing model fails."""
    rows = [row for name, result in report.results.items() for row in result_rows(name, result)]
    lines = table(RESULT_HEADERS, rows)
    counts = Counter(r.status for r in report.results.values())
    summary = ", ".join(f"{counts[s]} {s.value}" for s in Status if counts[s]) or "no models"
    stats = report.resolver
    lines.append("")
    lines.append(
        f"{styled_status(report.status)}: {summary}; "
        f"resolver: {stats.models} models, {stats.instances} instances"
    )
    if verbose:
        explained = [
            line for name, result in report.results.items() for line in explain_lines(name, result)
        ]
        if explained:
            lines.extend(["", *explained])
    return lines


@click.command(cls=MonitoringCommand)
@click.argument("config", metavar="CONFIG")
@click.option(
    "--model",
    "models",
    metavar="NAME",
    multiple=True,
    help="Check only this model (repeatable: each one; default: every model).",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Below the table, why each model that is not healthy fails: the request made"
    " (method, URL, answer) or the endpoint, and the error.",
)
@FORMAT_OPTION
def check(config: str, models: tuple[str, ...], verbose: bool, fmt: str) -> None:
    """Run the health checks of CONFIG once and exit with the status.

    Exit codes (monitoring-plugins convention): 0 healthy, 1 degraded,
    2 unhealthy, 3 unknown or an error (bad config, bad usage, unknown model).
    Errors go to stderr.
    """
    registry = StrategyRegistry()
    server_config = load_or_exit(config, registry)
    redact = Redactor.for_config(server_config)
    wanted = list(dict.fromkeys(models))  # each once, in the order asked
    for model in wanted:
        if model not in server_config.models:
            known = ", ".join(server_config.models) or "(none)"
            raise fail(f"unknown model {model!r}; models in {config}: {known}")
    try:
        # Not asyncio.run: it would wait forever for a check that swallows cancellation.
        started = functools.partial(end_startup, click.get_current_context())
        report = run_bounded(_run(server_config, registry, wanted, started=started))
    except HealthkitError as exc:
        # A strategy that cannot even start (a missing CA bundle, say): nothing was checked.
        raise fail(redact(f"error: {exc}")) from None
    if fmt == "json":
        # The same function as HealthReport.to_dict: the API and the CLI agree on the shape.
        emit([json.dumps(redact.data(report.to_dict()), indent=2)])
    else:
        emit(redact(line) for line in report_lines(report, verbose=verbose))
    # The status, even when the reader closed the pipe early (emit drops the rest).
    raise click.exceptions.Exit(EXIT_CODES[report.status])
