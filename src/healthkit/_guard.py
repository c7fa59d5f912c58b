"""Run one check so that nothing escapes: exceptions, hangs and garbage become results.

A check that swallows ``CancelledError`` cannot be stopped, only left behind:
the hard cap of :func:`guarded_check` cancels it and stops waiting, so the
caller gets its ``timed out`` result on time whatever the check does next.
That cap serves ``HealthKit.acheck``, composite children and the conformance
suite; the monitor calls :func:`guarded_check` without one and cuts its checks
with a timer of its own (``healthkit._monitoring._runner``), at
:func:`deadline_for`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

from ._monitor_settings import MonitorSettings
from ._result import CheckResult, ErrorInfo, Target, with_latency
from ._status import Status
from ._strategy import Strategy, StrategySpec

__all__ = [
    "CANCEL_GRACE",
    "abandon",
    "close_loop",
    "deadline_for",
    "grace_for",
    "guarded_check",
    "raised_result",
    "returned_result",
    "run_bounded",
    "wait_abandoning",
]

log = logging.getLogger("healthkit.guard")

T = TypeVar("T")

#: Seconds a cancelled check gets to finish its cleanup before it is left behind.
#: A check that honours cancellation ends within a loop iteration or two.
CANCEL_GRACE = 0.1

# asyncio keeps only weak references to tasks: an abandoned task must be held
# until it ends, or it could be collected mid-flight. Per loop, so that tasks
# of a closed loop go with it.
_abandoned: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set[asyncio.Future[Any]]] = (
    weakref.WeakKeyDictionary()
)


def _forget(task: asyncio.Future[Any]) -> None:
    held = _abandoned.get(task.get_loop())
    if held is not None:
        held.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" at exit


def abandon(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and stop caring about it: it is held until it ends, never awaited."""
    task.cancel()
    if task.done():
        _forget(task)
        return
    _abandoned.setdefault(task.get_loop(), set()).add(task)
    task.add_done_callback(_forget)


async def wait_abandoning(
    task: asyncio.Future[T], timeout: float, *, grace: float = CANCEL_GRACE
) -> tuple[bool, T | None]:
    """Wait up to ``timeout`` for ``task``; past it, cancel it and wait at most ``grace`` more.

    Returns ``(True, result)`` when the task finished in time (its exception is
    raised), else ``(False, None)``, the task cancelled and, if it is still
    running (it swallowed the cancellation), abandoned. If the caller is
    cancelled, the task is abandoned the same way and the cancellation goes on.
    """
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if done:
            return True, task.result()
        task.cancel()
        if grace > 0:
            await asyncio.wait({task}, timeout=grace)
    except asyncio.CancelledError:
        abandon(task)
        raise
    abandon(task)
    return False, None


async def guarded_check(
    strategy: Strategy, name: str, target: Target, *, timeout: float | None = None
) -> CheckResult:
    """Call ``strategy.acheck(target)``; never raises (except on cancellation).

    ``timeout`` is a hard deadline enforced here even if the strategy ignores
    its own: the check is cancelled, and one that swallows the cancellation is
    left behind (it cannot hold the caller past ``timeout`` plus
    :data:`CANCEL_GRACE`). A missing latency is filled in with the measured one.
    """
    start = time.perf_counter()
    ran_for = 0.0

    async def timed() -> object:
        # The check runs in a task of its own: time it from inside, so the latency
        # is the check's and not the time the task waited to be scheduled.
        nonlocal ran_for
        began = time.perf_counter()
        try:
            return await strategy.acheck(target)
        finally:
            ran_for = time.perf_counter() - began

    try:
        if timeout is None:
            # Awaited in this coroutine: no inner coroutine to time it (the monitor's
            # path, once per probe).
            try:
                result: object = await strategy.acheck(target)
            finally:
                ran_for = time.perf_counter() - start
        else:
            task = asyncio.get_running_loop().create_task(timed(), name=f"check of {name!r}")
            finished, result = await wait_abandoning(task, timeout)
            if not finished:
                return CheckResult(
                    status=Status.UNHEALTHY,
                    strategy=name,
                    target=target,
                    latency=time.perf_counter() - start,
                    detail=f"check timed out after {timeout:g}s",
                    error=ErrorInfo(type="TimeoutError", message=f"no answer within {timeout:g}s"),
                )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return raised_result(name, target, exc, time.perf_counter() - start)
    return returned_result(name, target, result, ran_for)


def raised_result(name: str, target: Target, exc: Exception, elapsed: float) -> CheckResult:
    """What a check that raised ``exc`` after ``elapsed`` seconds answers."""
    return CheckResult(
        status=Status.UNHEALTHY,
        strategy=name,
        target=target,
        latency=elapsed,
        detail=f"check raised {type(exc).__name__}: {exc}",
        error=ErrorInfo.from_exception(exc),
    )


def returned_result(name: str, target: Target, value: object, elapsed: float) -> CheckResult:
    """What a check that returned ``value`` after ``elapsed`` seconds answers: ``value``
    (its latency filled in if the strategy left 0), or why it is not a result."""
    if not isinstance(value, CheckResult):
        return CheckResult(
            status=Status.UNHEALTHY,
            strategy=name,
            target=target,
            latency=elapsed,
            detail=f"strategy returned {type(value).__name__}, not a CheckResult",
            error=ErrorInfo(type="TypeError", message="acheck() must return a CheckResult"),
        )
    if value.latency == 0.0:
        return with_latency(value, elapsed)
    return value


# -- the hard cap of one check ----------------------------------------------------------


# Config classes whose check_deadline was unusable, so it is reported once, not per check.
_warned: weakref.WeakSet[type[Any]] = weakref.WeakSet()


def _declared_deadline(config: Any, timeout: float) -> float | None:
    method = getattr(type(config), "check_deadline", None)
    if method is None:
        return None
    try:
        value = config.check_deadline(timeout)
        seconds = float(value)
        if isinstance(value, bool) or not math.isfinite(seconds) or seconds <= 0:
            raise ValueError(f"returned {value!r}, not a positive number of seconds")
    except Exception as exc:  # a plugin's bug must not take the host down
        cls = type(config)
        try:
            first = cls not in _warned
            _warned.add(cls)
        except TypeError:  # not weak-referenceable: warn every time rather than never
            first = True
        if first:
            log.warning(
                "%s.check_deadline(%g) failed (%s: %s); assuming one attempt",
                cls.__qualname__,
                timeout,
                type(exc).__name__,
                exc,
            )
        return None
    return seconds


def deadline_for(spec: StrategySpec, settings: MonitorSettings) -> float:
    """The hard cap of one check: the strategy's declared deadline plus a little grace.

    The declared deadline is ``spec.config.check_deadline(settings.timeout)``
    (see :class:`~healthkit._strategy.DeadlineConfig`), else ``settings.timeout``
    (one attempt), plus :func:`grace_for` ``(timeout)``.
    """
    declared = _declared_deadline(spec.config, settings.timeout)
    base = settings.timeout if declared is None else max(declared, settings.timeout)
    return base + grace_for(settings.timeout)


def grace_for(timeout: float) -> float:
    """Seconds the monitor's cap allows past a check's own deadline.

    10 % of ``timeout``, at least 0.1 s (or ``timeout`` itself when that is
    shorter), at most 0.25 s. It lets a strategy that honours its own timeout
    report it, with its better message, before the monitor cuts it: under load
    the event loop runs that strategy's timer tens of milliseconds late, which a
    grace of 10 % alone (50 ms at a 0.5 s timeout) did not cover.
    """
    return min(max(0.1 * timeout, min(0.1, timeout)), 0.25)


# -- one-shot event loops ----------------------------------------------------------------


def close_loop(loop: asyncio.AbstractEventLoop, *, cleanup_timeout: float = 0.5) -> None:
    """Cancel ``loop``'s leftover tasks, give them ``cleanup_timeout`` seconds, close the loop.

    Unlike :func:`asyncio.run`'s own cleanup, a task that ignores cancellation
    cannot hold the caller: it is left behind (a warning says how many were).
    """
    try:
        left = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.wait(left, timeout=cleanup_timeout))
        stuck = [t for t in left if not t.done()]
        for task in left:
            if task.done() and not task.cancelled():
                task.exception()
        if stuck:
            log.warning(
                "left behind, as they ignored cancellation: %s",
                ", ".join(sorted(t.get_name() for t in stuck)),
            )
            for task in stuck:
                # Closing the loop without them is deliberate: do not report them again.
                task._log_destroy_pending = False  # type: ignore[attr-defined]
        # The default executor is not joined: a thread stuck in a blocking call
        # would hold the exit just the same (close() shuts it down without waiting).
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


def run_bounded(main: Coroutine[Any, Any, T], *, cleanup_timeout: float = 0.5) -> T:
    """Like :func:`asyncio.run`, but tasks still running at the end cannot hold the exit.

    ``asyncio.run`` cancels leftover tasks and waits for every one of them: a
    check that swallows cancellation would keep a one-shot command alive
    forever. Here they get ``cleanup_timeout`` seconds (see :func:`close_loop`).
    """
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main)
    finally:
        close_loop(loop, cleanup_timeout=cleanup_timeout)
