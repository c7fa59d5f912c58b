"""The resolver: equal specs share one instance, refcounted and closed exactly once;
composite children are shared through it; concurrent acquisition builds one instance;
reload touches only what changed and a failing factory leaves the old state intact.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import attrs
import pytest

from healthkit import (
    CheckResult,
    ClosedError,
    HealthKit,
    ReloadPlan,
    Resolver,
    ResolverStats,
    Status,
    StrategyCreationError,
    StrategyRegistrar,
    StrategyRegistry,
    StrategySpec,
    Target,
    hookimpl,
    load_config,
    parse_spec,
)
from healthkit.strategies.composite import CompositeConfig, CompositeStrategy
from healthkit.strategies.http import HttpStrategy


def _composite(*children: StrategySpec, mode: str = "all") -> StrategySpec:
    return StrategySpec(strategy="composite", config=CompositeConfig(mode=mode, checks=children))  # type: ignore[arg-type]


@pytest.fixture
async def resolver(rec_registry: StrategyRegistry) -> Any:
    resolver = Resolver(rec_registry)
    try:
        yield resolver
    finally:
        await resolver.aclose()


async def test_equal_specs_share_one_instance(
    resolver: Resolver, recorder: Any, rec_tools: Any
) -> None:
    spec = rec_tools.spec
    a = resolver.acquire("a", spec(1))
    b = resolver.acquire("b", spec(1))  # an equal, separately built spec
    c = resolver.acquire("c", spec(2))
    assert a is b
    assert a is not c
    assert len(recorder.created) == 2
    assert resolver.stats() == ResolverStats(models=3, instances=2)
    assert resolver.stats().to_dict() == {"models": 3, "instances": 2}
    assert resolver.refcount(spec(1)) == 2
    assert resolver.refcount(spec(2)) == 1
    assert resolver.refcount(spec(3)) == 0
    assert resolver.get("a") is a
    assert resolver.spec_of("c") == spec(2)
    assert sorted(resolver.holders()) == ["a", "b", "c"]
    # acquiring the same spec again for a holder changes nothing
    assert resolver.acquire("a", spec(1)) is a
    assert resolver.refcount(spec(1)) == 2


async def test_instance_closed_once_when_its_last_holder_goes(
    resolver: Resolver, recorder: Any, rec_tools: Any
) -> None:
    shared = resolver.acquire("a", rec_tools.spec(1))
    resolver.acquire("b", rec_tools.spec(1))
    await resolver.release("a")
    assert shared.closes == 0
    assert resolver.stats() == ResolverStats(models=1, instances=1)
    await resolver.release("b")
    assert shared.closes == 1
    assert resolver.stats() == ResolverStats(models=0, instances=0)
    await resolver.release("b", "never-held")  # releasing again is harmless
    assert shared.closes == 1
    with pytest.raises(KeyError):
        resolver.get("b")
    # a new holder of the same spec gets a fresh instance
    again = resolver.acquire("c", rec_tools.spec(1))
    assert again is not shared and again.closes == 0


async def test_swapping_a_holders_spec_releases_the_old_one(
    resolver: Resolver, rec_tools: Any
) -> None:
    old = resolver.acquire("m", rec_tools.spec(1))
    new = resolver.acquire("m", rec_tools.spec(2))
    assert new is not old
    assert resolver.stats() == ResolverStats(models=1, instances=1)
    assert old.closes == 0  # acquire is sync: closing waits for the next flush
    await resolver.aflush()
    assert (old.closes, new.closes) == (0 + 1, 0)


async def test_composite_children_are_shared_with_other_models(
    resolver: Resolver, rec_tools: Any, recorder: Any
) -> None:
    child = rec_tools.spec(1)
    solo = resolver.acquire("solo", child)
    combo = resolver.acquire("combo", _composite(child, rec_tools.spec(2)))
    assert isinstance(combo, CompositeStrategy)
    assert combo._children[0] is solo
    # solo's instance, the rec 2 child and the composite itself
    assert resolver.stats() == ResolverStats(models=2, instances=3)
    assert resolver.refcount(child) == 2
    # a second, equal composite is the same instance: its children are not acquired again
    assert resolver.acquire("combo2", _composite(child, rec_tools.spec(2))) is combo
    assert resolver.refcount(child) == 2
    assert len(recorder.created) == 2
    await resolver.release("solo")
    assert solo.closes == 0  # still held by the composite
    await resolver.release("combo", "combo2")
    assert [i.closes for i in recorder.created] == [1, 1]
    assert resolver.stats() == ResolverStats(models=0, instances=0)


async def test_nested_composites_resolve_recursively(
    resolver: Resolver, rec_tools: Any, recorder: Any
) -> None:
    leaf = rec_tools.spec(7)
    inner = _composite(leaf, rec_tools.spec(8), mode="any")
    outer = _composite(inner, leaf)
    resolver.acquire("outer", outer)
    resolver.acquire("inner", inner)
    resolver.acquire("leaf", leaf)
    # outer, inner, leaf 7, leaf 8: each exactly once
    assert resolver.stats() == ResolverStats(models=3, instances=4)
    assert resolver.refcount(leaf) == 3  # model "leaf", inner's child, outer's child
    assert resolver.refcount(inner) == 2  # model "inner", outer's child
    await resolver.release("outer", "inner", "leaf")
    assert [i.closes for i in recorder.created] == [1, 1]
    assert resolver.live_specs() == []


async def test_a_rec_group_child_is_closed_after_its_parent(
    resolver: Resolver, rec_tools: Any, recorder: Any
) -> None:
    closed: list[int] = []
    for_parent = rec_tools.spec(1, children=(rec_tools.spec(2),))
    resolver.acquire("p", for_parent)
    for inst in recorder.created:
        original = inst.aclose

        async def aclose(inst: Any = inst, original: Any = original) -> None:
            closed.append(inst.config.key)
            await original()

        inst.aclose = aclose
    await resolver.release("p")
    assert closed == [1, 2]


async def test_failing_factory_raises_and_leaks_nothing(
    resolver: Resolver, rec_tools: Any, recorder: Any
) -> None:
    keep = resolver.acquire("m", rec_tools.spec(1))
    bad = rec_tools.spec(9, fail=True, children=(rec_tools.spec(10),))
    with pytest.raises(StrategyCreationError) as exc:
        resolver.acquire("m", bad)
    assert "strategy 'rec' from plugin 'recorder-rec' failed to start" in str(exc.value)
    assert "RuntimeError: factory of key 9 failed" in str(exc.value)
    assert isinstance(exc.value.__cause__, RuntimeError)
    assert resolver.get("m") is keep  # the holder keeps what it had
    await resolver.aflush()
    child = next(i for i in recorder.created if i.config.key == 10)
    assert child.closes == 1  # the child built for the failed parent was released and closed
    assert resolver.stats() == ResolverStats(models=1, instances=1)


async def test_unknown_strategy_in_acquire(resolver: Resolver) -> None:
    from healthkit import UnknownStrategyError

    with pytest.raises(UnknownStrategyError):
        resolver.acquire("m", StrategySpec(strategy="nope", config=None))
    assert resolver.stats() == ResolverStats(models=0, instances=0)


async def test_closing_failure_is_logged_and_does_not_stop_other_closes(
    resolver: Resolver, rec_tools: Any, recorder: Any, caplog: pytest.LogCaptureFixture
) -> None:
    resolver.acquire("a", rec_tools.spec(1))
    resolver.acquire("b", rec_tools.spec(2))
    first = recorder.created[0]

    async def broken() -> None:
        raise OSError("close failed")

    first.aclose = broken
    with caplog.at_level(logging.WARNING, logger="healthkit"):
        await resolver.release("a", "b")
    assert recorder.created[1].closes == 1
    assert "closing strategy 'rec' failed" in caplog.text


async def test_aclose_closes_everything_and_is_final(
    rec_registry: StrategyRegistry, rec_tools: Any, recorder: Any
) -> None:
    resolver = Resolver(rec_registry)
    resolver.acquire("a", rec_tools.spec(1))
    resolver.acquire("b", _composite(rec_tools.spec(2), rec_tools.spec(1)))
    await resolver.aclose()
    assert resolver.closed
    assert [i.closes for i in recorder.created] == [1, 1]
    assert resolver.stats() == ResolverStats(models=0, instances=0)
    await resolver.aclose()  # idempotent
    assert [i.closes for i in recorder.created] == [1, 1]
    with pytest.raises(ClosedError):
        resolver.acquire("c", rec_tools.spec(1))
    with pytest.raises(ClosedError):
        await resolver.apply({"c": rec_tools.spec(1)})


def test_holder_names_may_not_look_internal(rec_registry: StrategyRegistry, rec_tools: Any) -> None:
    with pytest.raises(ValueError, match="NUL"):
        Resolver(rec_registry).acquire("\x00child:x", rec_tools.spec(1))


def test_plan_groups_models_by_spec_without_creating(
    rec_registry: StrategyRegistry, rec_tools: Any, recorder: Any
) -> None:
    resolver = Resolver(rec_registry)
    plan = resolver.plan(
        [("a", rec_tools.spec(1)), ("b", rec_tools.spec(2)), ("c", rec_tools.spec(1))]
    )
    groups = {p.spec: list(p.models) for p in plan}
    assert groups == {rec_tools.spec(1): ["a", "c"], rec_tools.spec(2): ["b"]}
    assert [(p.id, p.used_by, p.children) for p in plan] == [(1, (), ()), (2, (), ())]
    assert recorder.created == []


# -- concurrency -------------------------------------------------------------------------


def test_concurrent_threads_build_one_instance(rec_tools: Any) -> None:
    recorder = rec_tools.Recorder(creation_delay=0.02)
    registry = StrategyRegistry(plugins=[recorder], entry_points=False, disabled=())
    resolver = Resolver(registry)
    threads_n = 32
    barrier = threading.Barrier(threads_n)
    got: list[Any] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        barrier.wait()
        instance = resolver.acquire(f"m{i}", rec_tools.spec(1))
        with lock:
            got.append(instance)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(recorder.created) == 1
    assert len(got) == threads_n and all(g is got[0] for g in got)
    assert resolver.refcount(rec_tools.spec(1)) == threads_n
    asyncio.run(resolver.aclose())
    assert recorder.created[0].closes == 1


async def test_concurrent_tasks_build_one_instance(rec_tools: Any) -> None:
    recorder = rec_tools.Recorder(creation_delay=0.01)
    registry = StrategyRegistry(plugins=[recorder], entry_points=False, disabled=())
    resolver = Resolver(registry)
    try:
        # Tasks that hop to worker threads for the acquisition, all at once.
        instances = await asyncio.gather(
            *(asyncio.to_thread(resolver.acquire, f"m{i}", rec_tools.spec(5)) for i in range(24))
        )
        assert len({id(i) for i in instances}) == 1
        assert len(recorder.created) == 1
    finally:
        await resolver.aclose()


async def test_concurrent_first_checks_through_the_facade_build_one_instance(
    rec_registry: StrategyRegistry, recorder: Any
) -> None:
    config = load_config(
        {
            "defaults": {"health_check": {"strategy": "rec", "key": 3, "delay": 0.01}},
            "models": {f"m{i}": {} for i in range(50)},
        },
        registry=rec_registry,
    )
    async with HealthKit(config, registry=rec_registry) as hk:
        results = await asyncio.gather(*(hk.acheck(f"m{i}") for i in range(50)))
    assert {r.status.value for r in results} == {"healthy"}
    assert len(recorder.created) == 1
    assert recorder.created[0].checks == 50
    assert recorder.created[0].closes == 1


# -- apply / reload ----------------------------------------------------------------------


async def test_apply_changes_only_what_changed(
    resolver: Resolver, rec_tools: Any, recorder: Any
) -> None:
    spec = rec_tools.spec
    plan = await resolver.apply({"a": spec(1), "b": spec(1), "c": spec(2), "d": spec(3)})
    assert plan == ReloadPlan(added=("a", "b", "c", "d"), instances_created=3)
    before = {m: resolver.get(m) for m in "abcd"}
    plan = await resolver.apply({"a": spec(1), "b": spec(4), "c": spec(2), "e": spec(2)})
    assert plan.added == ("e",)
    assert plan.changed == ("b",)
    assert plan.removed == ("d",)
    assert plan.unchanged == ("a", "c")
    assert (plan.instances_created, plan.instances_closed) == (1, 1)  # spec 4 built; spec 3 closed
    assert resolver.get("a") is before["a"]
    assert resolver.get("c") is before["c"]
    assert resolver.get("e") is before["c"]
    assert before["d"].closes == 1
    assert before["a"].closes == 0  # still held by "a" after "b" moved away
    assert resolver.stats() == ResolverStats(models=4, instances=3)
    # applying the same again is a no-op
    again = await resolver.apply({"a": spec(1), "b": spec(4), "c": spec(2), "e": spec(2)})
    assert (again.instances_created, again.instances_closed, again.unchanged) == (
        0,
        0,
        ("a", "b", "c", "e"),
    )


async def test_apply_with_a_failing_factory_leaves_the_old_state(
    resolver: Resolver, rec_tools: Any, recorder: Any
) -> None:
    spec = rec_tools.spec
    await resolver.apply({"a": spec(1), "b": spec(2)})
    before = {m: resolver.get(m) for m in "ab"}
    created_before = len(recorder.created)
    with pytest.raises(StrategyCreationError, match="factory of key 99 failed"):
        # added ("c") and changed ("a") specs are built before the failing "b"
        await resolver.apply({"a": spec(3), "b": spec(99, fail=True), "c": spec(4)})
    assert {m: resolver.get(m) for m in "ab"} == before
    assert sorted(resolver.holders()) == ["a", "b"]
    assert resolver.spec_of("a") == spec(1)
    assert resolver.spec_of("b") == spec(2)
    # what was built for the failed reload (specs 3 and 4) is closed again
    built = recorder.created[created_before:]
    assert sorted(i.config.key for i in built) == [3, 4]
    assert all(i.closes == 1 for i in built)
    assert all(i.closes == 0 for i in before.values())
    assert resolver.stats() == ResolverStats(models=2, instances=2)


def _models_toml(path: Path, entries: dict[str, str]) -> Path:
    lines = []
    for name, table in entries.items():
        lines.append(f"[models.{name}.health_check]\n{table}\n")
    path.write_text("\n".join(lines))
    return path


async def test_healthkit_reload_keeps_unchanged_instances_and_clients(
    tmp_path: Path, registry: StrategyRegistry
) -> None:
    http_a = 'strategy = "http"\nbase_url = "http://127.0.0.1:9"\n'
    http_a_respelled = 'base_url = "HTTP://127.0.0.1:9/"\nstrategy = "http"\ntimeout = 1\n'
    http_b = 'strategy = "http"\nbase_url = "http://127.0.0.1:10"\n'
    first = load_config(
        _models_toml(
            tmp_path / "1.toml", {"m1": http_a, "m2": http_a, "m3": http_b, "gone": http_b}
        ),
        registry=registry,
    )
    second = load_config(
        _models_toml(
            tmp_path / "2.toml",
            {"m1": http_a_respelled, "m2": http_b, "m3": http_b, "new": http_a},
        ),
        registry=registry,
    )
    async with HealthKit(first, registry=registry) as hk:
        before = {m: hk.resolver.get(m) for m in ("m1", "m3")}
        clients = {m: before[m].client for m in before}  # type: ignore[attr-defined]
        plan = await hk.areload(second)
        assert hk.config is second
        assert plan.unchanged == ("m1", "m3")
        assert plan.changed == ("m2",)
        assert plan.added == ("new",)
        assert plan.removed == ("gone",)
        assert (plan.instances_created, plan.instances_closed) == (0, 0)  # no client churn
        for m in ("m1", "m3"):
            assert hk.resolver.get(m) is before[m]
            assert hk.resolver.get(m).client is clients[m]  # type: ignore[attr-defined]
            assert not clients[m].is_closed
        assert hk.resolver.get("m2") is before["m3"]
        assert hk.resolver.get("new") is before["m1"]
        assert hk.stats() == ResolverStats(models=4, instances=2)
    assert all(c.is_closed for c in clients.values())


async def test_healthkit_reload_with_a_failing_factory_keeps_the_old_config(
    rec_registry: StrategyRegistry, recorder: Any
) -> None:
    old = load_config(
        {
            "models": {
                "a": {"health_check": {"strategy": "rec", "key": 1}},
                "b": {"health_check": {"strategy": "rec", "key": 1}},
            }
        },
        registry=rec_registry,
    )
    bad = load_config(
        {
            "models": {
                "a": {"health_check": {"strategy": "rec", "key": 2}},
                "b": {"health_check": {"strategy": "rec", "key": 3, "fail": True}},
            }
        },
        registry=rec_registry,
    )
    async with HealthKit(old, registry=rec_registry) as hk:
        instance = hk.resolver.get("a")
        with pytest.raises(StrategyCreationError):
            await hk.areload(bad)
        assert hk.config is old
        assert hk.resolver.get("a") is instance
        assert (await hk.acheck("a")).detail == "key 1"
        assert hk.stats() == ResolverStats(models=2, instances=1)
        assert [i.closes for i in recorder.created] == [0, 1]  # key 2 was built, then closed


# -- the "done when" figure -----------------------------------------------------------------


def test_hundred_models_three_differently_spelled_configs_three_instances(
    tmp_path: Path, registry: StrategyRegistry
) -> None:
    spellings = [
        # config 1: http v2 to :8080, four spellings
        [
            'strategy = "http"\nbase_url = "http://127.0.0.1:8080"',
            'base_url = "HTTP://127.0.0.1:8080/"\nstrategy = "http"\nprotocol = "v2"',
            'strategy = "http"\ntimeout = 1\nbase_url = "http://127.0.0.1:8080//"',
            'strategy = "http"\nbase_url = "http://127.0.0.1:8080"\ntimeout = 1.0\nretries = 0',
        ],
        # config 2: http generic with a header, three spellings
        [
            'strategy = "http"\nbase_url = "http://127.0.0.1:8081"\nprotocol = "generic"\n'
            'path = "/h/{model}"\nexpected_status = ["2xx"]\nheaders = {Authorization = "t"}',
            'protocol = "generic"\nstrategy = "http"\npath = "/h/{model}"\nmethod = "get"\n'
            'base_url = "http://127.0.0.1:8081/"\nheaders = {authorization = "t"}',
            'strategy = "http"\nbase_url = "http://127.0.0.1:8081"\nprotocol = "generic"\n'
            'path = "/h/{model}"\nexpected_status = ["200-250", "251-299"]\n'
            'headers = {AUTHORIZATION = "t"}',
        ],
        # config 3: noop, two spellings
        ['strategy = "noop"', 'strategy = "noop"\nperiod = 30'],
    ]
    lines = []
    for i in range(100):
        group = spellings[i % 3]
        body = group[(i // 3) % len(group)]
        lines.append(f"[models.model{i:03d}.health_check]\n{body}\n")
    path = tmp_path / "hundred.toml"
    path.write_text("\n".join(lines))
    with HealthKit.from_config(path, registry=registry) as hk:
        assert len(hk.models) == 100
        plan = hk.resolver.plan((m.name, m.check) for m in hk.config.models.values())
        assert sorted(len(p.models) for p in plan) == [33, 33, 34]
        hk.check("model002")  # a noop model: starts every instance, needs no server
        assert hk.stats() == ResolverStats(models=100, instances=3)
        kinds = sorted(
            type(hk.resolver.get(m)).__name__ for m in ("model000", "model001", "model002")
        )
        assert kinds == ["HttpStrategy", "HttpStrategy", "NoopStrategy"]
        assert isinstance(hk.resolver.get("model003"), HttpStrategy)
        assert hk.resolver.get("model000") is hk.resolver.get("model099")


def test_equal_specs_parsed_separately_share(registry: StrategyRegistry) -> None:
    a = parse_spec(
        {"strategy": "http", "base_url": "http://h:80/", "timeout": 2}, registry=registry
    )
    b = parse_spec({"timeout": 2.0, "base_url": "http://H", "strategy": "http"}, registry=registry)

    async def run() -> tuple[Any, Any]:
        resolver = Resolver(registry)
        try:
            return resolver.acquire("a", a), resolver.acquire("b", b)
        finally:
            await resolver.aclose()

    first, second = asyncio.run(run())
    assert first is second


class _HangingClose:
    async def acheck(self, target: Target) -> CheckResult:
        return CheckResult(status=Status.HEALTHY, strategy="hang-close", target=target)

    async def aclose(self) -> None:
        await asyncio.Event().wait()


class _HangingClosePlugin:
    @staticmethod
    @hookimpl
    def healthkit_register_strategies(registrar: StrategyRegistrar) -> None:
        @attrs.frozen
        class Cfg:
            pass

        registrar.add("hang-close", config=Cfg, factory=lambda c, ctx: _HangingClose())


async def test_a_close_that_hangs_is_abandoned_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import healthkit._resolver as resolver_module

    monkeypatch.setattr(resolver_module, "CLOSE_TIMEOUT", 0.05)
    registry = StrategyRegistry(plugins=[_HangingClosePlugin()], entry_points=False)
    resolver = Resolver(registry)
    spec = StrategySpec(strategy="hang-close", config=registry.get("hang-close").config_class())
    resolver.acquire("m", spec)
    with caplog.at_level("ERROR", logger="healthkit"):
        await asyncio.wait_for(resolver.release("m"), 2)
    assert resolver.stats().instances == 0
    assert any("abandoned" in r.getMessage() for r in caplog.records)


class _MutablePlugin:
    @staticmethod
    @hookimpl
    def healthkit_register_strategies(registrar: StrategyRegistrar) -> None:
        @attrs.define
        class Mutable:
            x: int = 0

        registrar.add("mutable", config=Mutable, factory=lambda c, ctx: _HangingClose())


def test_an_unhashable_config_is_a_clear_creation_error() -> None:
    registry = StrategyRegistry(plugins=[_MutablePlugin()], entry_points=False)
    resolver = Resolver(registry)
    spec = StrategySpec(strategy="mutable", config=registry.get("mutable").config_class())
    with pytest.raises(StrategyCreationError, match=r"not hashable.*attrs\.frozen"):
        resolver.acquire("m", spec)
    assert resolver.stats().instances == 0
