"""``healthkit plugins``: every strategy and where it comes from, and every plugin that failed."""

from __future__ import annotations

import json
import logging
from typing import Any

import click

from .._registry import TRACEBACK_ENV_VAR, StrategyRegistry, traceback_enabled
from ._output import FORMAT_OPTION, table

__all__ = ["plugins", "plugins_data"]


def plugins_data(registry: StrategyRegistry, *, tracebacks: bool = False) -> dict[str, Any]:
    """The JSON view: ``{"strategies": [...], "notifiers": [...], "failures": [...]}``.

    With ``tracebacks``, each failure has a ``traceback`` (``""`` when none was raised).
    """
    data: dict[str, Any] = {
        "strategies": [
            {
                "name": st.name,
                "plugin": st.plugin,
                "distribution": st.distribution,
                "version": st.version,
                "description": st.description,
                "unavailable": st.unavailable,
            }
            for st in registry.strategies.values()
        ],
        "notifiers": [
            {
                "name": nt.name,
                "plugin": nt.plugin,
                "distribution": nt.distribution,
                "version": nt.version,
                "description": nt.description,
            }
            for nt in registry.notifiers.values()
        ],
        "failures": [
            {
                "plugin": f.name,
                "distribution": f.distribution,
                "version": f.version,
                "stage": f.stage,
                "error": f"{f.error_type}: {f.message}",
            }
            for f in registry.failures
        ],
    }
    if tracebacks:
        for entry, failure in zip(data["failures"], registry.failures, strict=True):
            entry["traceback"] = failure.traceback
    return data


def _origin(distribution: str | None, version: str | None) -> str:
    if distribution is None:
        return "-"
    return f"{distribution} {version}" if version else distribution


@click.command()
@FORMAT_OPTION
def plugins(fmt: str) -> None:
    """List every strategy and notifier with the plugin and distribution it comes from.

    Plugins that failed to import or register, were disabled with
    HEALTHKIT_DISABLE_PLUGINS, or lost a strategy-name conflict are listed
    with their error; every other strategy still works. Always exits 0.
    With `healthkit --traceback plugins` (or HEALTHKIT_TRACEBACK=1) each
    failure's traceback follows the table.
    """
    # This command reports plugin failures itself; the registry's log warnings
    # would only repeat them on stderr.
    logger = logging.getLogger("healthkit")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        registry = StrategyRegistry()
    finally:
        logger.setLevel(level)
    tracebacks = traceback_enabled()
    data = plugins_data(registry, tracebacks=tracebacks)
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
        return
    rows = [
        (
            s["name"],
            s["plugin"],
            _origin(s["distribution"], s["version"]),
            f"UNAVAILABLE: {s['unavailable']}" if s["unavailable"] else s["description"],
        )
        for s in data["strategies"]
    ]
    click.echo(f"strategies ({len(rows)}):")
    for line in table(("STRATEGY", "PLUGIN", "DISTRIBUTION", "DESCRIPTION"), rows):
        click.echo("  " + line)
    nrows = [
        (n["name"], n["plugin"], _origin(n["distribution"], n["version"]), n["description"])
        for n in data["notifiers"]
    ]
    click.echo("")
    click.echo(f"notifiers ({len(nrows)}):")
    for line in table(("NOTIFIER", "PLUGIN", "DISTRIBUTION", "DESCRIPTION"), nrows):
        click.echo("  " + line)
    failures = data["failures"]
    click.echo("")
    if not failures:
        click.echo("failed plugins: none")
        return
    click.echo(f"failed plugins ({len(failures)}):")
    frows = [
        (f["plugin"], _origin(f["distribution"], f["version"]), f["stage"], f["error"])
        for f in failures
    ]
    for line in table(("PLUGIN", "DISTRIBUTION", "STAGE", "ERROR"), frows):
        click.echo("  " + line)
    if not tracebacks:
        if any(f["stage"] in ("import", "register") for f in failures):
            click.echo("")
            click.echo(f"tracebacks: healthkit --traceback plugins (or {TRACEBACK_ENV_VAR}=1)")
        return
    for failure in failures:
        if failure["traceback"]:
            click.echo("")
            click.echo(f"traceback of plugin {failure['plugin']!r}:")
            click.echo(failure["traceback"].rstrip())
