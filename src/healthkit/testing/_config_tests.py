"""The conformance tests of a strategy's config: it loads, validates, freezes and dedupes."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import pytest

from .._config import describe_spec
from .._errors import ConfigError
from .._registry import StrategyRegistry
from ._suite import TABLE, BadConfig, SuiteBase, run_scenario

__all__ = ["ConfigTests"]

#: Values the suite tries in every key of the valid config: validation must turn each
#: into a ConfigError (or accept it), never crash.
_ODD_VALUES: tuple[Any, ...] = (None, True, -1, 0, 1e300, "", "\x00", [], [1, "x"], {}, {"a": {}})
_UNHASHABLE = (
    "accepted by the field, but the config is then unhashable, so equal configs cannot "
    "share an instance: convert lists to tuples (and tables to healthkit.toolkit.FrozenMap) in a "
    "converter, or reject the value"
)


class ConfigTests(SuiteBase):
    """Registration, loading, validation with paths, odd values, equality and sharing."""

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
                    if not all(issue.path.startswith(TABLE) for issue in exc.issues):
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

        run_scenario(share)
