"""The monitor against a real loopback predictor and scripted plugins."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from _monitor_support import (
    PredictorProcess,
    ScriptedPlugin,
    healthy,
    http_config,
    unhealthy,
    wait_until,
)
from healthkit import (
    CheckResult,
    ClosedError,
    ConfigError,
    HealthKit,
    Monitor,
    Status,
    StrategyRegistry,
    Target,
    Transition,
    load_config,
    parse_spec,
)
from healthkit.testing import OipServer, SilentServer

# Fast probing for tests: thresholds and timeouts are what is under test, not wall time.
FAST = {"period": 0.05, "jitter": 0.0, "timeout": 0.3}


@pytest.fixture
def predictor() -> Iterator[OipServer]:
    with OipServer({"alpha": "ready", "beta": "ready"}) as server:
        yield server


@pytest.fixture
def plugin() -> ScriptedPlugin:
    return ScriptedPlugin()


def scripted_kit(plugin: ScriptedPlugin, models: dict[str, str], **settings: Any) -> HealthKit:
    registry = plugin.registry()
    raw = {
        "models": {
            name: {"health_check": {"strategy": "scripted", "script": script, **settings}}
            for name, script in models.items()
        }
    }
    return HealthKit(load_config(raw, registry=registry), registry=registry)


@pytest.fixture
async def closing() -> AsyncIterator[list[Monitor]]:
    """Monitors appended here are closed after the test, whatever happened."""
    monitors: list[Monitor] = []
    try:
        yield monitors
    finally:
        for monitor in monitors:
            await monitor.aclose()


# -- on demand: cache and single flight --------------------------------------------------


async def test_a_burst_of_concurrent_callers_costs_one_upstream_request(
    predictor: OipServer, closing: list[Monitor]
) -> None:
    kit = HealthKit.from_config(http_config(predictor.url, ["alpha"], cache_ttl=30.0))
    monitor = Monitor(kit)
    closing.append(monitor)
    predictor.delay = 0.05  # keep the first check in flight while the burst arrives

    results = await asyncio.gather(*(monitor.acheck("alpha") for _ in range(1000)))

    assert predictor.requests["/v2/models/alpha/ready"] == 1
    assert {r.status for r in results} == {Status.HEALTHY}
    assert len({id(r) for r in results}) == 1  # every caller got the one shared result
    stats = monitor.stats()
    assert stats.checks == 1
    assert stats.coalesced == 999
    # Within cache_ttl a later caller is answered from the cache.
    await monitor.acheck("alpha")
    assert predictor.requests["/v2/models/alpha/ready"] == 1
    assert monitor.stats().cache_hits == 1


async def test_cache_expires_after_cache_ttl(predictor: OipServer, closing: list[Monitor]) -> None:
    kit = HealthKit.from_config(http_config(predictor.url, ["alpha"], cache_ttl=0.05))
    monitor = Monitor(kit)
    closing.append(monitor)
    first = await monitor.acheck("alpha")
    assert (await monitor.acheck("alpha")) is first
    await asyncio.sleep(0.06)
    second = await monitor.acheck("alpha")
    assert second is not first
    assert predictor.requests["/v2/models/alpha/ready"] == 2


async def test_a_cancelled_caller_does_not_cancel_the_shared_check(
    predictor: OipServer, closing: list[Monitor]
) -> None:
    monitor = Monitor(HealthKit.from_config(http_config(predictor.url, ["alpha"])))
    closing.append(monitor)
    predictor.delay = 0.1
    impatient = asyncio.ensure_future(monitor.acheck("alpha"))
    patient = asyncio.ensure_future(monitor.acheck("alpha"))
    await asyncio.sleep(0.02)
    impatient.cancel()
    result = await patient
    assert result.status is Status.HEALTHY
    assert predictor.requests["/v2/models/alpha/ready"] == 1


async def test_other_version_is_its_own_target_and_leaves_thresholds_alone(
    predictor: OipServer, closing: list[Monitor]
) -> None:
    monitor = Monitor(HealthKit.from_config(http_config(predictor.url, ["alpha"])))
    closing.append(monitor)
    result = await monitor.acheck("alpha", version="7")
    assert result.target == Target(model="alpha", version="7")
    assert predictor.requests["/v2/models/alpha/versions/7/ready"] == 1
    assert monitor.last_result("alpha") is None
    assert not monitor.is_ready("alpha")


async def test_unknown_model_raises_key_error(predictor: OipServer, closing: list[Monitor]) -> None:
    monitor = Monitor(HealthKit.from_config(http_config(predictor.url, ["alpha"])))
    closing.append(monitor)
    assert "alpha" in monitor and "nope" not in monitor
    with pytest.raises(KeyError, match="nope"):
        await monitor.acheck("nope")
    for query in (monitor.status, monitor.is_ready, monitor.last_result, monitor.history):
        with pytest.raises(KeyError):
            query("nope")


# -- background probing and thresholds ---------------------------------------------------


async def test_readiness_starts_not_ready_and_turns_ready_after_success_threshold(
    predictor: OipServer, closing: list[Monitor]
) -> None:
    kit = HealthKit.from_config(
        http_config(predictor.url, ["alpha", "beta"], success_threshold=3, **FAST)
    )
    monitor = Monitor(kit)
    closing.append(monitor)
    assert monitor.status("alpha") is Status.UNKNOWN
    assert not monitor.is_ready("alpha")
    assert not monitor.is_live()
    seen: list[Transition] = []
    monitor.add_listener(seen.append)

    await monitor.start()
    await monitor.start()  # idempotent
    assert monitor.is_live()
    await wait_until(monitor.server_ready)

    # Exactly success_threshold probes were needed, and the one transition says why.
    assert predictor.requests["/v2/models/alpha/ready"] >= 3
    [tr] = [t for t in seen if t.model == "alpha"]
    assert (tr.old, tr.new) == (Status.UNKNOWN, Status.HEALTHY)
    assert tr.result.status is Status.HEALTHY
    assert monitor.history("alpha") == (tr,)


async def test_killed_predictor_turns_not_ready_after_failure_threshold(
    closing: list[Monitor],
) -> None:
    with PredictorProcess("alpha") as predictor:
        kit = HealthKit.from_config(
            http_config(predictor.url, ["alpha"], failure_threshold=3, **FAST)
        )
        monitor = Monitor(kit)
        closing.append(monitor)
        await monitor.start()
        await wait_until(lambda: monitor.is_ready("alpha"))
    # Bound: failure_threshold x period, plus the timeout of the last probe (and slack).
    await wait_until(lambda: not monitor.is_ready("alpha"), timeout=3 * 0.05 + 0.3 + 2.0)
    tr = monitor.history("alpha")[-1]
    assert (tr.old, tr.new) == (Status.HEALTHY, Status.UNHEALTHY)
    assert "connection failed" in tr.result.detail
    # Kubernetes semantics: failure_threshold consecutive failures, not one.
    assert monitor._models.get("alpha").thresholds.failures == 3
    assert monitor.is_live()


async def test_hung_predictor_is_cut_at_the_timeout_and_never_ready(closing: list[Monitor]) -> None:
    with SilentServer() as hung:
        kit = HealthKit.from_config(http_config(hung.url, ["alpha"], timeout=0.2, period=0.05))
        monitor = Monitor(kit)
        closing.append(monitor)
        start = time.monotonic()
        result = await monitor.acheck("alpha")
        elapsed = time.monotonic() - start
        assert result.status is Status.UNHEALTHY
        assert "timed out" in result.detail
        assert elapsed < 0.2 + 1.0  # bounded by the timeout, not a hang
        await monitor.start()
        await wait_until(lambda: monitor.stats().checks >= 3)
        assert not monitor.is_ready("alpha")
        assert monitor.status("alpha") is Status.UNHEALTHY
        assert hung.accepted >= 1
        await monitor.aclose()


async def test_predictor_that_hangs_after_being_ready_turns_not_ready(
    predictor: OipServer, closing: list[Monitor]
) -> None:
    kit = HealthKit.from_config(
        http_config(
            predictor.url, ["alpha"], failure_threshold=2, period=0.05, jitter=0.0, timeout=0.1
        )
    )
    monitor = Monitor(kit)
    closing.append(monitor)
    await monitor.start()
    await wait_until(lambda: monitor.is_ready("alpha"))
    predictor.delay = 0.3  # three timeouts long: a hang, as far as the monitor can tell
    try:
        await wait_until(lambda: not monitor.is_ready("alpha"), timeout=5.0)
        assert "timed out" in monitor.history("alpha")[-1].result.detail
    finally:
        predictor.delay = 0.0
    hung_until = time.monotonic() + 0.35
    await wait_until(lambda: monitor.is_ready("alpha"))  # and it recovers
    # The predictor's handlers still asleep on abandoned requests end within this test,
    # so their broken-pipe tracebacks land in its captured output.
    await wait_until(lambda: time.monotonic() > hung_until)


async def test_flapping_predictor_obeys_both_thresholds(
    predictor: OipServer, closing: list[Monitor]
) -> None:
    predictor.set_state("alpha", "flaky")  # ready on every other request
    kit = HealthKit.from_config(
        http_config(predictor.url, ["alpha"], success_threshold=2, failure_threshold=2, **FAST)
    )
    monitor = Monitor(kit)
    closing.append(monitor)
    await monitor.start()
    await wait_until(lambda: predictor.requests["/v2/models/alpha/ready"] >= 10)
    # Never two successes in a row: never ready.
    assert not monitor.is_ready("alpha")
    assert all(not t.new.is_ok for t in monitor.history("alpha"))

    predictor.set_state("alpha", "ready")
    await wait_until(lambda: monitor.is_ready("alpha"))
    predictor.set_state("alpha", "flaky")
    seen = predictor.requests["/v2/models/alpha/ready"]
    await wait_until(lambda: predictor.requests["/v2/models/alpha/ready"] >= seen + 10)
    # Never two failures in a row: still ready.
    assert monitor.is_ready("alpha")
    assert monitor.history("alpha")[-1].new is Status.HEALTHY


async def test_exact_threshold_semantics(plugin: ScriptedPlugin, closing: list[Monitor]) -> None:
    script = iter("FSSFFSFFFSSSFS")  # S: success, F: failure
    outcomes: list[str] = []

    async def next_outcome(target: Target) -> CheckResult:
        step = next(script, "S")
        outcomes.append(step)
        return healthy(target) if step == "S" else unhealthy(target)

    plugin.behaviours["flip"] = next_outcome
    kit = scripted_kit(
        plugin, {"m": "flip"}, success_threshold=2, failure_threshold=3, cache_ttl=0.0, **FAST
    )
    monitor = Monitor(kit)
    closing.append(monitor)
    readiness: list[bool] = []
    # Not started: every on-demand check (uncached) is one observation.
    for _ in range(14):
        await monitor.acheck("m")
        readiness.append(monitor.is_ready("m"))
    # Outcomes: F   S   S   F   F   S   F   F   F   S   S   S   F   S
    expected = ["n", "n", "R", "R", "R", "R", "R", "R", "n", "n", "R", "R", "R", "R"]
    assert ["R" if r else "n" for r in readiness] == expected
    assert [(t.old, t.new) for t in monitor.history("m")] == [
        (Status.UNKNOWN, Status.UNHEALTHY),
        (Status.UNHEALTHY, Status.HEALTHY),
        (Status.HEALTHY, Status.UNHEALTHY),
        (Status.UNHEALTHY, Status.HEALTHY),
    ]


async def test_unhealthy_period_probes_faster_while_not_ready(
    plugin: ScriptedPlugin, closing: list[Monitor]
) -> None:
    async def down(target: Target) -> CheckResult:
        return unhealthy(target)

    plugin.behaviours["down"] = down
    kit = scripted_kit(plugin, {"m": "down"}, period=60.0, unhealthy_period=0.02, jitter=0.0)
    monitor = Monitor(kit)
    closing.append(monitor)
    await monitor.start()
    # With period = 60 s only one probe would have run; the unhealthy period keeps probing.
    await wait_until(lambda: plugin.calls.get(Target(model="m"), 0) >= 5)


async def test_initial_delay_postpones_the_first_probe(
    plugin: ScriptedPlugin, closing: list[Monitor]
) -> None:
    async def up(target: Target) -> CheckResult:
        return healthy(target)

    plugin.behaviours["up"] = up
    kit = scripted_kit(plugin, {"m": "up"}, period=0.02, initial_delay=0.3, jitter=0.0)
    monitor = Monitor(kit)
    closing.append(monitor)
    started = time.monotonic()
    await monitor.start()
    await wait_until(lambda: monitor.is_ready("m"))
    assert time.monotonic() - started >= 0.3


# -- misbehaving checks --------------------------------------------------------------------


async def test_plugin_that_sleeps_forever_is_cut_at_the_timeout(
    plugin: ScriptedPlugin, closing: list[Monitor]
) -> None:
    async def forever(target: Target) -> CheckResult:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    plugin.behaviours["forever"] = forever
    monitor = Monitor(scripted_kit(plugin, {"m": "forever"}, timeout=0.1))
    closing.append(monitor)
    start = time.monotonic()
    result = await monitor.acheck("m")
    assert time.monotonic() - start < 0.1 + 1.0
    assert result.status is Status.UNHEALTHY
    assert "timed out after 0.2s" in result.detail  # timeout 0.1 plus the 0.1 s grace floor
    assert result.error is not None and result.error.type == "TimeoutError"
    assert monitor.stats().timeouts == 1


async def test_plugin_that_swallows_cancellation_is_abandoned_not_awaited(
    plugin: ScriptedPlugin, closing: list[Monitor]
) -> None:
    release = asyncio.Event()

    async def stubborn(target: Target) -> CheckResult:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # rude: ignores cancellation
        return healthy(target)

    plugin.behaviours["stubborn"] = stubborn
    monitor = Monitor(scripted_kit(plugin, {"m": "stubborn"}, timeout=0.1))
    closing.append(monitor)
    start = time.monotonic()
    result = await monitor.acheck("m")
    assert time.monotonic() - start < 1.0
    assert "timed out" in result.detail
    release.set()  # lets the abandoned check end, so nothing leaks past the test


@pytest.mark.parametrize(
    ("behaviour", "detail"),
    [
        ("raise", "check raised RuntimeError: boom"),
        ("garbage", "strategy returned str, not a CheckResult"),
    ],
)
async def test_raising_or_garbage_check_is_unhealthy_with_reason(
    plugin: ScriptedPlugin, closing: list[Monitor], behaviour: str, detail: str
) -> None:
    async def boom(target: Target) -> Any:
        raise RuntimeError("boom")

    async def garbage(target: Target) -> Any:
        return "yes, fine"

    plugin.behaviours.update({"raise": boom, "garbage": garbage})
    monitor = Monitor(scripted_kit(plugin, {"m": behaviour}, **FAST))
    closing.append(monitor)
    await monitor.start()
    await wait_until(lambda: monitor.status("m") is Status.UNHEALTHY)
    last = monitor.last_result("m")
    assert last is not None and last.detail == detail
    await wait_until(lambda: plugin.calls.get(Target(model="m"), 0) >= 3)
    assert monitor.is_live()


async def test_listener_that_raises_is_logged_and_the_monitor_goes_on(
    plugin: ScriptedPlugin, closing: list[Monitor], caplog: pytest.LogCaptureFixture
) -> None:
    state = {"ok": True}

    async def switch(target: Target) -> CheckResult:
        return healthy(target) if state["ok"] else unhealthy(target)

    plugin.behaviours["switch"] = switch
    monitor = Monitor(scripted_kit(plugin, {"m": "switch"}, failure_threshold=1, **FAST))
    closing.append(monitor)
    got: list[Transition] = []
    async_got: list[Transition] = []

    def bad(tr: Transition) -> None:
        raise ValueError("listener bug")

    async def async_listener(tr: Transition) -> None:
        await asyncio.sleep(0)
        async_got.append(tr)

    monitor.add_listener(bad)
    monitor.add_listener(got.append)
    monitor.add_listener(async_listener)
    with caplog.at_level(logging.ERROR, logger="healthkit.monitor"):
        await monitor.start()
        await wait_until(lambda: monitor.is_ready("m"))
        state["ok"] = False
        await wait_until(lambda: not monitor.is_ready("m"))
        await wait_until(lambda: len(async_got) == 2)
    assert [(t.old, t.new) for t in got] == [
        (Status.UNKNOWN, Status.HEALTHY),
        (Status.HEALTHY, Status.UNHEALTHY),
    ]
    assert async_got == got
    assert "listener bug" in caplog.text
    assert monitor.is_live()


async def test_history_is_bounded(plugin: ScriptedPlugin, closing: list[Monitor]) -> None:
    flip = {"n": 0}

    async def alternate(target: Target) -> CheckResult:
        flip["n"] += 1
        return healthy(target) if flip["n"] % 2 else unhealthy(target)

    plugin.behaviours["alt"] = alternate
    monitor = Monitor(
        scripted_kit(plugin, {"m": "alt"}, failure_threshold=1, **FAST), history_size=4
    )
    closing.append(monitor)
    await monitor.start()
    await wait_until(lambda: flip["n"] >= 10)
    history = monitor.history("m")
    assert len(history) == 4
    assert history[-1].at >= history[0].at


# -- the global budget ----------------------------------------------------------------------


async def test_in_flight_checks_never_exceed_the_budget(
    plugin: ScriptedPlugin, closing: list[Monitor]
) -> None:
    async def slow(target: Target) -> CheckResult:
        await asyncio.sleep(0.02)
        return healthy(target)

    plugin.behaviours["slow"] = slow
    models = {f"m{i}": "slow" for i in range(40)}
    monitor = Monitor(scripted_kit(plugin, models, period=0.01, jitter=0.0), max_in_flight=3)
    closing.append(monitor)
    await monitor.start()
    await asyncio.gather(*(monitor.acheck(f"m{i}") for i in range(40)))
    await wait_until(monitor.server_ready)
    assert plugin.max_concurrent == 3
    assert monitor.stats().in_flight <= 3


# -- batching ---------------------------------------------------------------------------------


async def test_batch_mode_costs_one_repository_index_request_per_period(
    closing: list[Monitor],
) -> None:
    names = [f"model-{i}" for i in range(30)]
    with OipServer(dict.fromkeys(names, "ready")) as predictor:
        predictor.set_state("model-7", "not_ready")
        kit = HealthKit.from_config(
            http_config(predictor.url, [*names, "ghost"], batch=True, period=0.1, jitter=0.1)
        )
        monitor = Monitor(kit)
        closing.append(monitor)
        batches: list[int] = []
        monitor.add_check_listener(lambda event: batches.append(event.targets))
        await monitor.start()
        await wait_until(lambda: len(batches) >= 5)
        await monitor.aclose()

        # Every probe went through the index; no model was asked on its own.
        per_model = sum(
            n for path, n in predictor.requests.items() if path.startswith("/v2/models/")
        )
        assert per_model == 0
        assert predictor.requests["/v2/repository/index"] == len(batches)
        # After the first round every batch covers every model: one request per period.
        assert batches[-1] == len(names) + 1
        assert sum(monitor.is_ready(n) for n in names) == len(names) - 1
        assert not monitor.is_ready("model-7")
        assert "UNAVAILABLE" in (monitor.last_result("model-7") or unhealthy(Target())).detail
        ghost = monitor.last_result("ghost")
        assert ghost is not None and "not in repository index" in ghost.detail


def test_batch_mode_is_opt_in_and_v2_only() -> None:
    registry = StrategyRegistry()
    plain = parse_spec({"strategy": "http", "base_url": "http://x"}, registry=registry)
    batch = parse_spec(
        {"strategy": "http", "base_url": "http://x", "batch": True}, registry=registry
    )
    assert plain != batch  # a batch config is its own instance
    with pytest.raises(ConfigError, match="batch: only allowed when protocol = 'v2'"):
        parse_spec(
            {"strategy": "http", "base_url": "http://x", "protocol": "v1", "batch": True},
            registry=registry,
        )


async def test_batch_groups_only_models_sharing_an_instance(
    plugin: ScriptedPlugin, closing: list[Monitor]
) -> None:
    async def up(target: Target) -> CheckResult:
        return healthy(target)

    plugin.behaviours.update({"a": up, "b": up})
    registry = plugin.registry()
    raw = {
        "models": {
            **{
                f"a{i}": {"health_check": {"strategy": "scripted_batch", "script": "a", **FAST}}
                for i in range(5)
            },
            **{
                f"b{i}": {"health_check": {"strategy": "scripted_batch", "script": "b", **FAST}}
                for i in range(3)
            },
            "single": {"health_check": {"strategy": "scripted", "script": "a", **FAST}},
        }
    }
    monitor = Monitor(HealthKit(load_config(raw, registry=registry), registry=registry))
    closing.append(monitor)
    await monitor.start()
    await wait_until(lambda: len(plugin.batch_calls) >= 6)
    await wait_until(monitor.server_ready)
    for call in plugin.batch_calls:
        prefixes = {t.model[0] for t in call if t.model}
        assert len(prefixes) == 1  # one instance per batch
    assert {len(c) for c in plugin.batch_calls[-4:]} <= {5, 3}
    assert Target(model="single") in plugin.calls


async def test_batch_that_raises_or_hangs_marks_every_member_unhealthy(
    plugin: ScriptedPlugin, closing: list[Monitor]
) -> None:
    async def boom(target: Target) -> CheckResult:
        raise RuntimeError("index exploded")

    plugin.behaviours["boom"] = boom
    registry = plugin.registry()
    hc = {"strategy": "scripted_batch", "script": "boom", **FAST}
    raw = {"models": {f"m{i}": {"health_check": hc} for i in range(3)}}
    monitor = Monitor(HealthKit(load_config(raw, registry=registry), registry=registry))
    closing.append(monitor)
    await monitor.start()
    await wait_until(lambda: all(monitor.last_result(f"m{i}") is not None for i in range(3)))
    for i in range(3):
        last = monitor.last_result(f"m{i}")
        assert last is not None and "index exploded" in last.detail
        assert last.status is Status.UNHEALTHY


# -- lifecycle and reload ------------------------------------------------------------------


async def test_reload_restarts_only_changed_models(predictor: OipServer) -> None:
    with OipServer({"alpha": "ready", "beta": "ready"}) as other:
        raw = http_config(predictor.url, ["alpha", "beta", "gamma"], **FAST)
        kit = HealthKit.from_config(raw)
        monitor = Monitor(kit)
        async with monitor:
            await wait_until(lambda: monitor.is_ready("alpha") and monitor.is_ready("beta"))
            alpha_history = monitor.history("alpha")
            # gamma is unknown upstream: never ready.
            assert not monitor.is_ready("gamma")
            predictor.set_state("delta", "ready")
            raw2 = http_config(predictor.url, ["alpha", "delta"], **FAST)
            raw2["models"]["beta"] = {"health_check": {"base_url": other.url}}
            plan = await monitor.areload(load_config(raw2, registry=kit.registry))
            assert plan.changed == ("beta",)
            assert plan.added == ("delta",)
            assert plan.removed == ("gamma",)
            assert sorted(monitor.models) == ["alpha", "beta", "delta"]
            with pytest.raises(KeyError):
                monitor.status("gamma")
            assert monitor.history("alpha") == alpha_history
            assert monitor.is_ready("beta")  # kept until its first new result
            await wait_until(lambda: other.requests["/v2/models/beta/ready"] >= 1)
            await wait_until(lambda: monitor.is_ready("delta"))
        assert monitor.closed
        assert not monitor.is_live()
        with pytest.raises(ClosedError):
            await monitor.acheck("alpha")
        with pytest.raises(ClosedError):
            await monitor.start()
        await monitor.aclose()  # idempotent


async def test_close_stops_probing_and_closes_instances(
    plugin: ScriptedPlugin,
) -> None:
    async def up(target: Target) -> CheckResult:
        return healthy(target)

    plugin.behaviours["up"] = up
    monitor = Monitor(scripted_kit(plugin, {"a": "up", "b": "up"}, **FAST))
    await monitor.start()
    await wait_until(monitor.server_ready)
    await monitor.aclose()
    assert plugin.closed == 1  # a and b share one instance
    calls = sum(plugin.calls.values())
    await asyncio.sleep(0.15)
    assert sum(plugin.calls.values()) == calls
