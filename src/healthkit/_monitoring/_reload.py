"""Applying a reloaded config to a running monitor: only changed checks restart probing."""

from __future__ import annotations

import math

from .._config import ServerConfig
from .._resolver import ReloadPlan
from ._checks import Checks
from ._models import Models, ModelState, Probe
from ._outage import OutageDetector
from ._scheduler import Scheduler
from ._thresholds import restart

__all__ = ["apply_reload"]


def apply_reload(
    plan: ReloadPlan,
    config: ServerConfig,
    *,
    models: Models,
    scheduler: Scheduler,
    detector: OutageDetector,
    checks: Checks,
    now: float,
    running: bool,
) -> None:
    """Bring the monitor's models to ``config``, whose instances ``plan`` already swapped.

    A changed model keeps its status until its first new result, which is probed
    at once; unchanged models keep their state and schedule (a new period applies
    from the next probe, or sooner if the new one is shorter).
    """

    def unindex(st: ModelState) -> None:
        gone = models.unindex(st)
        if gone is not None:
            scheduler.forget(gone)
            detector.forget(gone)

    states = models.states
    models.timing.clear()  # shared timings of the old config: rebuilt as models configure
    for name in plan.removed:
        st = states.pop(name, None)
        if st is not None:
            unindex(st)
    for name in plan.added:
        st = models.add(config.models[name])
        if running:
            scheduler.schedule(st, now + scheduler.first_delay(st.settings))
    for name, mc in config.models.items():
        if name in plan.added:
            continue
        st = states[name]
        if mc == st.config:
            continue
        again = (
            name in plan.changed or mc.check != st.config.check or mc.version != st.config.version
        )
        unindex(st)
        models.configure(st, mc)
        if again:
            st.thresholds = restart(st.thresholds)
            st.fresh_until = -math.inf
            if st.probing:
                st.probe = Probe.RUNNING_THEN_AGAIN
            elif running:
                scheduler.schedule(st, now)
        elif not st.probing and running:
            soonest = now + scheduler.interval(st)
            if soonest < st.due:
                scheduler.schedule(st, soonest)
    checks.prune(now)
