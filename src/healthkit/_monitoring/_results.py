"""What a check call turns into: one result per target, a monitor-cut timeout, a starved check.

The results of a batch call (``acheck_many``) however it ended, the result of a
check the monitor cut at its deadline, and the ``unknown`` that replaces a
timeout the checker caused itself by starving its event loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .._result import CheckResult, ErrorInfo, Target
from .._status import Status
from ._outage import STARVED, STARVED_SHARE, is_timeout
from ._runner import Job


def _unless_starved(result: CheckResult, job: Job) -> CheckResult:
    """``result``, or ``unknown`` when it is a timeout the checker itself caused.

    A check cut (by the monitor or its own countdown) while the event loop could
    not run for more than :data:`STARVED_SHARE` of its deadline says nothing about
    the upstream: a checker starved of CPU would otherwise call healthy models
    down. The outage detector ignores such timeouts by the same rule; the model's
    thresholds and staleness clock ignore the ``unknown`` this returns, and the
    watchdog (``/livez``) is what reports the starvation.
    """
    if job.starved <= STARVED_SHARE * job.deadline or not is_timeout(result):
        return result
    return attrs.evolve(
        result,
        status=Status.UNKNOWN,
        detail=(
            f"not checked: the checker's event loop was starved for {job.starved:.2f}s of the"
            f" {job.deadline:g}s deadline ({result.detail})"
        ),
        error=ErrorInfo(type=STARVED, message=result.error.message if result.error else ""),
    )


def _timeout_result(name: str, target: Target, deadline: float, elapsed: float) -> CheckResult:
    return CheckResult(
        status=Status.UNHEALTHY,
        strategy=name,
        target=target,
        latency=elapsed,
        detail=f"check timed out after {deadline:g}s (cut by the monitor)",
        error=ErrorInfo(type="TimeoutError", message=f"no answer within {deadline:g}s"),
    )


def _failed(
    name: str, target: Target, detail: str, error: ErrorInfo, elapsed: float
) -> CheckResult:
    return CheckResult(
        status=Status.UNHEALTHY,
        strategy=name,
        target=target,
        latency=elapsed,
        detail=detail,
        error=error,
    )


def _batch_results(
    name: str,
    targets: Sequence[Target],
    answers: Any,
    error: BaseException | None,
    timed_out: bool,
    deadline: float,
) -> list[CheckResult]:
    """One result per target from whatever ``acheck_many`` did (or failed to do)."""
    failure: tuple[str, ErrorInfo] | None = None
    if timed_out:
        failure = (
            f"batch check timed out after {deadline:g}s (cut by the monitor)",
            ErrorInfo(type="TimeoutError", message=f"no answer within {deadline:g}s"),
        )
    elif error is not None:
        failure = (
            f"batch check raised {type(error).__name__}: {error}",
            ErrorInfo.from_exception(error),
        )
    elif not isinstance(answers, Mapping):
        failure = (
            f"acheck_many returned {type(answers).__name__}, not a mapping",
            ErrorInfo(type="TypeError", message="acheck_many() must return a mapping"),
        )
    out: list[CheckResult] = []
    for target in targets:
        if failure is not None:
            out.append(_failed(name, target, failure[0], failure[1], 0.0))
            continue
        result = answers.get(target)
        if isinstance(result, CheckResult):
            out.append(result)
        elif result is None:
            detail = f"batch answer has no result for {target}"
            info = ErrorInfo(type="KeyError", message=f"no result for {target}")
            out.append(_failed(name, target, detail, info, 0.0))
        else:
            detail = f"batch answer for {target} is {type(result).__name__}, not a CheckResult"
            info = ErrorInfo(type="TypeError", message="acheck_many() values must be results")
            out.append(_failed(name, target, detail, info, 0.0))
    return out
