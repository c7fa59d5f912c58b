"""The ``healthkit`` command line.

:func:`main` is the process entry point (the ``healthkit`` console script and
``python -m healthkit``); :data:`cli`, the click group, is imported on first use,
so that :func:`main` runs before the commands are imported (see ``_startup``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._main import cli

__all__ = ["cli", "main"]


def main(*, prog_name: str | None = None) -> None:
    """Run one ``healthkit`` command in this process and exit with its code."""
    from ._startup import pause_collector

    # Before the commands are imported: their modules are most of start-up.
    paused = pause_collector()
    from ._main import cli

    cli.main(prog_name=prog_name, collector_paused=paused)


def __getattr__(name: str) -> object:
    if name == "cli":
        from ._main import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
