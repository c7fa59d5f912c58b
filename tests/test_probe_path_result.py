"""``with_latency`` (once per probe of a strategy that leaves ``latency`` at 0) copies
every field of a result: the same as ``attrs.evolve`` with the new latency."""

from __future__ import annotations

import datetime as dt

import attrs

from healthkit import CheckResult, ErrorInfo, RequestInfo, Status, Target
from healthkit._result import leaf_result, with_latency


def test_with_latency_is_attrs_evolve_for_a_result_with_every_field_set() -> None:
    # A field added to CheckResult must be added to with_latency's copy too.
    assert [f.name for f in attrs.fields(CheckResult)] == [
        "status",
        "strategy",
        "target",
        "latency",
        "checked_at",
        "detail",
        "error",
        "children",
        "endpoint",
        "request",
    ]
    child = CheckResult(status=Status.DEGRADED, strategy="child", detail="slow")
    result = CheckResult(
        status=Status.UNHEALTHY,
        strategy="http",
        target=Target(model="m", version="2"),
        checked_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        detail="HTTP 503",
        error=ErrorInfo(type="HTTPStatusError", message="503"),
        children=(child,),
        endpoint="http://predictor:8080/v2/models/m/ready",
        request=RequestInfo(method="GET", url="http://predictor:8080/v2/models/m/ready"),
    )
    copied = with_latency(result, 0.25)
    assert type(copied) is CheckResult
    assert copied == attrs.evolve(result, latency=0.25)
    assert repr(copied) == repr(attrs.evolve(result, latency=0.25))
    assert copied.to_dict() == attrs.evolve(result, latency=0.25).to_dict()
    assert result.latency == 0.0  # the original is untouched


def test_with_latency_of_a_subclass_keeps_its_class() -> None:
    @attrs.frozen(kw_only=True)
    class Tagged(CheckResult):
        tag: str = "t"

    result = Tagged(status=Status.HEALTHY, strategy="x", tag="kept")
    copied = with_latency(result, 0.5)
    assert type(copied) is Tagged
    assert copied == attrs.evolve(result, latency=0.5)


def test_leaf_result_is_the_init_with_every_other_field_at_its_default() -> None:
    # noop builds its result field by field: it must be the result __init__ would build.
    before = dt.datetime.now(dt.timezone.utc)
    built = leaf_result(
        status=Status.HEALTHY, strategy="noop", target=Target(model="m"), latency=1e-6, detail="x"
    )
    after = dt.datetime.now(dt.timezone.utc)
    assert type(built) is CheckResult
    assert built.checked_at.tzinfo is dt.timezone.utc and before <= built.checked_at <= after
    expected = CheckResult(
        status=Status.HEALTHY,
        strategy="noop",
        target=Target(model="m"),
        latency=1e-6,
        detail="x",
        checked_at=built.checked_at,
    )
    assert built == expected
    assert repr(built) == repr(expected)
    assert built.to_dict() == expected.to_dict()
    # Every field is set (a field added to CheckResult and not to leaf_result fails here).
    for field in attrs.fields(CheckResult):
        getattr(built, field.name)


async def test_noop_latency_is_rounded_up_to_the_microsecond_and_shared() -> None:
    # noop's tiny latencies are a few shared floats, not one per result; never 0 (the
    # caller would copy the result to fill one in), never under what it measured.
    from healthkit.strategies.noop import NoopConfig, NoopStrategy

    noop = NoopStrategy(NoopConfig())
    results = [await noop.acheck(Target(model="m")) for _ in range(200)]
    for result in results:
        assert result.latency > 0
        assert round(result.latency * 1e6, 6).is_integer()  # whole microseconds
    latencies = {id(r.latency) for r in results}
    assert len(latencies) < 10, "each result has a float of its own"
