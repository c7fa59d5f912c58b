"""The fault suite's judge catches what it claims to, so no cell passes for want of looking."""

from __future__ import annotations

import attrs

from _fault_checks import GRACE, MAX_DETAIL, Outcome, unreadable, verdict
from _fault_servers import BEARER, TOKEN
from healthkit import CheckResult, ErrorInfo, Status, Target


def test_a_reason_in_words_is_readable() -> None:
    assert unreadable("connection refused (UNAVAILABLE): nothing accepts connections") == []
    assert unreadable("exit 1: WARNING - 91% used\nsecond line\twith a tab") == []


def test_what_is_no_reason() -> None:
    cases = {
        "": "is empty",
        "GET /health: request failed: ReadError: ": "empty reason",
        "x" * (MAX_DETAIL + 1): "characters",
        "check raised AttributeError: 'NoneType' object has no attribute 'x'": "AttributeError",
        "failed: ConnectionResetError(104, 'reset')": "exception repr",
        "got b'-ERR'": "bytes repr",
        "got bytearray(b'SSH')": "bytes repr",
        "got '\\x00\\xff'": "escapes",
        "exit 2: \x1b[31mred": "control characters",
    }
    for text, why in cases.items():
        problems = unreadable(text)
        assert any(why in p for p in problems), (text, problems)


def _outcome(detail: str, *, elapsed: float = 0.1, error: ErrorInfo | None = None) -> Outcome:
    result = CheckResult(
        status=Status.UNHEALTHY, strategy="x", target=Target(model="m"), detail=detail, error=error
    )
    return Outcome(result=result, elapsed=elapsed, deadline=0.55)


def test_the_verdict_names_status_time_and_secrets() -> None:
    assert verdict(_outcome("timed out"), Status.UNHEALTHY) == []
    assert verdict(_outcome("timed out"), Status.HEALTHY) == ["status unhealthy, expected healthy"]
    late = verdict(_outcome("timed out", elapsed=0.55 + GRACE + 0.01), Status.UNHEALTHY)
    assert len(late) == 1 and "over the deadline" in late[0]
    leaked = verdict(
        _outcome("ok", error=ErrorInfo(type="E", message=f"echo {BEARER}")), Status.UNHEALTHY
    )
    assert "result.error shows the secret" in leaked
    child = _outcome(f"token {TOKEN}").result
    parent = attrs.evolve(_outcome("all: 1 unhealthy").result, children=(child,))
    problems = verdict(Outcome(result=parent, elapsed=0.1, deadline=0.55), Status.UNHEALTHY)
    assert "result.children[0].detail shows the secret" in problems
