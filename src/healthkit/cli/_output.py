"""What the CLI commands share: exit codes, config loading, tables, redaction, plan output."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import click

from .._config import ServerConfig, describe_spec, load_config
from .._errors import ConfigError, ConfigIssue, HealthkitError
from .._guard import run_bounded
from .._redact import Redactor
from .._registry import StrategyRegistry
from .._resolver import ONE_SHOT_CLOSE_TIMEOUT, Resolver, child_specs
from .._result import CheckResult
from .._status import Status
from .._strategy import StrategySpec

if TYPE_CHECKING:
    from .._plan import PlannedInstance

__all__ = [
    "EXIT_CODES",
    "EXIT_ERROR",
    "FORMAT_OPTION",
    "MonitoringCommand",
    "RESULT_HEADERS",
    "Redactor",
    "color_setting",
    "create_instances",
    "dedupe_plan",
    "emit",
    "explain_lines",
    "fail",
    "load_or_exit",
    "plan_dict",
    "plan_figures",
    "plan_lines",
    "quiet_stdout",
    "result_dict",
    "result_rows",
    "spec_summary",
    "styled_status",
    "table",
]

#: The monitoring-plugins convention (Nagios, Icinga): 0 OK, 1 warning, 2 critical, 3 unknown.
EXIT_CODES: Mapping[Status, int] = {
    Status.HEALTHY: 0,
    Status.DEGRADED: 1,
    Status.UNHEALTHY: 2,
    Status.UNKNOWN: 3,
}
#: A config error, a usage error or an unknown model: we could not tell, so "unknown".
EXIT_ERROR = 3

_STATUS_COLORS = {
    Status.HEALTHY: "green",
    Status.DEGRADED: "yellow",
    Status.UNKNOWN: "magenta",
    Status.UNHEALTHY: "red",
}

FORMAT_OPTION = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output for humans (table) or machines (json).",
)


class MonitoringCommand(click.Command):
    """A command whose usage errors exit 3 rather than click's 2.

    Exit code 2 means "unhealthy" to a probe or a monitoring system, so a typo
    in a flag must not read as a failing model.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _UsageError(exc.format_message(), exc.ctx) from None


class _UsageError(click.UsageError):
    exit_code = EXIT_ERROR


def color_setting(choice: str, environ: Mapping[str, str]) -> bool | None:
    """``--color`` as ``click.Context.color``: ``None`` lets click colour only a terminal.

    ``auto`` also honours the conventions for turning colour off: ``NO_COLOR`` set
    to anything but the empty string (https://no-color.org), and ``TERM=dumb``.
    """
    if choice == "always":
        return True
    if choice == "never" or environ.get("NO_COLOR") or environ.get("TERM") == "dumb":
        return False
    return None


def quiet_stdout() -> None:
    """Point stdout at /dev/null: the reader is gone, and a flush at exit must not fail."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test runner's buffer): nothing will flush into a pipe
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def emit(lines: Iterable[str]) -> None:
    """Write ``lines`` to stdout; a reader that goes away (``| head -1``) only ends the output.

    The command's exit code (its status) must not change because nobody reads
    the rest: the remaining lines are dropped, quietly.
    """
    try:
        for line in lines:
            click.echo(line)
    except BrokenPipeError:
        quiet_stdout()


def fail(message: str, code: int = EXIT_ERROR) -> click.exceptions.Exit:
    """Print ``message`` on stderr; the caller raises the returned exception."""
    click.echo(message, err=True)
    return click.exceptions.Exit(code)


def load_or_exit(path: str, registry: StrategyRegistry) -> ServerConfig:
    """Load a config; on any problem print every issue (with its path) on stderr and exit 3."""
    try:
        return load_config(path, registry=registry)
    except ConfigError as exc:
        text = str(exc)
        if exc.source is None:
            # File-level problems (unreadable, wrong suffix) carry no source: name the file.
            text = f"{path}: {text}"
        raise fail(text) from None


def create_instances(config: ServerConfig, registry: StrategyRegistry) -> list[ConfigIssue]:
    """Create (then close) every distinct instance of ``config``; the ones that fail, as issues.

    What ``serve`` and ``check`` will do first, without contacting anything: a
    value that loads but cannot be used (a header httpx refuses, a missing TLS
    file) shows up here, at the path of the models that use it. Messages are
    redacted.
    """
    redact = Redactor.for_config(config)

    async def attempt() -> list[ConfigIssue]:
        resolver = Resolver(registry, close_timeout=ONE_SHOT_CLOSE_TIMEOUT)
        failures: dict[Any, tuple[str, list[str]]] = {}
        try:
            for model in config.models.values():
                spec = model.check
                if spec in failures:
                    failures[spec][1].append(model.name)
                    continue
                try:
                    resolver.acquire(model.name, spec)
                except HealthkitError as exc:
                    failures[spec] = (redact(str(exc)), [model.name])
        finally:
            # Each close is bounded (ONE_SHOT_CLOSE_TIMEOUT): the process exits next.
            await resolver.aclose()
        issues = []
        for message, names in failures.values():
            path = f"models.{names[0]}.health_check"
            shared = ""
            if len(names) > 1:
                listed = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
                shared = f" (shared by {len(names)} models: {listed})"
            issues.append(ConfigIssue(path, f"cannot be created: {message}{shared}"))
        return issues

    # Not asyncio.run: a plugin task that swallows cancellation must not hold the exit.
    return run_bounded(attempt())


# -- results ------------------------------------------------------------------------


def styled_status(status: Status, width: int = 0) -> str:
    return click.style(status.value.ljust(width), fg=_STATUS_COLORS[status], bold=True)


def result_dict(result: CheckResult) -> dict[str, Any]:
    """One model in ``check --format json``: ``CheckResult.to_dict`` (one shape everywhere)."""
    return result.to_dict()


def _latency(result: CheckResult) -> str:
    return f"{result.latency_ms:.1f} ms"


#: Columns of ``result_rows``.
RESULT_HEADERS = ("MODEL", "STATUS", "STRATEGY", "ENDPOINT", "LATENCY", "DETAIL")


def result_rows(
    name: str, result: CheckResult, depth: int = 0
) -> list[tuple[str, Status, str, str, str, str]]:
    """Table rows for one result: the model, then its children indented below it.

    A child is labelled by its index and strategy (its target is the parent's
    model, which says nothing); the ENDPOINT column says what each one contacted.
    """
    endpoint = result.endpoint or "-"
    rows = [(name, result.status, result.strategy, endpoint, _latency(result), result.detail)]
    for index, child in enumerate(result.children):
        label = "  " * (depth + 1) + f"[{index}] {child.strategy}"
        rows.extend(result_rows(label, child, depth + 1))
    return rows


def explain_lines(name: str, result: CheckResult, depth: int = 0) -> list[str]:
    """Why ``result`` is not healthy: the request made (or the endpoint), the error.

    For ``check -v``: one block per result that is not healthy, its failing
    children below it. The caller redacts the lines.
    """
    if result.status is Status.HEALTHY:
        return []
    pad = "  " * (depth + 1)
    lines = [f"{pad[:-2]}{name}: {result.status.value}: {result.detail or '(no detail)'}"]
    if result.request is not None:
        lines.append(f"{pad}request: {result.request}")
    elif result.endpoint is not None:
        lines.append(f"{pad}endpoint: {result.endpoint}")
    if result.error is not None:
        lines.append(f"{pad}error: {result.error.type}: {result.error.message}")
    for index, child in enumerate(result.children):
        lines.extend(explain_lines(f"[{index}] {child.strategy}", child, depth + 1))
    return lines


def table(headers: Sequence[str], rows: Sequence[Sequence[str | Status]]) -> list[str]:
    """Left-aligned columns; a ``Status`` cell is coloured (click drops colour when piped)."""
    cells = [[c.value if isinstance(c, Status) else c for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for raw, row in zip(rows, cells, strict=True):
        parts = []
        for i, (orig, cell) in enumerate(zip(raw, row, strict=True)):
            last = i == len(row) - 1
            if isinstance(orig, Status):
                parts.append(styled_status(orig, 0 if last else widths[i]))
            else:
                parts.append(cell if last else cell.ljust(widths[i]))
        lines.append("  ".join(parts).rstrip())
    return lines


# -- the dedupe plan (computed by the resolver) --------------------------------------


def dedupe_plan(config: ServerConfig) -> list[PlannedInstance]:
    """The instances a resolver would create for ``config``: :meth:`Resolver.plan`."""
    return Resolver.plan((model.name, model.check) for model in config.models.values())


def _defaults(cls: type[Any]) -> dict[str, Any]:
    """Each field of ``cls`` that has a default: that default, as its converter makes it.

    attrs itself builds the defaults (running the converters) on a class of those
    fields alone, so nothing here depends on how attrs wraps a converter.
    """
    fields = {
        f.name: f
        for f in attrs.fields(cls)
        if f.default is not attrs.NOTHING
        and not (isinstance(f.default, attrs.Factory) and f.default.takes_self)  # type: ignore[arg-type]
    }

    def build(names: Iterable[str]) -> dict[str, Any]:
        spec = {
            n: attrs.field(default=fields[n].default, converter=fields[n].converter) for n in names
        }
        made = attrs.make_class("Defaults", spec)()
        return {n: getattr(made, n) for n in names}

    try:
        return build(fields)
    except Exception:
        out: dict[str, Any] = {}
        for name in fields:
            # A default its own converter rejects is just "not a default".
            with contextlib.suppress(Exception):
                out.update(build([name]))
        return out


def _render(value: Any, ids: Mapping[StrategySpec, int]) -> str:
    if isinstance(value, StrategySpec):
        return f"#{ids[value]}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_render(v, ids) for v in value) + "]"
    return "?"


def spec_summary(
    spec: StrategySpec,
    ids: Mapping[StrategySpec, int],
    *,
    redact: Callable[[str], str] | None = None,
    defaults: dict[type[Any], dict[str, Any]] | None = None,
) -> str:
    """``strategy key=value ...``: the redacted spec without the keys left at their defaults.

    ``defaults`` caches the defaults of each config class across calls.
    """
    described = describe_spec(spec, redact=redact)
    parts = [spec.strategy]
    config = spec.config
    if config is None or not attrs.has(type(config)):
        return spec.strategy
    cache = {} if defaults is None else defaults
    known = cache.get(type(config))
    if known is None:
        known = cache[type(config)] = _defaults(type(config))
    for field in attrs.fields(type(config)):
        key = field.alias or field.name
        if key not in described:
            continue  # hidden from reprs: never shown
        value = getattr(config, field.name)
        try:
            if field.name in known and bool(value == known[field.name]):
                continue
        except Exception:
            pass  # an odd __eq__ only means the value is shown
        if child_specs(value):
            shown = _render(value, ids)
        else:
            public = described[key]
            shown = public if isinstance(public, str) else json.dumps(public)
        parts.append(f"{key}={shown}")
    return " ".join(parts)


def plan_lines(
    plan: Sequence[PlannedInstance],
    *,
    width: int = 100,
    redact: Callable[[str], str] | None = None,
) -> list[str]:
    """The dedupe plan for humans: each instance, its redacted spec and who shares it."""
    ids = {p.spec: p.id for p in plan}
    defaults: dict[type[Any], dict[str, Any]] = {}
    lines: list[str] = []
    for p in plan:
        holders = []
        if p.models:
            holders.append(f"{len(p.models)} model{'s' if len(p.models) != 1 else ''}")
        if p.used_by:
            holders.append(f"{len(p.used_by)} composite{'s' if len(p.used_by) != 1 else ''}")
        shared = f"  (shared: {' + '.join(holders)})" if len(p.models) + len(p.used_by) > 1 else ""
        summary = spec_summary(p.spec, ids, redact=redact, defaults=defaults)
        lines.append(f"#{p.id} {summary}{shared}")
        if p.models:
            label = "models" if len(p.models) > 1 else "model"
            lines.append(
                textwrap.fill(
                    ", ".join(p.models),
                    width=width,
                    initial_indent=f"    {label}: ",
                    subsequent_indent=" " * (len(label) + 6),
                    break_on_hyphens=False,
                )
            )
        if p.used_by:
            lines.append("    child of: " + ", ".join(f"#{i}" for i in p.used_by))
    return lines


def plan_figures(plan: Sequence[PlannedInstance]) -> tuple[int, int]:
    """``(models, instances)`` as a resolver holding this plan would report them."""
    return sum(len(p.models) for p in plan), len(plan)


def plan_dict(
    plan: Sequence[PlannedInstance], *, redact: Callable[[str], str] | None = None
) -> dict[str, Any]:
    models, instances = plan_figures(plan)
    return {
        "resolver": {"models": models, "instances": instances},
        "models": {name: p.id for p in plan for name in p.models},
        "instances": [
            {
                "id": p.id,
                "strategy": p.spec.strategy,
                "spec": describe_spec(p.spec, redact=redact),
                "models": list(p.models),
                "used_by": list(p.used_by),
                "children": list(p.children),
            }
            for p in plan
        ],
    }
