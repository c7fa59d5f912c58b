"""The monitor counts each strategy instance's models, and keeps a name index only for
the instances whose members it was asked for (batch grouping): through reloads that
add, remove and move models between instances, both stay exactly what a pass over the
models gives."""

from __future__ import annotations

import random
from typing import Any

from healthkit import HealthKit, Monitor, StrategyRegistry, load_config
from healthkit._monitoring._models import Models


def _raw(models: dict[str, int]) -> dict[str, Any]:
    # Instances differ by timeout: model -> which of a few instances it uses.
    return {
        "defaults": {"health_check": {"strategy": "noop", "period": 3600.0, "jitter": 0.0}},
        "models": {m: {"health_check": {"timeout": 1.0 + t}} for m, t in models.items()},
    }


def _scan(models: Models) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for name, st in models.states.items():
        out.setdefault(st.key[0], set()).add(name)
    return out


async def test_counts_and_member_indexes_match_the_models_through_reloads() -> None:
    rng = random.Random(7)
    registry = StrategyRegistry(entry_points=False)
    current = {f"m{i}": rng.randrange(4) for i in range(40)}
    monitor = Monitor(HealthKit(load_config(_raw(current), registry=registry), registry=registry))
    models = monitor._models
    try:
        await monitor.start()
        asked: set[int] = set()
        for _ in range(25):
            truth = _scan(models)
            assert models.spec_models == {spec: len(names) for spec, names in truth.items()}
            for spec in truth:
                if rng.random() < 0.5:
                    asked.add(spec)
            for spec in asked:
                # An index asked for once is kept: it must still be exact.
                assert set(models.members(spec)) == truth.get(spec, set())
                assert sorted(models.names_of(spec)) == sorted(truth.get(spec, set()))
            # A reload: some models leave, some arrive, some move to another instance.
            for name in list(current):
                if rng.random() < 0.15:
                    del current[name]
                elif rng.random() < 0.3:
                    current[name] = rng.randrange(4)
            for _ in range(rng.randrange(6)):
                current[f"n{rng.randrange(1000)}"] = rng.randrange(4)
            await monitor.areload(load_config(_raw(current), registry=registry))
        assert set(models.states) == set(current)
    finally:
        await monitor.aclose()


def test_members_of_an_unknown_spec_is_empty_and_not_kept() -> None:
    registry = StrategyRegistry(entry_points=False)
    config = load_config(_raw({"a": 0}), registry=registry)
    models = Models(config.models.values(), history_size=4, spawn=lambda coro: coro.close())
    assert models.members(999) == {}
    assert models.names_of(999) == []
    assert 999 not in models._members
