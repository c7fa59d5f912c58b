"""Running one cell of the fault suite and judging its result.

A cell is one strategy config against one fault. It runs through the public
API: ``HealthKit.acheck`` (with the hard cap every check gets), or, for a
batch strategy, the first background round of a ``Monitor`` (the only caller
of ``acheck_many``). The verdict collects every problem of the cell (status,
time, readability, secrecy) into one message, so a failing cell says all that
is wrong with it at once.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from _fault_servers import BATCH_PEER, MODEL, TOKEN
from healthkit import CheckResult, HealthKit, Monitor, Status, StrategyRegistry
from healthkit._guard import deadline_for

#: Scheduling slack on top of a check's deadline, on a loaded 2-core machine.
GRACE = 0.5
#: "A few hundred characters": more is no longer a reason one reads at a glance.
MAX_DETAIL = 500

#: Words of a Python bug leaking into a detail, rather than a reason.
_BUG_WORDS = (
    "Traceback",
    "NoneType",
    "AttributeError",
    "TypeError",
    "KeyError",
    "IndexError",
    "NameError",
    "UnboundLocalError",
    "AssertionError",
    "RecursionError",
    "object at 0x",
    "<class '",
)
#: An exception's repr, ``ConnectionResetError(104, '...')``.
_EXC_REPR = re.compile(r"\b[A-Z]\w*(?:Error|Exception)\(")
#: A bytes repr (``b'...'``) or the escapes a repr makes (``\x00``).
_BYTES_REPR = re.compile(r"(?<![\w])b['\"]")
_ESCAPE = re.compile(r"\\x[0-9a-fA-F]{2}")


@attrs.frozen
class Outcome:
    result: CheckResult
    #: Seconds from asking to having the result.
    elapsed: float
    #: The check's hard cap (``deadline_for``): its declared deadline plus a little grace.
    deadline: float


def _config(health_check: Mapping[str, Any]) -> dict[str, Any]:
    return {"models": {MODEL: {"health_check": dict(health_check)}}}


async def run_check(health_check: Mapping[str, Any], registry: StrategyRegistry) -> Outcome:
    """One ``HealthKit.acheck`` of the cell's model; instances are made before the clock starts."""
    kit = HealthKit.from_config(_config(health_check), registry=registry)
    async with kit:
        model = kit.config.models[MODEL]
        deadline = deadline_for(model.check, model.monitor)
        start = time.perf_counter()
        result = await kit.acheck(MODEL)
        elapsed = time.perf_counter() - start
    return Outcome(result, elapsed, deadline)


async def run_monitor_round(health_check: Mapping[str, Any], registry: StrategyRegistry) -> Outcome:
    """The first background result of a monitor probing at once, for a batch strategy.

    A monitor calls ``acheck_many`` only for two or more models due together, so
    a second model shares the config; the round must have been one batch call.
    The wait is bounded, so a wedged batch fails the cell rather than the run.
    """
    settings = {"initial_delay": 0.0, "jitter": 0.0, "period": 60.0, **health_check}
    config = _config(settings)
    config["models"][BATCH_PEER] = config["models"][MODEL]
    kit = HealthKit.from_config(config, registry=registry)
    model = kit.config.models[MODEL]
    deadline = deadline_for(model.check, model.monitor)
    events: list[Any] = []  # CheckEvent (not exported)
    async with Monitor(kit) as monitor:
        monitor.add_check_listener(events.append)
        start = time.perf_counter()
        while (result := monitor.last_result(MODEL)) is None:
            if time.perf_counter() - start > deadline + GRACE + 5.0:
                raise AssertionError(f"no result within {deadline + GRACE + 5.0:.2f}s")
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - start
    assert [(e.batch, e.targets) for e in events] == [(True, 2)], events
    return Outcome(result, elapsed, deadline)


def _each(result: CheckResult, where: str = "result") -> Iterator[tuple[str, CheckResult]]:
    yield where, result
    for i, child in enumerate(result.children):
        yield from _each(child, f"{where}.children[{i}]")


def unreadable(text: str) -> list[str]:
    """Why ``text`` is no readable reason (empty when it is one)."""
    problems = []
    if not text.strip():
        problems.append("is empty")
    elif text.rstrip().endswith(":"):
        problems.append("ends in an empty reason")
    if len(text) > MAX_DETAIL:
        problems.append(f"has {len(text)} characters (more than {MAX_DETAIL})")
    problems += [f"shows {word!r}" for word in _BUG_WORDS if word in text]
    if _EXC_REPR.search(text):
        problems.append("shows an exception repr")
    if _BYTES_REPR.search(text) or _ESCAPE.search(text):
        problems.append("shows a bytes repr or escapes")
    controls = sorted({c for c in text if (ord(c) < 32 and c not in "\t\n\r") or c == "\x7f"})
    if controls:
        problems.append(f"holds control characters {controls!r}")
    return problems


def verdict(outcome: Outcome, expected: Status) -> list[str]:
    """Everything wrong with a cell's outcome; empty when it kept every promise."""
    result, problems = outcome.result, []
    if result.status is not expected:
        problems.append(f"status {result.status.value}, expected {expected.value}")
    if outcome.elapsed > outcome.deadline + GRACE:
        problems.append(
            f"took {outcome.elapsed:.3f}s, over the deadline {outcome.deadline:.3f}s + {GRACE}s"
        )
    for where, each in _each(result):
        problems += [f"{where}.detail {why}" for why in unreadable(each.detail)]
        texts = {"detail": each.detail}
        if each.error is not None:
            texts["error"] = f"{each.error.type}: {each.error.message}"
        problems += [f"{where}.{name} shows the secret" for name, t in texts.items() if TOKEN in t]
    if TOKEN in repr(result) or TOKEN in json.dumps(result.to_dict()):
        problems.append("the result's repr or to_dict() shows the secret")
    return problems


def assert_cell(outcome: Outcome, expected: Status) -> None:
    problems = verdict(outcome, expected)
    result = outcome.result
    shown = f"\n  detail: {result.detail[:300]!r}" + ("..." if len(result.detail) > 300 else "")
    if result.error is not None:
        shown += f"\n  error: {result.error.type}: {result.error.message[:300]!r}"
    assert not problems, "; ".join(problems) + shown
