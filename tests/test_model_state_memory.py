"""Per-model state stays compact: live bytes per model once every model holds a result.

Measured with ``tracemalloc`` (live Python objects, not RSS, which allocator
fragmentation makes noisy). The code before the compaction held about 1,240 bytes
a model here (a threshold state, a bigger heap entry, a history list and deadline
floats of its own), the compact state about 870, and 833 once results, targets
and transitions lost their weakref slots and a model's state two slots (one for
the shared deadline and staleness floats, one for when the next probe is due and
when the running one was). 786 once a first transition reused its result's
time, and 738 once the models answered in one scheduler tick shared the floats
of when they were observed and until when their result is fresh; 714 once noop's
latencies were shared floats, 679 once the monitor kept a name index only for
the strategy instances that batch (a count for the others), and 607 once a
model's first transition was kept as its result alone. The bound (under the 679
before) leaves about 4 % for other Python versions.
"""

from __future__ import annotations

import gc
import tracemalloc

from _monitor_support import wait_until
from healthkit import HealthKit, Monitor, Status, StrategyRegistry, load_config

MODELS = 3000
#: Bytes per model the kit, the monitor and one result each may hold (see above).
BOUND = 635


async def test_a_model_with_a_result_holds_about_a_kilobyte_of_live_objects_at_most() -> None:
    registry = StrategyRegistry(entry_points=False)
    raw = {
        "defaults": {"health_check": {"strategy": "noop", "period": 3600.0, "jitter": 0.0}},
        "models": {f"model-{i}": {"health_check": {"timeout": 1 + i % 10}} for i in range(MODELS)},
    }
    config = load_config(raw, registry=registry)
    del raw
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        monitor = Monitor(HealthKit(config, registry=registry))
        try:
            await monitor.start()
            await wait_until(lambda: monitor.stats().checks >= MODELS)
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - before
            # The state is still all there: a result, the first transition, readiness.
            assert all(monitor.last_result(m) is not None for m in monitor.models)
            assert all(
                [(t.old, t.new) for t in monitor.history(m)] == [(Status.UNKNOWN, Status.HEALTHY)]
                for m in monitor.models
            )
            assert monitor.server_ready()
        finally:
            await monitor.aclose()
    finally:
        tracemalloc.stop()
    assert held / MODELS < BOUND, f"{held / MODELS:.0f} bytes a model"
