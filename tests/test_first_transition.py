"""A model's first transition, kept as its result alone, reads as the full transition.

Most models only ever have one transition (``unknown -> healthy``); without
listeners the monitor keeps it as its result (the rest is implied) and builds the
:class:`Transition` when asked. What ``history`` answers is the same as before:
values, order, size bound, and the very object a listener got.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from _monitor_support import ScriptedPlugin
from healthkit import CheckResult, Status, Target, Transition


def scripted(statuses: list[Status]) -> Any:
    async def behaviour(target: Target) -> CheckResult:
        return CheckResult(status=statuses.pop(0), strategy="scripted", target=target)

    return behaviour


async def test_the_first_transition_reads_as_a_transition() -> None:
    plugin = ScriptedPlugin()
    plugin.behaviours["s"] = scripted([Status.HEALTHY])
    monitor = plugin.monitor(["m"], failure_threshold=1)
    try:
        got = await monitor.acheck("m")
        (tr,) = monitor.history("m")
        assert isinstance(tr, Transition)
        assert (tr.model, tr.old, tr.new, tr.result, tr.at) == (
            "m",
            Status.UNKNOWN,
            Status.HEALTHY,
            got,
            got.checked_at,
        )
        assert tr.at.tzinfo is dt.timezone.utc
        assert monitor.history("m") == (tr,)  # equal every time it is asked
        assert tr.to_dict()["old"] == "unknown" and tr.to_dict()["new"] == "healthy"
        # Kept as the result alone: no Transition object is held for it.
        assert monitor._models.states["m"]._history is got
    finally:
        await monitor.aclose()


async def test_later_transitions_follow_it_in_order_within_the_size_bound() -> None:
    plugin = ScriptedPlugin()
    plugin.behaviours["s"] = scripted([Status.HEALTHY, Status.UNHEALTHY, Status.HEALTHY])
    monitor = plugin.monitor(["m"], failure_threshold=1, monitor={"history_size": 2})
    try:
        first = await monitor.acheck("m")
        monitor._models.states["m"].fresh_until = -1.0  # the next acheck checks again
        down = await monitor.acheck("m")
        (a, b) = monitor.history("m")
        assert (a.old, a.new, a.result) == (Status.UNKNOWN, Status.HEALTHY, first)
        assert (b.old, b.new, b.result) == (Status.HEALTHY, Status.UNHEALTHY, down)
        monitor._models.states["m"].fresh_until = -1.0
        up = await monitor.acheck("m")
        # history_size 2: the first one dropped, the last two kept.
        assert [(t.old, t.new, t.result) for t in monitor.history("m")] == [
            (Status.HEALTHY, Status.UNHEALTHY, down),
            (Status.UNHEALTHY, Status.HEALTHY, up),
        ]
    finally:
        await monitor.aclose()


async def test_a_listener_gets_the_very_transition_the_history_holds() -> None:
    plugin = ScriptedPlugin()
    plugin.behaviours["s"] = scripted([Status.HEALTHY])
    monitor = plugin.monitor(["m"], failure_threshold=1)
    seen: list[Transition] = []
    monitor.add_listener(seen.append)
    try:
        await monitor.acheck("m")
        (tr,) = monitor.history("m")
        assert seen == [tr] and seen[0] is tr
    finally:
        await monitor.aclose()
