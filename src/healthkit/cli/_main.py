"""The ``healthkit`` click group.

Each subcommand lives in its own module and is imported only when it runs, so
``healthkit check`` never pays for the web server that ``healthkit serve`` needs.
"""

from __future__ import annotations

import importlib
import os

import click

#: Subcommand name -> "module:attribute" of its click command.
COMMANDS = {
    "check": "healthkit.cli._check:check",
    "validate": "healthkit.cli._validate:validate",
    "plugins": "healthkit.cli._plugins:plugins",
    "demo": "healthkit.cli._demo:demo",
    "serve": "healthkit.cli._serve:serve",
    "new-plugin": "healthkit.cli._new_plugin:new_plugin",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module_name, attr = COMMANDS[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="healthkit")
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
def cli(plugin_modules: tuple[str, ...], traceback: bool) -> None:
    """Pluggable, per-model health checks for model servers."""
    # Every registry a command builds reads these (see healthkit._registry).
    from .._registry import PLUGINS_ENV_VAR, TRACEBACK_ENV_VAR

    if plugin_modules:
        listed = os.environ.get(PLUGINS_ENV_VAR, "")
        os.environ[PLUGINS_ENV_VAR] = ",".join([*filter(None, [listed]), *plugin_modules])
    if traceback:
        os.environ[TRACEBACK_ENV_VAR] = "1"


def main() -> None:
    cli()
