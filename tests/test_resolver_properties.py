"""Hypothesis state machine over the resolver.

After any random sequence of acquire / release / apply (reload), including failing
factories and composite or grouping strategies nested to any depth:

* the live instances are exactly the distinct specs reachable from what models hold
  (children of composites included, recursively), one instance per spec;
* every spec's refcount equals its holders (models plus parents holding it as a child);
* every instance ever built is either live and never closed, or released and closed
  exactly once; after ``aclose`` all of them are closed exactly once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from healthkit import (
    Resolver,
    ResolverStats,
    StrategyCreationError,
    StrategyRegistry,
    StrategySpec,
)
from healthkit.strategies.composite import CompositeConfig
from healthkit.strategies.noop import NoopConfig

HOLDERS = st.sampled_from(["a", "b", "c", "d", "e", "f"])


def _children(spec: StrategySpec) -> tuple[StrategySpec, ...]:
    if spec.strategy == "composite":
        return tuple(spec.config.checks)
    if spec.strategy == "rec":
        return tuple(spec.config.children)
    return ()


def _reachable(spec: StrategySpec) -> Iterator[StrategySpec]:
    yield spec
    for child in _children(spec):
        yield from _reachable(child)


def _can_fail(spec: StrategySpec) -> bool:
    return any(s.strategy == "rec" and s.config.fail for s in _reachable(spec))


def _spec_strategy(rec_tools: Any) -> st.SearchStrategy[StrategySpec]:
    leaves = st.one_of(
        st.builds(lambda k: rec_tools.spec(k), st.integers(0, 3)),
        st.just(StrategySpec(strategy="noop", config=NoopConfig())),
        # a factory that fails: the resolver must undo whatever it built for it
        st.builds(lambda k: rec_tools.spec(k, fail=True), st.integers(0, 1)),
    )

    def extend(children: st.SearchStrategy[StrategySpec]) -> st.SearchStrategy[StrategySpec]:
        kids = st.lists(children, min_size=1, max_size=3).map(tuple)
        return st.one_of(
            st.builds(
                lambda cs, mode: StrategySpec(
                    strategy="composite", config=CompositeConfig(mode=mode, checks=cs)
                ),
                kids,
                st.sampled_from(["all", "any"]),
            ),
            st.builds(lambda cs, k: rec_tools.spec(k, children=cs), kids, st.integers(0, 2)),
        )

    return st.recursive(leaves, extend, max_leaves=5)


def test_resolver_invariants_hold_after_any_sequence(rec_tools: Any) -> None:
    specs = _spec_strategy(rec_tools)

    class ResolverMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.recorder = rec_tools.Recorder()
            self.registry = StrategyRegistry(
                plugins=[self.recorder], entry_points=False, disabled=()
            )
            self.resolver = Resolver(self.registry)
            self.loop = asyncio.new_event_loop()
            self.held: dict[str, StrategySpec] = {}

        def run(self, coro: Any) -> Any:
            return self.loop.run_until_complete(coro)

        @rule(holder=HOLDERS, spec=specs)
        def acquire(self, holder: str, spec: StrategySpec) -> None:
            try:
                instance = self.resolver.acquire(holder, spec)
            except StrategyCreationError:
                assert _can_fail(spec)
            else:
                assert not _can_fail(spec)
                self.held[holder] = spec
                assert self.resolver.get(holder) is instance
            self.run(self.resolver.aflush())

        @rule(holders=st.lists(HOLDERS, max_size=3))
        def release(self, holders: list[str]) -> None:
            self.run(self.resolver.release(*holders))
            for holder in holders:
                self.held.pop(holder, None)

        @rule(models=st.dictionaries(HOLDERS, specs, max_size=5))
        def apply(self, models: dict[str, StrategySpec]) -> None:
            before = {h: self.resolver.get(h) for h in self.held}
            try:
                plan = self.run(self.resolver.apply(models))
            except StrategyCreationError:
                assert any(_can_fail(s) for s in models.values())
                # the old state is intact: same holders, same very instances
                assert {h: self.resolver.get(h) for h in self.held} == before
                return
            unchanged = {h for h in models if h in self.held and self.held[h] == models[h]}
            assert set(plan.unchanged) == unchanged
            for holder in unchanged:
                assert self.resolver.get(holder) is before[holder]
            self.held = dict(models)

        @invariant()
        def live_instances_are_the_distinct_live_configs(self) -> None:
            live = set(self.resolver.live_specs())
            expected = {s for spec in self.held.values() for s in _reachable(spec)}
            assert live == expected
            assert self.resolver.stats() == ResolverStats(
                models=len(self.held), instances=len(expected)
            )
            assert sorted(self.resolver.holders()) == sorted(self.held)
            for holder, spec in self.held.items():
                assert self.resolver.spec_of(holder) == spec

        @invariant()
        def refcounts_equal_holders(self) -> None:
            live = set(self.resolver.live_specs())
            expected: Counter[StrategySpec] = Counter(self.held.values())
            for parent in live:
                expected.update(_children(parent))
            for spec in live:
                assert self.resolver.refcount(spec) == expected[spec], spec

        @invariant()
        def each_instance_is_live_xor_closed_once(self) -> None:
            assert all(i.closes in (0, 1) for i in self.recorder.created)
            open_configs = [i.config for i in self.recorder.created if i.closes == 0]
            live_rec = [s.config for s in self.resolver.live_specs() if s.strategy == "rec"]
            # one open instance per live rec spec, no duplicates, nothing else open
            assert sorted(map(repr, open_configs)) == sorted(map(repr, live_rec))
            assert len(set(open_configs)) == len(open_configs)

        def teardown(self) -> None:
            try:
                self.run(self.resolver.aclose())
                assert self.resolver.stats() == ResolverStats(models=0, instances=0)
                assert all(i.closes == 1 for i in self.recorder.created)
            finally:
                self.loop.close()

    run_state_machine_as_test(
        ResolverMachine,
        settings=settings(max_examples=60, stateful_step_count=25, deadline=None),
    )
