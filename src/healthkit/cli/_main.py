"""The ``healthkit`` click group; each subcommand lives in its own module."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="healthkit")
def cli() -> None:
    """Pluggable, per-model health checks for model servers."""


def main() -> None:
    cli()
