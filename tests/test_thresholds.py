"""The pure threshold state machine: consecutive results -> readiness and status."""

from __future__ import annotations

import hypothesis.strategies as hs
from hypothesis import given, settings

from healthkit import Status
from healthkit._monitoring._thresholds import (
    Readiness,
    ThresholdState,
    mark_down,
    observe,
    restart,
)

H, D, U, X = Status.HEALTHY, Status.DEGRADED, Status.UNHEALTHY, Status.UNKNOWN


def run(statuses: list[Status], *, success: int = 1, failure: int = 3) -> list[ThresholdState]:
    state = ThresholdState()
    out = []
    for status in statuses:
        state = observe(state, status, success_threshold=success, failure_threshold=failure)
        out.append(state)
    return out


def test_starts_not_ready_and_unknown() -> None:
    state = ThresholdState()
    assert state.readiness is Readiness.NOT_READY and not state.ready
    assert state.status is X


def test_turns_ready_after_success_threshold_consecutive_successes() -> None:
    states = run([H, H, U, H, H, D], success=3)
    assert [s.ready for s in states] == [False, False, False, False, False, True]
    # While not ready, a failure shows its reason; successes show nothing yet.
    assert [s.status for s in states] == [X, X, U, U, U, D]


def test_fewer_failures_than_the_threshold_change_nothing() -> None:
    states = run([H, U, X, H, U, U, U], failure=3)
    assert [s.ready for s in states] == [True, True, True, True, True, True, False]
    assert [s.status for s in states] == [H, H, H, H, H, H, U]
    assert (states[-1].successes, states[-1].failures) == (0, 3)


def test_a_ready_model_follows_healthy_and_degraded() -> None:
    assert [s.status for s in run([H, D, H, D])] == [H, D, H, D]


def test_unknown_results_count_as_failures() -> None:
    states = run([H, X, X, X], failure=3)
    assert not states[-1].ready and states[-1].status is X


def test_restart_clears_the_runs_and_keeps_the_verdict() -> None:
    ready = run([H, H])[-1]
    again = restart(ready)
    assert again.ready and again.status is H and (again.successes, again.failures) == (0, 0)


def test_mark_down_is_not_ready_at_once_as_if_the_failures_were_seen() -> None:
    ready = run([H, U])[-1]
    down = mark_down(ready, U, failure_threshold=3)
    assert down == ThresholdState(Readiness.NOT_READY, U, 0, 3)
    # One success does not undo it when success_threshold asks for more.
    after = observe(down, H, success_threshold=2, failure_threshold=3)
    assert not after.ready


# -- properties ------------------------------------------------------------------------------

statuses = hs.lists(hs.sampled_from([H, D, U, X]), max_size=60)
thresholds = hs.integers(min_value=1, max_value=6)


def last_run_end(outcomes: list[bool], value: bool, length: int) -> int:
    """Index of the last result at which a run of ``value`` reached ``length``; -1 if none."""
    last, run_length = -1, 0
    for i, ok in enumerate(outcomes):
        run_length = run_length + 1 if ok == value else 0
        if run_length >= length:
            last = i
    return last


@settings(max_examples=300, deadline=None)
@given(statuses, thresholds, thresholds)
def test_readiness_is_decided_by_the_latest_complete_run(
    seq: list[Status], success: int, failure: int
) -> None:
    # Ready exactly when the last run of successes long enough to turn ready came
    # after the last run of failures long enough to turn not ready.
    states = run(seq, success=success, failure=failure)
    for i, state in enumerate(states):
        outcomes = [s.is_ok for s in seq[: i + 1]]
        expected = last_run_end(outcomes, True, success) > last_run_end(outcomes, False, failure)
        assert state.ready == expected


@settings(max_examples=300, deadline=None)
@given(statuses, thresholds, thresholds)
def test_invariants_of_every_state(seq: list[Status], success: int, failure: int) -> None:
    previous = ThresholdState()
    for status, state in zip(seq, run(seq, success=success, failure=failure), strict=True):
        # The status serves exactly when the model is ready.
        assert state.status.is_ok == state.ready
        # The runs count the current streak of equal outcomes, up to their threshold.
        assert (state.successes, state.failures) == (
            (min(previous.successes + 1, success), 0)
            if status.is_ok
            else (0, min(previous.failures + 1, failure))
        )
        # A status change always shows the result that caused it.
        if state.status != previous.status:
            assert state.status == status
        # Readiness never changes against the result.
        if state.ready != previous.ready:
            assert state.ready == status.is_ok
        previous = state


@settings(max_examples=200, deadline=None)
@given(statuses, thresholds, thresholds)
def test_mark_down_then_any_results_agree_with_a_fresh_not_ready_start(
    seq: list[Status], success: int, failure: int
) -> None:
    # After an outage mark the model needs success_threshold fresh successes,
    # exactly like a model that was never ready.
    down = mark_down(run([H] * success, success=success)[-1], U, failure_threshold=failure)
    state, fresh = down, ThresholdState()
    for status in seq:
        state = observe(state, status, success_threshold=success, failure_threshold=failure)
        fresh = observe(fresh, status, success_threshold=success, failure_threshold=failure)
        assert state.ready == fresh.ready
