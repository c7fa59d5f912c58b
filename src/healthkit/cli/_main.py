"""The ``healthkit`` click group.

Each subcommand lives in its own module and is imported only when it runs, so
``healthkit check`` never pays for the web server that ``healthkit serve`` needs.
"""

from __future__ import annotations

import importlib

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
def cli() -> None:
    """Pluggable, per-model health checks for model servers."""


def main() -> None:
    cli()
