"""The status model and result records, and ``guarded_check`` turning failures into results."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json

import attrs
import pytest

from healthkit import CheckResult, ErrorInfo, Status, Target, worst_status
from healthkit.toolkit import guarded_check


def test_statuses_are_the_four_documented_values() -> None:
    assert {s.value for s in Status} == {"healthy", "degraded", "unhealthy", "unknown"}
    assert str(Status.DEGRADED) == "degraded"
    assert Status("unknown") is Status.UNKNOWN


def test_aggregation_order_unhealthy_unknown_degraded_healthy() -> None:
    order = [Status.HEALTHY, Status.DEGRADED, Status.UNKNOWN, Status.UNHEALTHY]
    assert sorted(Status, key=lambda s: s.severity) == order
    for worse, better in itertools.combinations(reversed(order), 2):
        assert worst_status([better, worse]) is worse
        assert worst_status([worse, better]) is worse


def test_worst_status_of_many_and_of_none() -> None:
    assert worst_status([]) is Status.HEALTHY
    assert worst_status([Status.HEALTHY] * 5) is Status.HEALTHY
    assert worst_status([Status.HEALTHY, Status.DEGRADED, Status.HEALTHY]) is Status.DEGRADED
    assert worst_status(iter([Status.DEGRADED, Status.UNKNOWN])) is Status.UNKNOWN


def test_is_ok_means_still_serving() -> None:
    assert [s for s in Status if s.is_ok] == [Status.HEALTHY, Status.DEGRADED]


def test_target_str() -> None:
    assert str(Target()) == "<server>"
    assert str(Target(model="m")) == "m"
    assert str(Target(model="m", version="2")) == "m@2"
    assert Target(model="m") == Target(model="m")
    assert hash(Target(model="m", version="1")) == hash(Target(model="m", version="1"))


def test_result_is_frozen_with_all_fields() -> None:
    before = dt.datetime.now(dt.timezone.utc)
    result = CheckResult(
        status="degraded",
        strategy="http",
        target=Target(model="m", version="3"),
        latency=0.0123456,
        detail="slow",
        error=ErrorInfo(type="TimeoutError", message="late"),
    )
    assert result.status is Status.DEGRADED
    assert result.latency_ms == 12.346
    assert result.checked_at.tzinfo is not None
    assert before <= result.checked_at <= dt.datetime.now(dt.timezone.utc)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        result.status = Status.HEALTHY  # type: ignore[misc]
    with pytest.raises(ValueError):
        CheckResult(status="fine", strategy="x")


def test_result_to_dict_is_json_ready_and_nests_children() -> None:
    child = CheckResult(status=Status.UNHEALTHY, strategy="http", detail="503")
    parent = CheckResult(
        status=Status.DEGRADED,
        strategy="composite",
        target=Target(model="m"),
        latency=0.5,
        detail="any",
        children=(child,),
    )
    data = json.loads(json.dumps(parent.to_dict()))
    assert data["status"] == "degraded"
    assert data["strategy"] == "composite"
    assert data["model"] == "m"
    assert data["version"] is None
    assert data["latency_ms"] == 500.0
    assert data["detail"] == "any"
    assert data["error"] is None
    assert dt.datetime.fromisoformat(data["checked_at"]) == parent.checked_at
    assert [c["status"] for c in data["children"]] == ["unhealthy"]
    assert data["children"][0]["detail"] == "503"


def test_error_info_from_exception() -> None:
    assert ErrorInfo.from_exception(ValueError("bad")) == ErrorInfo(
        type="ValueError", message="bad"
    )
    # An exception without a message still says something.
    assert ErrorInfo.from_exception(KeyError()).message == "KeyError"


# -- guarded_check -------------------------------------------------------------------------


class _Fixed:
    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour

    async def acheck(self, target: Target) -> CheckResult:
        if self.behaviour == "raise":
            raise ConnectionError("upstream gone")
        if self.behaviour == "hang":
            await asyncio.Event().wait()
        if self.behaviour == "garbage":
            return {"status": "healthy"}  # type: ignore[return-value]
        if self.behaviour == "slowish":
            await asyncio.sleep(0.02)
        return CheckResult(status=Status.HEALTHY, strategy="fixed", target=target)

    async def aclose(self) -> None:
        return None


async def test_guard_passes_a_good_result_and_fills_latency() -> None:
    result = await guarded_check(_Fixed("slowish"), "fixed", Target(model="m"))
    assert result.status is Status.HEALTHY
    assert result.target == Target(model="m")
    assert result.latency >= 0.02


async def test_guard_keeps_a_latency_the_strategy_measured() -> None:
    class Measured(_Fixed):
        async def acheck(self, target: Target) -> CheckResult:
            return CheckResult(status=Status.HEALTHY, strategy="m", target=target, latency=7.0)

    assert (await guarded_check(Measured("x"), "m", Target())).latency == 7.0


async def test_guard_turns_an_exception_into_unhealthy() -> None:
    result = await guarded_check(_Fixed("raise"), "fixed", Target(model="m"))
    assert result.status is Status.UNHEALTHY
    assert result.strategy == "fixed"
    assert result.error == ErrorInfo(type="ConnectionError", message="upstream gone")
    assert "ConnectionError" in result.detail and "upstream gone" in result.detail


async def test_guard_turns_a_hang_into_unhealthy_timeout() -> None:
    result = await guarded_check(_Fixed("hang"), "fixed", Target(model="m"), timeout=0.05)
    assert result.status is Status.UNHEALTHY
    assert result.detail == "check timed out after 0.05s"
    assert result.error is not None and result.error.type == "TimeoutError"
    assert result.latency >= 0.05


async def test_guard_turns_garbage_into_unhealthy() -> None:
    result = await guarded_check(_Fixed("garbage"), "fixed", Target(model="m"))
    assert result.status is Status.UNHEALTHY
    assert "dict" in result.detail and "CheckResult" in result.detail
    assert result.error is not None and result.error.type == "TypeError"


async def test_guard_lets_cancellation_through() -> None:
    task = asyncio.create_task(guarded_check(_Fixed("hang"), "fixed", Target()))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_error_info_borrows_the_message_of_a_silent_exceptions_cause() -> None:
    try:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except OSError as inner:
            raise EOFError() from inner
    except EOFError as exc:
        info = ErrorInfo.from_exception(exc)
    assert info == ErrorInfo(type="EOFError", message="[Errno 104] Connection reset by peer")
