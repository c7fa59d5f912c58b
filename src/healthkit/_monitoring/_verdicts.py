"""Acting on the outage detector's verdicts about an instance.

Tripped: its queued checks are answered with the outage and every model of it
that was not already failing turns not ready at once. Recovered: its parked
models are probed promptly (each still needs its own fresh successes).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Sequence

from .._result import CheckResult, Target
from ._checks import Checks
from ._models import Models
from ._outage import Breaker, Change, OutageDetector, is_transport_failure, outage_result
from ._scheduler import Scheduler

__all__ = ["Verdicts"]

log = logging.getLogger("healthkit.monitor")


class Verdicts:
    """Feeds each upstream call's outcome to the detector and carries out its verdicts."""

    def __init__(
        self,
        *,
        models: Models,
        checks: Checks,
        scheduler: Scheduler,
        detector: OutageDetector,
        counts: collections.Counter[str],
        running: Callable[[], bool],
    ) -> None:
        self._models = models
        self._checks = checks
        self._scheduler = scheduler
        self._detector = detector
        self._counts = counts
        self._running = running

    def on_outcome(
        self,
        spec_id: int,
        result: CheckResult,
        deadline: float,
        starved: float,
        targets: Sequence[Target],
        threshold: int,
        timeout: float,
    ) -> None:
        """Feed one upstream call's outcome to its instance's breaker, and act on the verdict."""
        if self._detector.get(spec_id) is None and not is_transport_failure(result):
            return  # the common case: nothing to count, nothing to reset
        models = self._models.spec_models.get(spec_id)
        if models is None:
            return  # the instance left with a reload
        change = self._detector.account(
            spec_id,
            result,
            targets=targets,
            threshold=threshold,
            models=models,
            timeout=timeout,
            deadline=deadline,
            starved=starved,
            now=time.monotonic(),
        )
        breaker = self._detector.get(spec_id)
        if change is Change.TRIPPED and breaker is not None:
            self._tripped(spec_id, breaker, self._models.names_of(spec_id))
        elif change is Change.RECOVERED and breaker is not None:
            self._recovered(spec_id, breaker, result)

    def _tripped(self, spec_id: int, breaker: Breaker, names: list[str]) -> None:
        """Mark every model of the instance not ready now (never ready: see _recovered)."""
        proof = breaker.proof
        assert proof is not None
        self._counts["outages"] += 1
        log.warning(
            "upstream of %d model(s) marked down after %d consecutive transport failures "
            "(last: %s: %s)",
            len(names),
            breaker.tripped_after,
            proof.target,
            proof.detail,
        )
        self._checks.shed(
            spec_id, lambda strategy, target: outage_result(strategy, target, breaker)
        )
        now = time.monotonic()
        for name in list(names):
            st = self._models.states.get(name)
            if st is None:
                continue
            if not st.ready and st.last is not None and not st.last.status.is_ok:
                continue  # already failing, with its own reason
            result = outage_result(st.config.check.strategy, st.target, breaker)
            self._models.mark_down(st, result, now)

    def _recovered(self, spec_id: int, breaker: Breaker, evidence: CheckResult) -> None:
        """The upstream answered: probe the parked models promptly.

        Nothing is marked ready here: each model needs its own fresh successes.
        """
        parked, breaker.parked = breaker.parked, set()
        log.info(
            "upstream answered again (%s: %s); probing %d parked model(s)",
            evidence.target,
            evidence.detail,
            len(parked),
        )
        if not self._running():
            return
        now = asyncio.get_running_loop().time()
        for name in parked:
            st = self._models.states.get(name)
            if st is not None and not st.probing and st.key[0] == spec_id:
                self._scheduler.schedule(st, now)
