"""The conformance tests of checks: a result every time, deadlines kept, the loop never blocked."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from .._guard import abandon, guarded_check
from .._registry import StrategyRegistry
from .._result import CheckResult, Target
from .._status import Status
from .._strategy import Strategy
from ._suite import MODEL, SuiteBase, run_scenario

__all__ = ["CheckTests", "Heartbeat"]


class Heartbeat:
    """Measures how long the event loop goes without running: a blocked loop stalls it."""

    def __init__(self, interval: float = 0.01) -> None:
        self._interval = interval
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _beat(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self._interval)
            self.worst = max(self.worst, time.perf_counter() - before - self._interval)

    async def __aenter__(self) -> Heartbeat:
        self._task = asyncio.get_running_loop().create_task(self._beat())
        await asyncio.sleep(0)  # started before the code it watches
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # One more beat, so that a stall at the very end is measured too.
        await asyncio.sleep(self._interval)
        assert self._task is not None
        self._task.cancel()
        await asyncio.wait({self._task})


class CheckTests(SuiteBase):
    """Results of odd and concurrent checks, timeouts, a free event loop, cancellation."""

    def test_check_always_returns_a_result(
        self,
        registry: StrategyRegistry,
        valid_config: Mapping[str, Any],
        target: Target,
        expected_status: Status | None,
        failing_config: Mapping[str, Any] | None,
    ) -> None:
        spec = self.load(registry, valid_config)
        failing = None if failing_config is None else self.load(registry, failing_config)
        targets = [
            target,
            Target(),
            Target(model=MODEL, version="1"),
            Target(model="odd/name with spaces?&%#", version="v 2/3"),
        ]
        limit = self.hang_limit

        async def scenario() -> None:
            resolver = self._resolver(registry)
            try:
                strategy = resolver.acquire("valid", spec)
                for one in targets:
                    result = await self._acheck_unguarded(strategy, one, limit)
                    assert isinstance(result, CheckResult), f"acheck({one}) returned {result!r}"
                    assert result.target == one, f"result target {result.target} for {one}"
                    assert isinstance(result.status, Status)
                    assert result.strategy == self.strategy, (
                        f"result.strategy is {result.strategy!r}: a result names the strategy "
                        f"as registered, {self.strategy!r}"
                    )
                    if one is target and expected_status is not None:
                        assert result.status is expected_status, (
                            f"check of {one} is {result.status.value}, expected "
                            f"{expected_status.value}: {result.detail}"
                        )
                # One instance serves every model of a config at once.
                many = await asyncio.gather(
                    *(
                        self._acheck_unguarded(strategy, Target(model=f"m{i}"), limit)
                        for i in range(8)
                    )
                )
                assert all(isinstance(r, CheckResult) for r in many)
                if failing is not None:
                    bad = resolver.acquire("failing", failing)
                    result = await self._acheck_unguarded(bad, target, limit)
                    assert isinstance(result, CheckResult)
                    assert result.status is not Status.HEALTHY, (
                        f"failing_config checked {result.status.value}: {result.detail}"
                    )
                    assert result.detail, "a failed check says what happened"
            finally:
                await resolver.aclose()

        run_scenario(scenario)

    def test_timeout_is_honoured(
        self,
        registry: StrategyRegistry,
        valid_config: Mapping[str, Any],
        target: Target,
        unresponsive_config: Mapping[str, Any] | None,
    ) -> None:
        short = self.short_timeout
        if unresponsive_config is None:
            assert not self._has_timeout(registry), (
                "the config has a 'timeout' key, so the strategy waits on something: "
                "provide an unresponsive_config fixture (healthkit_silent_server helps)"
            )
            # A check that cannot block finishes well within the monitor's deadline.
            spec = self.load(registry, valid_config)

            async def quick() -> CheckResult:
                resolver = self._resolver(registry)
                try:
                    strategy = resolver.acquire("quick", spec)
                    return await guarded_check(strategy, self.strategy, target, timeout=short)
                finally:
                    await resolver.aclose()

            result = run_scenario(quick)
            assert result.error is None or result.error.type != "TimeoutError", result.detail
            return

        own = self._with_timeout(registry, unresponsive_config, short)
        hard = self._long_timeout_spec(registry, unresponsive_config)

        async def scenario() -> list[str]:
            problems: list[str] = []
            resolver = self._resolver(registry)
            try:
                if self._has_timeout(registry):
                    # The strategy's own timeout: the config's `timeout` key. In a config
                    # file the one key sets both this and the monitor's deadline; nothing
                    # is passed down at check time, the monitor only cuts the check.
                    strategy = resolver.acquire("own", own)
                    start = time.perf_counter()
                    result = await self._acheck_unguarded(strategy, target, self.hang_limit)
                    took = time.perf_counter() - start
                    if not isinstance(result, CheckResult) or result.status is Status.HEALTHY:
                        problems.append(f"unresponsive target with timeout={short}: {result!r}")
                    if took > short + self.deadline_slack:
                        problems.append(f"timeout={short} but the check took {took:.2f}s")
                # A hard deadline as the monitor's (guarded_check cuts the check like the
                # monitor's runner does): the check is cancelled and must let go quickly.
                strategy = resolver.acquire("hard", hard)
                for _ in range(2):
                    start = time.perf_counter()
                    result = await guarded_check(strategy, self.strategy, target, timeout=short)
                    took = time.perf_counter() - start
                    if result.status is not Status.UNHEALTHY or result.error is None:
                        problems.append(f"deadline {short}s: expected a timeout, got {result!r}")
                    if took > short + self.deadline_slack:
                        problems.append(
                            f"deadline {short}s: cancelling the check took {took - short:.2f}s more"
                        )
            finally:
                await resolver.aclose()
            return problems

        problems = run_scenario(scenario)
        assert not problems, "\n".join(problems)

    def test_check_does_not_block_the_event_loop(
        self,
        registry: StrategyRegistry,
        valid_config: Mapping[str, Any],
        target: Target,
        failing_config: Mapping[str, Any] | None,
        unresponsive_config: Mapping[str, Any] | None,
    ) -> None:
        specs = self._specs(registry, valid_config, failing_config, unresponsive_config)
        limit = self.loop_block_limit

        async def unblocked(label: str, strategy: Strategy) -> list[str]:
            # The instance was created before the measurement: a factory may do blocking setup.
            async with Heartbeat() as beat:
                for _ in range(2):
                    await guarded_check(strategy, self.strategy, target, timeout=self.short_timeout)
            if beat.worst <= limit:
                return []
            return [
                f"{label}: acheck blocked the event loop for {beat.worst:.2f}s "
                f"(limit {limit:g}s), freezing every other check and the health "
                "endpoints: never call blocking code (time.sleep, a blocking client, "
                "heavy CPU work) in acheck; await an async client, or run the call "
                "in a thread with asyncio.to_thread"
            ]

        self._assert_each_instance(registry, specs, unblocked)

    def test_check_obeys_cancellation(
        self,
        registry: StrategyRegistry,
        valid_config: Mapping[str, Any],
        target: Target,
        failing_config: Mapping[str, Any] | None,
        unresponsive_config: Mapping[str, Any] | None,
    ) -> None:
        specs = self._specs(registry, valid_config, failing_config, unresponsive_config)
        slack = self.deadline_slack

        async def cancelled(label: str, strategy: Strategy) -> list[str]:
            task = asyncio.ensure_future(strategy.acheck(target))
            # Let the check get going (connect, send) before cancelling it.
            await asyncio.wait({task}, timeout=min(0.05, self.short_timeout))
            if task.done():
                if not task.cancelled():
                    task.exception()
                return []  # answered before it could be cancelled: nothing to see
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=slack)
            if not done:
                abandon(task)
                return [
                    f"{label}: acheck was still running {slack:g}s after it was "
                    "cancelled: it swallows CancelledError, so no deadline can stop it "
                    "(clean up in a finally block and let CancelledError propagate)"
                ]
            if task.cancelled():
                return []
            error = task.exception()
            outcome = (
                f"returned {task.result()!r}"
                if error is None
                else f"raised {type(error).__name__}: {error}"
            )
            return [
                f"{label}: acheck {outcome} after it was cancelled instead of "
                "raising CancelledError: it swallows cancellation (never catch "
                "CancelledError or BaseException without re-raising it)"
            ]

        self._assert_each_instance(registry, specs, cancelled)
