"""The conformance tests of closing: every resource released, ``aclose`` prompt and quiet."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from .._guard import guarded_check, wait_abandoning
from .._registry import StrategyRegistry
from .._resolver import Resolver
from .._result import Target
from .._strategy import Strategy
from ._instances import for_each_instance
from ._resources import ResourceSnapshot, wait_released
from ._suite import SuiteBase, run_scenario

__all__ = ["CloseTests"]


class CloseTests(SuiteBase):
    """No file descriptor, process or task outlives a close; ``aclose`` neither hangs nor raises."""

    def test_close_releases_every_resource(
        self,
        registry: StrategyRegistry,
        valid_config: Mapping[str, Any],
        target: Target,
        failing_config: Mapping[str, Any] | None,
        unresponsive_config: Mapping[str, Any] | None,
    ) -> None:
        specs = self._specs(registry, valid_config, failing_config, unresponsive_config)

        async def checked(label: str, strategy: Strategy) -> list[str]:
            await asyncio.gather(
                *(
                    guarded_check(strategy, self.strategy, target, timeout=self.short_timeout)
                    for _ in range(3)
                )
            )
            return []

        async def scenario() -> list[str]:
            before = ResourceSnapshot.take()
            await for_each_instance(self._resolver(registry), specs, checked)
            return await wait_released(before, timeout=self.release_timeout)

        leaks = run_scenario(scenario)
        assert not leaks, "still held after close:\n" + "\n".join(leaks)

    def test_aclose_returns_promptly_without_raising(
        self,
        registry: StrategyRegistry,
        valid_config: Mapping[str, Any],
        target: Target,
        failing_config: Mapping[str, Any] | None,
        unresponsive_config: Mapping[str, Any] | None,
    ) -> None:
        specs = self._specs(registry, valid_config, failing_config, unresponsive_config)
        limit = self.release_timeout

        async def closed(label: str, strategy: Strategy) -> list[str]:
            await guarded_check(strategy, self.strategy, target, timeout=self.short_timeout)
            closing = asyncio.ensure_future(strategy.aclose())
            try:
                finished, _ = await wait_abandoning(closing, limit)
            except Exception as exc:
                return [
                    f"{label}: aclose() raised {type(exc).__name__}: {exc}; it must "
                    "release what it can and not raise (log the problem instead)"
                ]
            if not finished:
                return [
                    f"{label}: aclose() did not return within {limit:g}s: it must not "
                    "wait on the upstream (close sockets and clients, cancel tasks, "
                    "kill processes without waiting for a peer)"
                ]
            return []

        # The resolver would contain a bad close (log it, leave it behind); call aclose
        # directly to see it, then let the resolver release the rest quietly (its close
        # is the second of each instance).
        self._assert_each_instance(
            registry,
            specs,
            closed,
            resolver=lambda: Resolver(registry, close_timeout=0.1),
            quiet_close=True,
        )
