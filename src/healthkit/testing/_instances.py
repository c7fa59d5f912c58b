"""The frame of a conformance scenario: acquire each spec, probe its instance, close."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

from .._resolver import Resolver
from .._strategy import Strategy, StrategySpec

__all__ = ["Probe", "for_each_instance"]

#: Runs on one instance (``label``, the instance) and returns the problems it found.
Probe = Callable[[str, Strategy], Awaitable[Iterable[str]]]


async def for_each_instance(
    resolver: Resolver,
    specs: Mapping[str, StrategySpec],
    probe: Probe,
    *,
    quiet_close: bool = False,
) -> list[str]:
    """Acquire each spec from ``resolver`` under its label and run ``probe`` on the
    instance, one after the other; the problems of every probe, in order.

    ``resolver`` is closed at the end, even when a probe raises. ``quiet_close``
    hides what healthkit logs while it closes: a scenario that closed the
    instances itself makes the resolver close them a second time.
    """
    problems: list[str] = []
    try:
        for label, spec in specs.items():
            problems.extend(await probe(label, resolver.acquire(label, spec)))
    finally:
        if quiet_close:
            logger = logging.getLogger("healthkit")
            level = logger.level
            logger.setLevel(logging.CRITICAL)
            try:
                await resolver.aclose()
            finally:
                logger.setLevel(level)
        else:
            await resolver.aclose()
    return problems
