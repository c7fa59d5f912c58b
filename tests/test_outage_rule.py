"""Outage detection believes evidence about the upstream, never the checker's own starvation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from _monitor_support import http_config, wait_until
from healthkit import CheckResult, ErrorInfo, HealthKit, Monitor, Status, Target
from healthkit._monitoring._outage import Change, OutageDetector
from healthkit.testing import OipServer

MODELS = [f"m{i}" for i in range(20)]


@pytest.fixture
def upstream() -> Iterator[OipServer]:
    with OipServer(dict.fromkeys(MODELS, "ready")) as server:
        yield server


def block_loop(seconds: float) -> None:
    # The checker's own CPU starved: nothing on the loop runs meanwhile (the upstream,
    # a server thread, answers at once), so every check in flight misses its deadline.
    time.sleep(seconds)


async def test_deadline_cuts_under_loop_starvation_never_mark_a_healthy_upstream_down(
    upstream: OipServer,
) -> None:
    timeout = 0.2
    config = http_config(
        upstream.url,
        MODELS,
        period=0.05,
        timeout=timeout,
        failure_threshold=3,
        jitter=0.0,
        cache_ttl=0.0,
    )
    monitor = Monitor(HealthKit.from_config(config), max_in_flight=8)
    marked: list[str] = []
    monitor.add_listener(
        lambda tr: (
            marked.append(tr.model) if tr.result.detail.startswith("upstream unreachable") else None
        )
    )
    try:
        await monitor.start()
        await wait_until(lambda: monitor.stats().ready == len(MODELS), timeout=10.0)
        # Brief stalls with a little loop time between them, then a sustained one
        # (stalls separated by one short breath, so most checks never get to answer).
        for gap in (0.1, 0.1, 0.1, 0.02, 0.02, 0.02, 0.02):
            await wait_until(lambda: monitor.stats().in_flight > 0, timeout=5.0, interval=0.001)
            block_loop(timeout * 1.5)
            await asyncio.sleep(gap)
        cuts = monitor.stats().timeouts
        assert cuts >= 3, cuts  # the monitor did cut checks at its deadline
        assert monitor.stats().outages == 0
        assert not any(monitor.upstream_down(n) for n in MODELS)
        assert marked == []
        # The upstream was fine all along: every model is ready again on fresh answers.
        await wait_until(lambda: monitor.stats().ready == len(MODELS), timeout=10.0)
        assert all(monitor.status(n) is Status.HEALTHY for n in MODELS)
    finally:
        await monitor.aclose()


# -- the rule itself (pure: no loop, no clock) ------------------------------------------------


def timed_out(model: str) -> CheckResult:
    return CheckResult(
        status=Status.UNHEALTHY,
        strategy="http",
        target=Target(model=model),
        detail="timed out",
        error=ErrorInfo(type="ReadTimeout", message="timed out"),
    )


def refused(model: str) -> CheckResult:
    return CheckResult(
        status=Status.UNHEALTHY,
        strategy="http",
        target=Target(model=model),
        detail="connection refused",
        error=ErrorInfo(type="ConnectError", message="connection refused"),
    )


def answered(model: str, status: Status = Status.UNHEALTHY) -> CheckResult:
    return CheckResult(status=status, strategy="http", target=Target(model=model), detail="503")


def feed(
    detector: OutageDetector,
    result: CheckResult,
    now: float,
    *,
    models: int = 1000,
    starved: float = 0.0,
) -> Change:
    assert result.target is not None
    return detector.account(
        1,
        result,
        targets=(result.target,),
        threshold=3,
        models=models,
        timeout=0.2,
        deadline=0.22,
        starved=starved,
        now=now,
    )


def test_failures_of_fewer_distinct_targets_than_needed_never_trip() -> None:
    detector = OutageDetector()
    # Twenty timeouts over two seconds, but all from two targets (two sick models).
    changes = {feed(detector, timed_out(f"m{i % 2}"), now=i * 0.1) for i in range(20)}
    assert changes == {Change.NONE} and not detector.is_down(1)
    # Three more distinct targets make five: the upstream is down.
    assert [feed(detector, timed_out(m), now=2.0) for m in ("a", "b", "c")] == [
        Change.NONE,
        Change.NONE,
        Change.TRIPPED,
    ]
    assert detector.is_down(1)


def test_a_small_instance_needs_all_its_models() -> None:
    detector = OutageDetector()
    assert feed(detector, timed_out("a"), now=0.0, models=2) is Change.NONE
    assert feed(detector, timed_out("a"), now=0.3, models=2) is Change.NONE
    assert feed(detector, timed_out("b"), now=0.4, models=2) is Change.TRIPPED


def test_failures_at_one_instant_are_one_piece_of_evidence() -> None:
    detector = OutageDetector()
    # A single stall cuts eight checks at once: not spread over a timeout.
    assert {feed(detector, timed_out(f"m{i}"), now=5.0) for i in range(8)} == {Change.NONE}
    assert feed(detector, timed_out("m9"), now=5.1) is Change.NONE
    assert feed(detector, timed_out("m10"), now=5.2) is Change.TRIPPED


def test_timeouts_of_a_starved_loop_are_no_evidence_either_way() -> None:
    detector = OutageDetector()
    for i in range(10):
        assert feed(detector, timed_out(f"m{i}"), now=i * 0.1, starved=0.1) is Change.NONE
    assert not detector.is_down(1)
    breaker = detector.get(1)
    assert breaker is None or breaker.failures == 0
    # They do not reset a run either; refusals count however starved the loop was.
    for i in range(4):
        feed(detector, refused(f"r{i}"), now=1.0 + i * 0.1)
    feed(detector, timed_out("x"), now=1.5, starved=1.0)
    assert feed(detector, refused("r4"), now=1.6) is Change.TRIPPED


def test_any_answer_resets_the_run_and_closes_the_circuit() -> None:
    detector = OutageDetector()
    for i in range(4):
        feed(detector, timed_out(f"m{i}"), now=i * 0.1)
    assert feed(detector, answered("m9"), now=0.5) is Change.NONE  # a 503 is an answer
    assert feed(detector, timed_out("m4"), now=0.6) is Change.NONE  # the run starts over
    for i in range(5, 9):
        feed(detector, timed_out(f"m{i}"), now=i * 0.1 + 0.5)
    assert detector.is_down(1)
    assert detector.may_start(1)
    probe = detector.take_probe(1)
    assert probe is not None and not detector.may_start(1)  # one half-open probe at a time
    assert feed(detector, answered("m1", Status.HEALTHY), now=2.0) is Change.RECOVERED
    OutageDetector.probe_done(probe)
    assert not detector.is_down(1) and detector.may_start(1)
