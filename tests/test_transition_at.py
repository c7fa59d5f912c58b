"""A transition's ``at`` is the result's own ``checked_at`` when that is this moment (one
datetime a model less), and the monitor's clock otherwise: a result from elsewhere (a
remote checker's clock, an old time, another time zone, a naive time) never dates a
transition of this monitor."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from _monitor_support import ScriptedPlugin, wait_until
from healthkit import CheckResult, Status, Target

UTC = dt.timezone.utc


async def test_a_local_checks_transition_reuses_its_checked_at() -> None:
    plugin = ScriptedPlugin()

    async def fresh(target: Target) -> CheckResult:
        return CheckResult(status=Status.HEALTHY, strategy="scripted", target=target)

    plugin.behaviours["s"] = fresh
    async with plugin.monitor(["m"], period=3600.0, jitter=0.0) as monitor:
        await wait_until(lambda: bool(monitor.history("m")))
        (tr,) = monitor.history("m")
        assert tr.at is tr.result.checked_at


@pytest.mark.parametrize(
    "checked_at",
    [
        dt.datetime(2001, 1, 1, tzinfo=UTC),  # a stale or skewed clock, in the past
        dt.datetime.now(UTC) + dt.timedelta(hours=1),  # ahead of this monitor's clock
        dt.datetime.now(dt.timezone(dt.timedelta(hours=2))),  # this moment, another zone
        dt.datetime.now(),  # naive: not comparable with an aware time at all
    ],
    ids=["past", "future", "other-zone", "naive"],
)
async def test_a_result_from_another_clock_does_not_date_the_transition(
    checked_at: dt.datetime,
) -> None:
    plugin = ScriptedPlugin()

    async def remote(target: Target) -> Any:
        return CheckResult(
            status=Status.HEALTHY, strategy="scripted", target=target, checked_at=checked_at
        )

    plugin.behaviours["s"] = remote
    before = dt.datetime.now(UTC)
    async with plugin.monitor(["m"], period=3600.0, jitter=0.0) as monitor:
        await wait_until(lambda: bool(monitor.history("m")))
        after = dt.datetime.now(UTC)
        (tr,) = monitor.history("m")
        assert tr.result.checked_at is checked_at
        assert tr.at is not checked_at
        assert tr.at.tzinfo is UTC and before <= tr.at <= after
