"""A process that runs one ``healthkit`` command: the garbage collector during start-up.

A one-shot command (``healthkit check``, started every few seconds by exec probes)
builds its start-up objects once (every module it imports, the registry, the
config, the strategy instances) and they live until it exits. The cyclic
collector, which runs after every few hundred allocations, walks them again and
again and finds nothing to free: about a tenth of a check's cold start.

So the process entry point (:func:`healthkit.cli.main`: the ``healthkit``
console script and ``python -m healthkit``) pauses the collector before it
imports the commands, and start-up ends when the command says so (``check``:
once its strategy instances exist, before any check runs) or else as soon as the
command is found. Then what start-up built is frozen (``gc.freeze``: the
collector never walks it again, as ``healthkit serve`` does once it serves) and
the collector resumes, so checks, a long ``serve`` and anything they leave
behind are collected as usual. The CLI run in-process (click's test runner, a
program that embeds it) is left alone: only the entry point pauses.
"""

from __future__ import annotations

import gc

import click

__all__ = ["end_startup", "mark_paused", "pause_collector"]

#: ``click.Context.meta`` key (shared by a command's contexts): the entry point paused
#: the collector and start-up has not ended yet.
_PAUSED = "healthkit.startup.collector_paused"


def pause_collector() -> bool:
    """Pause the cyclic collector; whether it was running (and is now paused)."""
    if not gc.isenabled():
        return False  # someone else's choice: leave it, and never resume it
    gc.disable()
    return True


def mark_paused(ctx: click.Context) -> None:
    """Record in ``ctx`` (and every context below it) that the entry point paused it."""
    ctx.meta[_PAUSED] = True


def end_startup(ctx: click.Context) -> None:
    """Start-up is over: freeze what it built and resume the collector (once; only if
    the entry point paused it)."""
    if ctx.meta.pop(_PAUSED, False):
        gc.freeze()
        gc.enable()
