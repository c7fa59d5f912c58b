"""``healthkit history CONFIG``: uptime, checks and transitions per model from its history."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from .._registry import StrategyRegistry
from ..history import HistoryError, HistoryStore, parse_duration
from ._output import FORMAT_OPTION, MonitoringCommand, Redactor, emit, fail, load_or_exit, table

__all__ = ["history"]

#: Transitions shown per model in the table (all of them in JSON).
_SHOWN = 20


def _since(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.3f}%".replace(".000%", "%")


def _ms(seconds: float, checks: int) -> str:
    return "-" if not checks else f"{seconds * 1000:.1f}ms"


@click.command(cls=MonitoringCommand)
@click.argument("config", metavar="CONFIG")
@click.option("--model", "model", metavar="NAME", help="Only this model.")
@click.option(
    "--since",
    "since",
    default="24h",
    show_default=True,
    callback=_since,
    help="How far back: seconds, or 15m, 24h, 7d, 2w.",
)
@FORMAT_OPTION
def history(config: str, model: str | None, since: float, fmt: str) -> None:
    """Show each model's uptime, checks and transitions from CONFIG's [history] file.

    Reads the SQLite file that `healthkit serve` writes (docs/config.md#history);
    nothing is contacted and the file is not changed. Uptime is the share of
    known time the model was healthy or degraded. Exits 0, or 3 when the config
    has no [history], the file is missing or unusable, or the model is unknown.
    """
    registry = StrategyRegistry()
    server_config = load_or_exit(config, registry)
    if server_config.history is None:
        raise fail(f"{config}: no [history] section: nothing records history for this config")
    try:
        store = HistoryStore(server_config.history.path, readonly=True)
        stored = store.models()
    except HistoryError as exc:
        raise fail(f"{config}: {exc}") from None
    names = sorted({*server_config.models, *stored})
    if model is not None:
        if model not in names:
            raise fail(f"{config}: no model {model!r} in the config or its history")
        names = [model]
    redact = Redactor.for_config(server_config)
    window = dt.timedelta(seconds=since)
    rows: list[dict[str, Any]] = []
    try:
        for name in names:
            latency = store.latency(name, window)
            minutes = store.minutes(name, window)
            rows.append(
                {
                    "name": name,
                    "configured": name in server_config.models,
                    "uptime": store.uptime(name, window),
                    "checks": latency.checks,
                    "failures": sum(m.failures for m in minutes),
                    "latency": latency.to_dict(),
                    "transitions": [
                        {**t.to_dict(), "detail": None if t.detail is None else redact(t.detail)}
                        for t in store.transitions(name, window)
                    ],
                }
            )
    except HistoryError as exc:
        raise fail(f"{config}: {exc}") from None
    if fmt == "json":
        data = {"history": store.path, "since_seconds": since, "models": rows}
        emit([json.dumps(data, indent=2)])
        return
    lines = [f"{store.path}: last {_span(since)}", ""]
    lines.extend(
        table(
            ("MODEL", "UPTIME", "CHECKS", "FAILURES", "P50", "P95", "P99", "TRANSITIONS"),
            [
                (
                    r["name"] + ("" if r["configured"] else " (not in config)"),
                    _percent(r["uptime"]),
                    str(r["checks"]),
                    str(r["failures"]),
                    _ms(r["latency"]["p50"], r["checks"]),
                    _ms(r["latency"]["p95"], r["checks"]),
                    _ms(r["latency"]["p99"], r["checks"]),
                    str(len(r["transitions"])),
                )
                for r in rows
            ],
        )
    )
    shown = sorted(
        (t for r in rows for t in r["transitions"][-_SHOWN:]), key=lambda t: str(t["at"])
    )
    lines.append("")
    if not shown:
        lines.append("no transitions")
    else:
        lines.append(f"transitions (the last {_SHOWN} per model):")
        for t in shown:
            detail = f" ({t['detail']})" if t["detail"] else ""
            lines.append(f"  {t['at']}  {t['model']}: {t['old']} -> {t['new']}{detail}")
    emit(lines)


def _span(seconds: float) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
