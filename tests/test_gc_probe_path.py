"""What a background probe leaves for the garbage collector, and the state it leaves.

At 100,000 models the probe delays that matter are full collections of the
objects every probe leaves behind for a period: the fewer of them the collector
tracks, the shorter and rarer those collections. The scheduler's heap entries
hold atomic values only (a due time and a model name), so the collector
untracks them. The steady-state shortcut of ``Models.observe`` must leave every
model's threshold state exactly where the pure state machine would.
"""

from __future__ import annotations

import gc
import itertools
import random

from _monitor_support import wait_until
from healthkit import HealthKit, Monitor, Status, StrategyRegistry, load_config
from healthkit._monitoring._models import Models
from healthkit._monitoring._thresholds import observe

MODELS = 50


def _monitor(models: int, period: float) -> Monitor:
    registry = StrategyRegistry(entry_points=False)
    raw = {
        "defaults": {"health_check": {"strategy": "noop", "period": period, "jitter": 0.0}},
        "models": {f"model-{i}": {} for i in range(models)},
    }
    return Monitor(HealthKit(load_config(raw, registry=registry), registry=registry))


async def test_the_schedulers_heap_entries_are_untracked_by_the_collector_once_collected() -> None:
    monitor = _monitor(MODELS, period=0.05)
    try:
        await monitor.start()
        # Two rounds: the entries of the second were pushed by finished probes.
        await wait_until(lambda: monitor.stats().checks >= 2 * MODELS)
        gc.collect()
        heap = list(monitor._scheduler._heap)
        assert heap, "every model is scheduled"
        tracked = [entry for entry in heap if gc.is_tracked(entry)]
        assert not tracked, f"{len(tracked)} of {len(heap)} heap entries still tracked"
    finally:
        await monitor.aclose()


def _config(success: int, failure: int) -> dict[str, object]:
    return {
        "models": {
            "m": {
                "health_check": {
                    "strategy": "noop",
                    "success_threshold": success,
                    "failure_threshold": failure,
                }
            }
        }
    }


def test_observe_leaves_the_thresholds_where_the_pure_state_machine_does() -> None:
    from healthkit import CheckResult, Target

    registry = StrategyRegistry(entry_points=False)
    rng = random.Random(12)
    statuses = list(Status)
    for success, failure in itertools.product((1, 2, 3), (1, 2, 3)):
        config = load_config(_config(success, failure), registry=registry)
        models = Models(config.models.values(), history_size=10, spawn=lambda coro: coro.close())
        st = models.get("m")
        expected = st.thresholds
        transitions = 0
        # Long runs of one status (the shortcut's case) and every change between them.
        for _ in range(60):
            status = rng.choice(statuses)
            for _ in range(rng.randint(1, 2 * max(success, failure) + 1)):
                result = CheckResult(status=status, strategy="noop", target=Target(model="m"))
                before = expected
                expected = observe(
                    expected, status, success_threshold=success, failure_threshold=failure
                )
                transitions += expected.status != before.status
                models.observe(st, result)
                assert st.thresholds == expected, (success, failure, status)
                assert st.last is result
        assert len(st.history) == min(transitions, 10)
