"""The conformance suite every strategy plugin can run: subclass :class:`StrategyConformance`.

Each test is a plain (synchronous) pytest test that drives its own event loop
(like :func:`asyncio.run`, but a check that ignores cancellation cannot hold it),
so the suite works the same with or without pytest-asyncio and whatever its
mode. Targets the plugin supplies must therefore not be bound to an event loop:
use a server in a thread or a subprocess.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import math
import time
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import attrs
import pytest

from .. import (
    CheckResult,
    ConfigError,
    Resolver,
    Secret,
    SecretUrl,
    Status,
    Strategy,
    StrategyRegistry,
    StrategySpec,
    Target,
    describe_spec,
    guarded_check,
    load_config,
)
from .._guard import abandon, run_bounded, wait_abandoning
from ._resources import ResourceSnapshot, wait_released

__all__ = ["BadConfig", "StrategyConformance"]

#: The model every config of the suite is loaded for.
MODEL = "conformance"
_TABLE = f"models.{MODEL}.health_check"
#: Values the suite tries in every key of the valid config: validation must turn each
#: into a ConfigError (or accept it), never crash.
_ODD_VALUES: tuple[Any, ...] = (None, True, -1, 0, 1e300, "", "\x00", [], [1, "x"], {}, {"a": {}})
_UNHASHABLE = (
    "accepted by the field, but the config is then unhashable, so equal configs cannot "
    "share an instance: convert lists to tuples (and tables to healthkit.FrozenMap) in a "
    "converter, or reject the value"
)
#: Shorter secrets would turn up by chance in any text.
_MIN_SECRET_LEN = 6

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
            return _TABLE
        return f"{_TABLE}{self.path}" if self.path.startswith("[") else f"{_TABLE}.{self.path}"


def _run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await coro_fn()

    # Not asyncio.run: it waits for every leftover task, forever for one that
    # swallows cancellation; the suite must fail such a plugin, not hang.
    return run_bounded(main(), cleanup_timeout=1.0)


class _Heartbeat:
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

    async def __aenter__(self) -> _Heartbeat:
        self._task = asyncio.get_running_loop().create_task(self._beat())
        await asyncio.sleep(0)  # started before the code it watches
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # One more beat, so that a stall at the very end is measured too.
        await asyncio.sleep(self._interval)
        assert self._task is not None
        self._task.cancel()
        await asyncio.wait({self._task})


def _texts_of(result: CheckResult) -> list[str]:
    texts = [repr(result), str(result), result.detail, json.dumps(result.to_dict())]
    if result.error is not None:
        texts.append(result.error.message)
    for child in result.children:
        texts.extend(_texts_of(child))
    return texts


def _mentions_secret_type(tp: Any, seen: set[int] | None = None) -> bool:
    seen = set() if seen is None else seen
    if tp in (Secret, SecretUrl):
        return True
    if isinstance(tp, type) and attrs.has(tp):
        if id(tp) in seen:
            return False
        seen.add(id(tp))
        hints = typing.get_type_hints(tp)
        return any(_mentions_secret_type(h, seen) for h in hints.values())
    return any(_mentions_secret_type(arg, seen) for arg in typing.get_args(tp))


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.texts.append(self.format(record))
        except Exception:
            self.texts.append(repr(record.msg))


class StrategyConformance:
    """The conformance suite of one strategy. Subclass it in a module named ``test_*.py``.

    Set ``strategy`` to the registered name and override the fixtures:

    ``valid_config`` (required)
        The keys of a working ``health_check`` table (``strategy`` may be left out).
    ``bad_configs`` (required)
        :class:`BadConfig` variants that must fail, each with the path of its error.
    ``target``
        The :class:`~healthkit.Target` checked with the valid config; default model ``conformance``.
    ``expected_status``
        The status a check of ``target`` must report with the valid config (``None``: any).
    ``failing_config``
        A config whose check must fail (a closed port, a failing command), or ``None``.
    ``unresponsive_config``
        A config whose check never answers (``healthkit_silent_server`` helps), for
        the timeout tests. Required when the config has a ``timeout`` key; ``None``
        declares that a check cannot block.
    ``secrets``
        Secret strings the configs above contain (or set in the environment); none
        of them may appear in reprs, results, errors or logs. Required when the
        config has a :class:`~healthkit.Secret` or :class:`~healthkit.SecretUrl` field.
    ``registry``
        Where the strategy comes from; default: built-ins plus installed entry points,
        which is how users get it.
    """

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

    # -- the suite -----------------------------------------------------------------

    def test_strategy_is_registered(self, registry: StrategyRegistry) -> None:
        assert self.strategy, f"{type(self).__name__}.strategy must name the strategy under test"
        problems = "; ".join(str(f) for f in registry.failures)
        assert self.strategy in registry, (
            f"strategy {self.strategy!r} is not registered; known: {registry.names()}; "
            f"plugin failures: {problems or 'none'}"
        )
        stype = registry.get(self.strategy)
        assert stype.unavailable is None, (
            f"strategy {self.strategy!r} is unavailable: {stype.unavailable}"
        )
        assert attrs.has(stype.config_class), "the config class must be an attrs class"

    def test_valid_config_loads_into_a_frozen_record(
        self, registry: StrategyRegistry, valid_config: Mapping[str, Any]
    ) -> None:
        spec = self.load(registry, valid_config)
        stype = registry.get(self.strategy)
        assert spec.strategy == self.strategy
        assert isinstance(spec.config, stype.config_class)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            spec.config.conformance_probe = 1  # frozen: the resolver keys on it
        # The CLI shows configs through describe_spec: it must cope with every field.
        json.dumps(describe_spec(spec))
        declared = getattr(type(spec.config), "check_deadline", None)
        if declared is not None:
            # The monitor's hard cap (healthkit.DeadlineConfig): seconds for a whole check.
            for timeout in (0.5, 1.0, 30.0):
                seconds = spec.config.check_deadline(timeout)
                assert isinstance(seconds, int | float) and not isinstance(seconds, bool), (
                    f"check_deadline({timeout}) returned {seconds!r}, not a number of seconds"
                )
                assert math.isfinite(seconds) and seconds >= timeout, (
                    f"check_deadline({timeout}) returned {seconds!r}: it must cover at least "
                    "one attempt of timeout seconds"
                )

    def test_bad_configs_are_rejected_with_their_path(
        self,
        registry: StrategyRegistry,
        valid_config: Mapping[str, Any],
        bad_configs: Sequence[BadConfig],
    ) -> None:
        assert bad_configs, "bad_configs must list at least one invalid variant"
        cases = [
            *bad_configs,
            BadConfig(changes={"no_such_option": 1}, path="no_such_option", message="unknown key"),
        ]
        failures: list[str] = []
        for case in cases:
            try:
                self.load(registry, case.apply(valid_config))
            except ConfigError as exc:
                hits = [
                    issue
                    for issue in exc.issues
                    if issue.path == case.full_path and case.message in issue.message
                ]
                if not hits:
                    failures.append(
                        f"{case}: expected an issue at {case.full_path!r}"
                        f"{f' mentioning {case.message!r}' if case.message else ''}, got "
                        + "; ".join(f"{i.path!r}: {i.message}" for i in exc.issues)
                    )
            else:
                failures.append(f"{case}: was accepted")
        assert not failures, "\n".join(failures)

    def test_odd_values_give_config_errors_not_crashes(
        self, registry: StrategyRegistry, valid_config: Mapping[str, Any]
    ) -> None:
        crashes: list[str] = []
        lax: list[str] = []
        for key in [k for k in valid_config if k != "strategy"]:
            accepted = 0
            for odd in _ODD_VALUES:
                try:
                    spec = self.load(registry, {**valid_config, key: odd})
                except ConfigError as exc:
                    if not all(issue.path.startswith(_TABLE) for issue in exc.issues):
                        crashes.append(f"{key} = {odd!r}: issue outside the table: {exc}")
                    if any("hashable" in issue.message for issue in exc.issues):
                        # The loader refuses what the field let through: a plugin bug.
                        crashes.append(f"{key} = {odd!r}: {_UNHASHABLE}")
                    continue
                except Exception as exc:
                    crashes.append(f"{key} = {odd!r}: {type(exc).__name__}: {exc}")
                    continue
                accepted += 1
                try:
                    hash(spec)
                except TypeError:
                    crashes.append(f"{key} = {odd!r}: {_UNHASHABLE}")
            if accepted == len(_ODD_VALUES) and key not in self.accepts_any_value:
                lax.append(
                    f"{key}: accepts every value tried ({', '.join(map(repr, _ODD_VALUES))}): "
                    "give the field a type, converter or validator that rejects wrong values "
                    "(or list the key in accepts_any_value if any value is really fine)"
                )
        assert not crashes, "validation must raise ConfigError only:\n" + "\n".join(crashes)
        assert not lax, "keys without validation:\n" + "\n".join(lax)

    def test_equal_configs_are_equal_and_hashable(
        self, registry: StrategyRegistry, valid_config: Mapping[str, Any]
    ) -> None:
        first = self.load(registry, valid_config)
        # Same content, other key order and fresh objects: the resolver must see one config.
        reordered = {k: copy.deepcopy(valid_config[k]) for k in reversed(list(valid_config))}
        second = self.load(registry, reordered)
        assert first == second
        assert hash(first) == hash(second)
        assert hash(first.config) == hash(second.config)
        assert len({first, second}) == 1

        async def share() -> None:
            resolver = self._resolver(registry)
            try:
                one = resolver.acquire("model-a", first)
                # Composite-like strategies hold children: count instances, not just one.
                instances = resolver.stats().instances
                two = resolver.acquire("model-b", second)
                assert one is two, "equal configs must share one instance"
                stats = resolver.stats()
                assert (stats.models, stats.instances) == (2, instances)
            finally:
                await resolver.aclose()

        _run(share)

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

        _run(scenario)

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

            result = _run(quick)
            assert result.error is None or result.error.type != "TimeoutError", result.detail
            return

        own = self._with_timeout(registry, unresponsive_config, short)
        hard = self._long_timeout_spec(registry, unresponsive_config)

        async def scenario() -> list[str]:
            problems: list[str] = []
            resolver = self._resolver(registry)
            try:
                if self._has_timeout(registry):
                    # The strategy's own timeout (the monitor passes its timeout down to it).
                    strategy = resolver.acquire("own", own)
                    start = time.perf_counter()
                    result = await self._acheck_unguarded(strategy, target, self.hang_limit)
                    took = time.perf_counter() - start
                    if not isinstance(result, CheckResult) or result.status is Status.HEALTHY:
                        problems.append(f"unresponsive target with timeout={short}: {result!r}")
                    if took > short + self.deadline_slack:
                        problems.append(f"timeout={short} but the check took {took:.2f}s")
                # The monitor's hard deadline: the check is cancelled and must let go quickly.
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

        problems = _run(scenario)
        assert not problems, "\n".join(problems)

    def test_close_releases_every_resource(
        self,
        registry: StrategyRegistry,
        valid_config: Mapping[str, Any],
        target: Target,
        failing_config: Mapping[str, Any] | None,
        unresponsive_config: Mapping[str, Any] | None,
    ) -> None:
        specs = {"valid": self.load(registry, valid_config)}
        if failing_config is not None:
            specs["failing"] = self.load(registry, failing_config)
        if unresponsive_config is not None:
            specs["unresponsive"] = self._long_timeout_spec(registry, unresponsive_config)

        async def scenario() -> list[str]:
            before = ResourceSnapshot.take()
            resolver = self._resolver(registry)
            try:
                for name, spec in specs.items():
                    strategy = resolver.acquire(name, spec)
                    await asyncio.gather(
                        *(
                            guarded_check(
                                strategy, self.strategy, target, timeout=self.short_timeout
                            )
                            for _ in range(3)
                        )
                    )
            finally:
                await resolver.aclose()
            return await wait_released(before, timeout=self.release_timeout)

        leaks = _run(scenario)
        assert not leaks, "still held after close:\n" + "\n".join(leaks)

    def test_secrets_never_appear(
        self,
        registry: StrategyRegistry,
        valid_config: Mapping[str, Any],
        bad_configs: Sequence[BadConfig],
        target: Target,
        secrets: Sequence[str],
        failing_config: Mapping[str, Any] | None,
        unresponsive_config: Mapping[str, Any] | None,
    ) -> None:
        config_class = registry.get(self.strategy).config_class
        if not secrets:
            assert not _mentions_secret_type(config_class), (
                f"{config_class.__name__} has Secret fields: list the secret values of "
                "valid_config in the secrets fixture"
            )
        for secret in secrets:
            assert len(secret) >= _MIN_SECRET_LEN, f"secret {secret!r} is too short to search for"

        texts: list[str] = []
        configs = [valid_config, failing_config, unresponsive_config]
        specs = [self.load(registry, c) for c in configs if c is not None]
        for spec in specs:
            texts += [repr(spec), str(spec), repr(spec.config), json.dumps(describe_spec(spec))]
        for case in bad_configs:
            try:
                self.load(registry, case.apply(valid_config))
            except ConfigError as exc:
                texts.append(str(exc))

        collect = _Collect()
        root = logging.getLogger()
        old_level = root.level
        root.addHandler(collect)
        root.setLevel(logging.DEBUG)

        async def scenario() -> None:
            resolver = self._resolver(registry)
            try:
                for index, spec in enumerate(specs):
                    strategy = resolver.acquire(f"m{index}", spec)
                    texts.extend([repr(strategy), str(strategy)])
                    result = await guarded_check(
                        strategy, self.strategy, target, timeout=self.short_timeout
                    )
                    texts.extend(_texts_of(result))
            finally:
                await resolver.aclose()

        try:
            _run(scenario)
        finally:
            root.removeHandler(collect)
            root.setLevel(old_level)
        texts.extend(collect.texts)
        found = [
            f"secret #{n} in: {text[:300]}"
            for n, secret in enumerate(secrets)
            for text in texts
            if secret in text
        ]
        assert not found, "secrets leaked:\n" + "\n".join(found)

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

        async def scenario() -> list[str]:
            problems: list[str] = []
            resolver = self._resolver(registry)
            try:
                for label, spec in specs.items():
                    # Created outside the measurement: a factory may do blocking setup.
                    strategy = resolver.acquire(label, spec)
                    async with _Heartbeat() as beat:
                        for _ in range(2):
                            await guarded_check(
                                strategy, self.strategy, target, timeout=self.short_timeout
                            )
                    if beat.worst > limit:
                        problems.append(
                            f"{label}: acheck blocked the event loop for {beat.worst:.2f}s "
                            f"(limit {limit:g}s), freezing every other check and the health "
                            "endpoints: never call blocking code (time.sleep, a blocking client, "
                            "heavy CPU work) in acheck; await an async client, or run the call "
                            "in a thread with asyncio.to_thread"
                        )
            finally:
                await resolver.aclose()
            return problems

        problems = _run(scenario)
        assert not problems, "\n".join(problems)

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

        async def scenario() -> list[str]:
            problems: list[str] = []
            resolver = self._resolver(registry)
            try:
                for label, spec in specs.items():
                    strategy = resolver.acquire(label, spec)
                    task = asyncio.ensure_future(strategy.acheck(target))
                    # Let the check get going (connect, send) before cancelling it.
                    await asyncio.wait({task}, timeout=min(0.05, self.short_timeout))
                    if task.done():
                        if not task.cancelled():
                            task.exception()
                        continue  # answered before it could be cancelled: nothing to see
                    task.cancel()
                    done, _ = await asyncio.wait({task}, timeout=slack)
                    if not done:
                        abandon(task)
                        problems.append(
                            f"{label}: acheck was still running {slack:g}s after it was "
                            "cancelled: it swallows CancelledError, so no deadline can stop it "
                            "(clean up in a finally block and let CancelledError propagate)"
                        )
                    elif not task.cancelled():
                        error = task.exception()
                        outcome = (
                            f"returned {task.result()!r}"
                            if error is None
                            else f"raised {type(error).__name__}: {error}"
                        )
                        problems.append(
                            f"{label}: acheck {outcome} after it was cancelled instead of "
                            "raising CancelledError: it swallows cancellation (never catch "
                            "CancelledError or BaseException without re-raising it)"
                        )
            finally:
                await resolver.aclose()
            return problems

        problems = _run(scenario)
        assert not problems, "\n".join(problems)

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

        async def scenario() -> list[str]:
            problems: list[str] = []
            # The resolver would contain a bad close (log it, leave it behind); call
            # aclose directly to see it, then let the resolver release the rest quietly.
            resolver = Resolver(registry, close_timeout=0.1)
            try:
                for label, spec in specs.items():
                    strategy = resolver.acquire(label, spec)
                    await guarded_check(strategy, self.strategy, target, timeout=self.short_timeout)
                    closing = asyncio.ensure_future(strategy.aclose())
                    try:
                        finished, _ = await wait_abandoning(closing, limit)
                    except Exception as exc:
                        problems.append(
                            f"{label}: aclose() raised {type(exc).__name__}: {exc}; it must "
                            "release what it can and not raise (log the problem instead)"
                        )
                        continue
                    if not finished:
                        problems.append(
                            f"{label}: aclose() did not return within {limit:g}s: it must not "
                            "wait on the upstream (close sockets and clients, cancel tasks, "
                            "kill processes without waiting for a peer)"
                        )
            finally:
                logger = logging.getLogger("healthkit")
                level = logger.level
                logger.setLevel(logging.CRITICAL)  # the second close of each instance
                try:
                    await resolver.aclose()
                finally:
                    logger.setLevel(level)
            return problems

        problems = _run(scenario)
        assert not problems, "\n".join(problems)
