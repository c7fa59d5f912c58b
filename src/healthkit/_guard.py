"""Run one check so that nothing escapes: exceptions, hangs and garbage become results."""

from __future__ import annotations

import asyncio
import time

import attrs

from ._monitor_settings import MonitorSettings
from ._result import CheckResult, ErrorInfo, Target
from ._status import Status
from ._strategy import Strategy, StrategySpec

__all__ = ["deadline_for", "guarded_check"]


async def guarded_check(
    strategy: Strategy, name: str, target: Target, *, timeout: float | None = None
) -> CheckResult:
    """Call ``strategy.acheck(target)``; never raises (except on cancellation).

    ``timeout`` is a hard deadline enforced here even if the strategy ignores
    its own. A missing latency is filled in with the measured one.
    """
    start = time.perf_counter()
    ran_for = 0.0

    async def timed() -> object:
        # wait_for runs this in a task of its own: time it from inside, so the
        # latency is the check's and not the time the task waited to be scheduled.
        nonlocal ran_for
        began = time.perf_counter()
        try:
            return await strategy.acheck(target)
        finally:
            ran_for = time.perf_counter() - began

    try:
        if timeout is None:
            result: object = await timed()
        else:
            result = await asyncio.wait_for(timed(), timeout)
    except asyncio.TimeoutError:
        elapsed = time.perf_counter() - start
        return CheckResult(
            status=Status.UNHEALTHY,
            strategy=name,
            target=target,
            latency=elapsed,
            detail=f"check timed out after {timeout:g}s",
            error=ErrorInfo(type="TimeoutError", message=f"no answer within {timeout:g}s"),
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return CheckResult(
            status=Status.UNHEALTHY,
            strategy=name,
            target=target,
            latency=time.perf_counter() - start,
            detail=f"check raised {type(exc).__name__}: {exc}",
            error=ErrorInfo.from_exception(exc),
        )
    elapsed = ran_for
    if not isinstance(result, CheckResult):
        return CheckResult(
            status=Status.UNHEALTHY,
            strategy=name,
            target=target,
            latency=elapsed,
            detail=f"strategy returned {type(result).__name__}, not a CheckResult",
            error=ErrorInfo(type="TypeError", message="acheck() must return a CheckResult"),
        )
    if result.latency == 0.0:
        result = attrs.evolve(result, latency=elapsed)
    return result


def deadline_for(spec: StrategySpec, settings: MonitorSettings) -> float:
    """The hard cap of one check: ``timeout`` per attempt plus backoff, plus a little grace.

    The grace (10 % of ``timeout``, at most 0.25 s) lets a strategy that honours
    its own timeout report it, with its better message, before the monitor cuts it.
    """
    attempts = int(getattr(spec.config, "retries", 0) or 0) + 1
    gap = float(getattr(spec.config, "backoff_max", 0.0) or 0.0)
    gap += float(getattr(spec.config, "backoff", 0.0) or 0.0)  # the jitter on top
    backoff = gap * (attempts - 1)
    return settings.timeout * attempts + backoff + min(0.1 * settings.timeout, 0.25)
