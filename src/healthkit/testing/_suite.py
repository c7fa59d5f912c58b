"""The frame of the conformance suite: its settings, the fixtures a plugin overrides, helpers.

The tests themselves live in one module per concern (config, checks, closing,
secrets); :class:`~healthkit.testing.StrategyConformance` puts them together.
Each test is a plain (synchronous) pytest test that drives its own event loop
(like :func:`asyncio.run`, but a check that ignores cancellation cannot hold it),
so the suite works the same with or without pytest-asyncio and whatever its
mode. Targets the plugin supplies must therefore not be bound to an event loop:
use a server in a thread or a subprocess.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import attrs
import pytest

from .._config import load_config
from .._errors import ConfigError
from .._guard import run_bounded, wait_abandoning
from .._registry import StrategyRegistry
from .._resolver import Resolver
from .._result import Target
from .._status import Status
from .._strategy import Strategy, StrategySpec
from ._instances import Probe, for_each_instance

__all__ = ["MODEL", "TABLE", "BadConfig", "SuiteBase", "run_scenario"]

#: The model every config of the suite is loaded for.
MODEL = "conformance"
#: Where the strategy's table sits in the configs the suite loads (and in error paths).
TABLE = f"models.{MODEL}.health_check"

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class BadConfig:
    """One invalid variant of the valid config and where its error must point.

    The variant is the valid config with ``changes`` set and ``remove`` keys
    dropped. ``path`` is relative to the ``health_check`` table
    (``"timeout"``, ``"checks[1].timeout"``; ``""`` for the table itself);
    ``message``, when given, must occur in the error message.
    """

    changes: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    remove: tuple[str, ...] = ()
    path: str
    message: str = ""

    def apply(self, valid: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in valid.items() if k not in self.remove}
        out.update(copy.deepcopy(dict(self.changes)))
        return out

    @property
    def full_path(self) -> str:
        if not self.path:
            return TABLE
        return f"{TABLE}{self.path}" if self.path.startswith("[") else f"{TABLE}.{self.path}"


def run_scenario(coro_fn: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await coro_fn()

    # Not asyncio.run: it waits for every leftover task, forever for one that
    # swallows cancellation; the suite must fail such a plugin, not hang.
    return run_bounded(main(), cleanup_timeout=1.0)


class SuiteBase:
    """Settings, fixtures and helpers shared by every part of the conformance suite."""

    #: The strategy name under test.
    strategy: ClassVar[str] = ""
    #: Deadline (seconds) of the timeout tests.
    short_timeout: ClassVar[float] = 0.3
    #: Slack (seconds) allowed beyond a deadline before a check counts as overrunning it.
    deadline_slack: ClassVar[float] = 2.0
    #: How long resources may take to be released after close.
    release_timeout: ClassVar[float] = 5.0
    #: Seconds after which a check that ignores every deadline is deemed hung.
    hang_limit: ClassVar[float] = 30.0
    #: Seconds a check may hold the event loop in one go (a blocking call) before it fails.
    loop_block_limit: ClassVar[float] = 0.25
    #: Config keys that legitimately take any value (a free-form JSON payload, say);
    #: every other key must reject some of the odd values the suite tries.
    accepts_any_value: ClassVar[frozenset[str]] = frozenset()

    # -- fixtures a plugin overrides -----------------------------------------------

    @pytest.fixture
    def registry(self) -> StrategyRegistry:
        return StrategyRegistry()

    @pytest.fixture
    def valid_config(self) -> Mapping[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} must override the valid_config fixture")

    @pytest.fixture
    def bad_configs(self) -> Sequence[BadConfig]:
        raise NotImplementedError(f"{type(self).__name__} must override the bad_configs fixture")

    @pytest.fixture
    def target(self) -> Target:
        return Target(model=MODEL)

    @pytest.fixture
    def expected_status(self) -> Status | None:
        return Status.HEALTHY

    @pytest.fixture
    def failing_config(self) -> Mapping[str, Any] | None:
        return None

    @pytest.fixture
    def unresponsive_config(self) -> Mapping[str, Any] | None:
        return None

    @pytest.fixture
    def secrets(self) -> Sequence[str]:
        return ()

    # -- helpers ------------------------------------------------------------------

    def _table(self, mapping: Mapping[str, Any]) -> dict[str, Any]:
        table = dict(mapping)
        named = table.setdefault("strategy", self.strategy)
        assert named == self.strategy, f"config names strategy {named!r}, not {self.strategy!r}"
        return table

    def load(self, registry: StrategyRegistry, mapping: Mapping[str, Any]) -> StrategySpec:
        """Load ``mapping`` as the ``health_check`` of one model; raises ConfigError."""
        config = load_config(
            {"models": {MODEL: {"health_check": self._table(mapping)}}}, registry=registry
        )
        return config.models[MODEL].check

    def _has_timeout(self, registry: StrategyRegistry) -> bool:
        cls = registry.get(self.strategy).config_class
        return any((f.alias or f.name) == "timeout" for f in attrs.fields(cls) if f.init)

    def _with_timeout(
        self, registry: StrategyRegistry, mapping: Mapping[str, Any], timeout: float
    ) -> StrategySpec:
        if not self._has_timeout(registry):
            return self.load(registry, mapping)
        return self.load(registry, {**mapping, "timeout": timeout})

    def _long_timeout_spec(
        self, registry: StrategyRegistry, mapping: Mapping[str, Any]
    ) -> StrategySpec:
        # The strategy's own deadline far beyond the monitor's, so only the monitor can end it.
        for long in (30.0, 10.0, 5.0):
            try:
                return self._with_timeout(registry, mapping, long)
            except ConfigError:
                continue
        return self.load(registry, mapping)

    @staticmethod
    async def _acheck_unguarded(strategy: Strategy, target: Target, limit: float) -> Any:
        # Only a safety net, so that a hanging strategy fails the test instead of stalling
        # it: past the limit the check is cancelled and left behind, never awaited.
        task: asyncio.Future[Any] = asyncio.ensure_future(strategy.acheck(target))
        finished, result = await wait_abandoning(task, limit)
        if not finished:
            raise AssertionError(
                f"acheck({target}) did not return within hang_limit = {limit:g}s: "
                "it ignores every deadline"
            )
        return result

    def _resolver(self, registry: StrategyRegistry) -> Resolver:
        # A close that hangs fails test_aclose_returns_promptly_without_raising; it must
        # not also slow every other test down by the resolver's default close timeout.
        return Resolver(registry, close_timeout=self.release_timeout)

    def _assert_each_instance(
        self,
        registry: StrategyRegistry,
        specs: Mapping[str, StrategySpec],
        probe: Probe,
        *,
        resolver: Callable[[], Resolver] | None = None,
        quiet_close: bool = False,
    ) -> None:
        """Run ``probe`` on an instance of each spec (:func:`for_each_instance`, with
        ``resolver()`` or the suite's resolver) and fail with every problem found."""
        make = resolver if resolver is not None else lambda: self._resolver(registry)

        async def scenario() -> list[str]:
            return await for_each_instance(make(), specs, probe, quiet_close=quiet_close)

        problems = run_scenario(scenario)
        assert not problems, "\n".join(problems)

    def _specs(
        self,
        registry: StrategyRegistry,
        valid_config: Mapping[str, Any],
        failing_config: Mapping[str, Any] | None,
        unresponsive_config: Mapping[str, Any] | None,
    ) -> dict[str, StrategySpec]:
        """The fixtures' configs by fixture name; the unresponsive one with a long timeout."""
        specs = {"valid_config": self.load(registry, valid_config)}
        if failing_config is not None:
            specs["failing_config"] = self.load(registry, failing_config)
        if unresponsive_config is not None:
            specs["unresponsive_config"] = self._long_timeout_spec(registry, unresponsive_config)
        return specs
