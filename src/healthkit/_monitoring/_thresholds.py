"""Readiness from consecutive results (Kubernetes semantics), as a pure state machine.

No clock, no asyncio, no I/O: a :class:`ThresholdState` and a result's status
give the next state. The monitor keeps one state per model.
"""

from __future__ import annotations

import enum

import attrs

from .._status import Status

__all__ = ["Readiness", "ThresholdState", "mark_down", "observe", "restart"]


class Readiness(enum.Enum):
    """Whether a model may serve: it starts ``NOT_READY``."""

    NOT_READY = "not_ready"
    READY = "ready"


@attrs.frozen
class ThresholdState:
    """The thresholded view of one model: readiness, status and the current run.

    At most one of ``successes``/``failures`` is non-zero: they count the run of
    equal outcomes that ended with the last result, up to the threshold that needs
    them (a longer run decides nothing more). So the states are few, and
    :func:`observe` hands out one shared instance of each: a monitor of a hundred
    thousand models does not hold a hundred thousand of them.
    """

    readiness: Readiness = Readiness.NOT_READY
    #: ``unknown`` until the first result; ok (healthy/degraded) exactly when ready.
    status: Status = Status.UNKNOWN
    successes: int = 0
    failures: int = 0

    @property
    def ready(self) -> bool:
        return self.readiness is Readiness.READY


def observe(
    state: ThresholdState, status: Status, *, success_threshold: int, failure_threshold: int
) -> ThresholdState:
    """The state after one more result with ``status`` (healthy and degraded succeed).

    * Not ready: ``success_threshold`` consecutive successes make it ready with
      the last status; a failure only changes the status shown (the reason).
    * Ready: a success sets the status (healthy <-> degraded, both still serve);
      ``failure_threshold`` consecutive failures make it not ready, and fewer
      leave both readiness and status unchanged.
    """
    # ``Status.is_ok`` by identity: the property is a Python call, and this runs per result.
    ok = status is Status.HEALTHY or status is Status.DEGRADED
    if ok:
        successes, failures = min(state.successes + 1, success_threshold), 0
    else:
        successes, failures = 0, min(state.failures + 1, failure_threshold)
    readiness, new = state.readiness, state.status
    if readiness is Readiness.READY:
        if ok:
            new = status
        elif failures >= failure_threshold:
            readiness, new = Readiness.NOT_READY, status
    elif ok:
        if successes >= success_threshold:
            readiness, new = Readiness.READY, status
    else:
        # Already not ready: the failure changes nothing but the reason shown.
        new = status
    return _shared(readiness, new, successes, failures)


#: The shared states, by the identities of their enum members (an enum member's hash
#: is a Python call, twice per lookup) and their counts.
_SHARED: dict[tuple[int, int, int, int], ThresholdState] = {}
#: Bound: thresholds are configurable, and the counts stop at them.
_SHARED_MAX = 4096


def _shared(readiness: Readiness, status: Status, successes: int, failures: int) -> ThresholdState:
    key = (id(readiness), id(status), successes, failures)
    state = _SHARED.get(key)
    if state is None:
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        # Enum members live as long as their class: their ids are never reused.
        state = _SHARED[key] = ThresholdState(readiness, status, successes, failures)
    return state


def restart(state: ThresholdState) -> ThresholdState:
    """A new check config: the runs start over, readiness and status stay until it speaks."""
    return ThresholdState(state.readiness, state.status, 0, 0)


def mark_down(state: ThresholdState, status: Status, *, failure_threshold: int) -> ThresholdState:
    """Not ready at once (the model's upstream is down), as if the failures had been seen."""
    return ThresholdState(Readiness.NOT_READY, status, 0, max(state.failures, failure_threshold))
