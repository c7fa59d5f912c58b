"""The ``composite`` strategy: all / any / quorum, nesting, degraded propagation, child
results kept (even of children that raise or hang), and children shared through the
resolver with other models' identical configs.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from healthkit import HealthKit, ResolverStats, Status, StrategyRegistry, Target, load_config
from healthkit.strategies.composite import CompositeStrategy, combine
from healthkit.testing import OipServer

H, D, U, X = Status.HEALTHY, Status.DEGRADED, Status.UNKNOWN, Status.UNHEALTHY


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([H, H, H], H),
        ([H, D, H], D),
        ([H, D, U], U),
        ([H, X, D], X),
        ([D], D),
    ],
)
def test_all_is_the_worst_child(statuses: list[Status], expected: Status) -> None:
    assert combine("all", None, statuses)[0] is expected


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([X, X, H], H),
        ([X, D, U], D),
        ([X, U], U),
        ([X, X], X),
    ],
)
def test_any_is_the_best_child(statuses: list[Status], expected: Status) -> None:
    assert combine("any", None, statuses)[0] is expected


@pytest.mark.parametrize(
    ("k", "statuses", "expected"),
    [
        (2, [H, H, X], H),
        (2, [H, D, X], D),  # two serve, one of them degraded
        (2, [D, D, H], D),
        (2, [H, U, X], U),  # the unknown one may be up: cannot tell
        (2, [H, X, X], X),
        (3, [H, H, H], H),
        (3, [H, H, D], D),
        (1, [X, X, H], H),
    ],
)
def test_quorum(k: int, statuses: list[Status], expected: Status) -> None:
    status, reason = combine("quorum", k, statuses)
    assert status is expected
    assert reason.startswith(f"quorum {k}/{len(statuses)}: ")


def test_quorum_bounds_agree_with_all_and_any() -> None:
    # quorum n of n behaves like all for healthy/unhealthy; quorum 1 like any
    for statuses in itertools.product([H, X], repeat=3):
        assert combine("quorum", 3, list(statuses))[0] is combine("all", None, list(statuses))[0]
        assert combine("quorum", 1, list(statuses))[0] is combine("any", None, list(statuses))[0]


def test_combine_reason_counts_children() -> None:
    assert combine("all", None, [H, H, X])[1] == "2 healthy, 1 unhealthy"


# -- through the facade -------------------------------------------------------------------


def _kit(registry: StrategyRegistry, models: dict[str, Any]) -> HealthKit:
    raw = {"models": {name: {"health_check": hc} for name, hc in models.items()}}
    return HealthKit(load_config(raw, registry=registry), registry=registry)


def _rec(behaviour: str, key: int = 0, **kw: Any) -> dict[str, Any]:
    return {"strategy": "rec", "behaviour": behaviour, "key": key, **kw}


async def test_composite_keeps_each_child_result(rec_registry: StrategyRegistry) -> None:
    hc = {
        "strategy": "composite",
        "mode": "quorum",
        "quorum": 2,
        "checks": [_rec("healthy", 1), _rec("degraded", 2), _rec("unhealthy", 3)],
    }
    async with _kit(rec_registry, {"m": hc}) as hk:
        result = await hk.acheck("m")
    assert result.status is Status.DEGRADED
    assert result.strategy == "composite"
    assert result.detail == "quorum 2/3: 1 healthy, 1 degraded, 1 unhealthy"
    assert [c.status for c in result.children] == [H, D, X]
    assert [c.detail for c in result.children] == ["key 1", "key 2", "key 3"]
    assert all(c.target == Target(model="m") for c in result.children)
    assert result.to_dict()["children"][2]["status"] == "unhealthy"


@pytest.mark.parametrize(
    ("mode", "extra", "expected"),
    [("all", {}, D), ("any", {}, H), ("quorum", {"quorum": 2}, H)],
)
async def test_degraded_propagation(
    rec_registry: StrategyRegistry, mode: str, extra: dict[str, Any], expected: Status
) -> None:
    hc = {
        "strategy": "composite",
        "mode": mode,
        **extra,
        "checks": [_rec("healthy", 1), _rec("degraded", 2), _rec("healthy", 3)],
    }
    async with _kit(rec_registry, {"m": hc}) as hk:
        assert (await hk.acheck("m")).status is expected


async def test_nested_composites(rec_registry: StrategyRegistry) -> None:
    inner_all = {"strategy": "composite", "checks": [_rec("healthy", 1), _rec("degraded", 2)]}
    inner_any = {
        "strategy": "composite",
        "mode": "any",
        "checks": [_rec("unhealthy", 3), {"strategy": "composite", "checks": [_rec("healthy", 1)]}],
    }
    hc = {"strategy": "composite", "mode": "all", "checks": [inner_all, inner_any]}
    async with _kit(rec_registry, {"m": hc}) as hk:
        result = await hk.acheck("m")
        # rec 1 appears three times but is one instance; plus rec 2, rec 3 and four composites
        assert hk.stats() == ResolverStats(models=1, instances=7)
    assert result.status is D  # all(degraded, healthy)
    first, second = result.children
    assert (first.status, second.status) == (D, H)
    assert [c.status for c in first.children] == [H, D]
    assert second.children[1].strategy == "composite"
    assert second.children[1].children[0].detail == "key 1"


async def test_children_that_raise_hang_or_return_garbage(rec_registry: StrategyRegistry) -> None:
    hc = {
        "strategy": "composite",
        "mode": "any",
        "timeout": 0.2,
        "checks": [_rec("raise", 1), _rec("hang", 2), _rec("garbage", 3), _rec("healthy", 4)],
    }
    async with _kit(rec_registry, {"m": hc}) as hk:
        result = await hk.acheck("m")
    assert result.status is H
    raised, hung, garbage, fine = result.children
    assert (raised.status, raised.error.type if raised.error else None) == (X, "RuntimeError")
    assert "rec exploded" in raised.detail
    assert (hung.status, hung.detail) == (X, "check timed out after 0.2s")
    assert garbage.status is X and "CheckResult" in garbage.detail
    assert fine.status is H
    assert all(c.strategy == "rec" for c in result.children)


async def test_children_run_concurrently(rec_registry: StrategyRegistry, recorder: Any) -> None:
    hc = {
        "strategy": "composite",
        "checks": [_rec("healthy", i, delay=0.05) for i in range(4)],
    }
    async with _kit(rec_registry, {"m": hc}) as hk:
        assert (await hk.acheck("m")).status is H
    assert recorder.max_in_flight == 4


async def test_children_are_shared_with_other_models(
    registry: StrategyRegistry, oip_server: OipServer
) -> None:
    for name in ("beta", "gamma", "delta"):
        oip_server.set_state(name, "ready")
    http = {"strategy": "http", "base_url": oip_server.url}
    http_respelled = {"base_url": oip_server.url.upper() + "/", "strategy": "http"}
    models = {
        "alpha": http,
        "beta": http_respelled,
        "gamma": {
            "strategy": "composite",
            "mode": "quorum",
            "quorum": 2,
            "checks": [http_respelled, {"strategy": "noop"}, {**http, "protocol": "v1"}],
        },
        "delta": {"strategy": "noop"},
    }
    async with _kit(registry, models) as hk:
        # http v2 (alpha, beta, gamma's first child), noop (delta, gamma's second child),
        # http v1 (gamma's third child) and the composite itself
        assert hk.stats() == ResolverStats(models=4, instances=4)
        gamma = hk.resolver.get("gamma")
        assert isinstance(gamma, CompositeStrategy)
        assert gamma._children[0] is hk.resolver.get("alpha") is hk.resolver.get("beta")
        assert gamma._children[1] is hk.resolver.get("delta")
        report = await hk.acheck_all()
        result = await hk.acheck("gamma")
    assert report.status is H
    assert result.status is H
    assert [c.strategy for c in result.children] == ["http", "noop", "http"]
    assert oip_server.requests["/v2/models/gamma/ready"] == 2
    assert oip_server.requests["/v1/models/gamma"] == 2
    assert oip_server.requests["/v2/models/alpha/ready"] == 1


async def test_child_failure_through_a_real_server(
    registry: StrategyRegistry, oip_server: OipServer, refused_url: str
) -> None:
    hc = {
        "strategy": "composite",
        "mode": "any",
        "checks": [
            {"strategy": "http", "base_url": refused_url},
            {"strategy": "http", "base_url": oip_server.url},
        ],
    }
    async with _kit(registry, {"alpha": hc, "beta": hc}) as hk:
        alpha = await hk.acheck("alpha")
        beta = await hk.acheck("beta")
    assert alpha.status is H
    assert alpha.children[0].status is X and "connection failed" in alpha.children[0].detail
    assert beta.status is X  # beta is not ready on the server, the other child is refused
    assert "not ready (HTTP 503)" in beta.children[1].detail
