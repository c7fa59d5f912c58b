"""The monitor builds a model's transitions field by field (not through ``Transition``'s
``__init__``, a keyword call per first result): each one must still be a complete,
ordinary ``Transition``. Fails when a field is added to ``Transition`` and not to
``_models._new_transition``.
"""

from __future__ import annotations

import datetime as dt

import attrs

from _monitor_support import wait_until
from healthkit import HealthKit, Monitor, Status, StrategyRegistry
from healthkit._monitoring._records import Transition


async def test_a_recorded_transition_has_every_field_and_equals_one_built_by_init() -> None:
    raw = {
        "defaults": {"health_check": {"strategy": "noop", "period": 3600.0, "jitter": 0.0}},
        "models": {"a": {}, "b": {}},
    }
    before = dt.datetime.now(dt.timezone.utc)
    async with Monitor(HealthKit.from_config(raw, registry=StrategyRegistry())) as monitor:
        await wait_until(lambda: all(monitor.history(m) for m in ("a", "b")))
        after = dt.datetime.now(dt.timezone.utc)
        for model in ("a", "b"):
            (tr,) = monitor.history(model)
            assert type(tr) is Transition
            fields = {f.name: getattr(tr, f.name) for f in attrs.fields(Transition)}
            assert attrs.evolve(tr) == tr == Transition(**fields)
            assert (tr.model, tr.old, tr.new) == (model, Status.UNKNOWN, Status.HEALTHY)
            assert tr.result is monitor.last_result(model)
            assert tr.at.tzinfo is dt.timezone.utc and before <= tr.at <= after
            assert repr(tr) == repr(Transition(**fields))
