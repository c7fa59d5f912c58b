"""The ``healthkit`` click group.

Each subcommand lives in its own module and is imported only when it runs, so
``healthkit check`` never pays for the web server that ``healthkit serve`` needs.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from ._output import EXIT_ERROR, color_setting, quiet_stdout
from ._startup import end_startup, mark_paused

#: Subcommand name -> "module:attribute" of its click command.
COMMANDS = {
    "check": "healthkit.cli._check:check",
    "validate": "healthkit.cli._validate:validate",
    "plugins": "healthkit.cli._plugins:plugins",
    "demo": "healthkit.cli._demo:demo",
    "serve": "healthkit.cli._serve:serve",
    "new-plugin": "healthkit.cli._new_plugin:new_plugin",
    "history": "healthkit.cli._history:history",
}

#: Commands that end start-up themselves (see ``_startup``): ``check`` once its strategy
#: instances exist. Start-up of every other command ends when it is found.
ENDS_OWN_STARTUP = frozenset({"check"})


class _Context(click.Context):
    """click's context, told by :func:`healthkit.cli.main` that it paused the collector."""

    def __init__(self, *args: Any, collector_paused: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if collector_paused:
            mark_paused(self)


class _LazyGroup(click.Group):
    context_class = _Context

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module_name, attr = COMMANDS[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            assert isinstance(command, click.Command)
            if cmd_name not in ENDS_OWN_STARTUP:
                end_startup(ctx)
            return command
        end_startup(ctx)
        return super().get_command(ctx, cmd_name)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """click's ``main``, with exit codes that mean what a probe reads into them.

        click exits 2 on a usage error (a probe reads "unhealthy") and 1 when a
        reader closes the pipe early (``| head -1``: "degraded", whatever the
        status was). Here a usage error exits 3 ("unknown"), and a closed pipe
        leaves the exit code to the command (``check`` keeps its status).
        """
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        sys.exit(self._run(args, prog_name, complete_var, **extra))

    def _run(
        self,
        args: Sequence[str] | None,
        prog_name: str | None,
        complete_var: str | None,
        **extra: Any,
    ) -> int:
        try:
            try:
                rv = super().main(args, prog_name, complete_var, False, **extra)
            except click.UsageError as exc:
                exc.show()
                return EXIT_ERROR
            except click.ClickException as exc:
                exc.show()
                return exc.exit_code
            except click.Abort:
                click.echo("Aborted!", err=True)
                return EXIT_ERROR
            # Not standalone, click returns an Exit's code, else the callback's value (None).
            code = rv if isinstance(rv, int) else 0
            sys.stdout.flush()
            return code
        except BrokenPipeError:
            # Escaped a command that does not guard its output: what it would have said is
            # lost, so its status is unknown.
            quiet_stdout()
            return EXIT_ERROR


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="model-healthkit")
@click.option(
    "-p",
    "plugin_modules",
    metavar="MODULE",
    multiple=True,
    help="Load a plugin module without installing it (repeatable; env HEALTHKIT_PLUGINS).",
)
@click.option(
    "--traceback",
    is_flag=True,
    help="Show the traceback of each plugin that failed to load (env HEALTHKIT_TRACEBACK=1).",
)
@click.option(
    "--color",
    "color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour the status words: auto = only on a terminal, and not when NO_COLOR is set"
    " or TERM=dumb.",
)
@click.pass_context
def cli(ctx: click.Context, plugin_modules: tuple[str, ...], traceback: bool, color: str) -> None:
    """Pluggable, per-model health checks for model servers."""
    # Every subcommand's context inherits it; click.echo strips styles when it is False.
    ctx.color = color_setting(color, os.environ)
    # Every registry a command builds reads these (see healthkit._registry).
    from .._registry import PLUGINS_ENV_VAR, TRACEBACK_ENV_VAR

    if plugin_modules:
        listed = os.environ.get(PLUGINS_ENV_VAR, "")
        os.environ[PLUGINS_ENV_VAR] = ",".join([*filter(None, [listed]), *plugin_modules])
    if traceback:
        os.environ[TRACEBACK_ENV_VAR] = "1"
