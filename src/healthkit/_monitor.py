"""The monitor: cached, coalesced on-demand checks and thresholded background probing.

A facade over :mod:`healthkit._monitoring`: the job runner (budget, deadlines),
single-flight checks with their cache, per-model state, the pure threshold
state machine, the per-instance outage rule and its verdicts, the scheduler and
reloads. This module wires them together and answers the questions
(readiness, status, stats) from their state. Every result passes the kit's
redactor before it is stored, logged or handed to a listener.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import time
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from ._config import ServerConfig
from ._errors import ClosedError
from ._guard import abandon, deadline_for
from ._healthkit import HealthKit
from ._monitoring._checks import DEFAULT_MAX_ON_DEMAND_TARGETS, Checks
from ._monitoring._models import Models
from ._monitoring._outage import OutageDetector
from ._monitoring._records import (
    CheckEvent,
    CheckListener,
    MonitorStats,
    Transition,
    TransitionListener,
    percentile,
)
from ._monitoring._reload import apply_reload
from ._monitoring._runner import Runner
from ._monitoring._scheduler import Scheduler
from ._monitoring._verdicts import Verdicts
from ._resolver import ReloadPlan
from ._result import CheckResult
from ._status import Status

__all__ = ["CheckEvent", "Monitor", "MonitorStats", "Transition", "deadline_for"]

log = logging.getLogger("healthkit.monitor")

T = TypeVar("T")

#: Default number of transitions kept per model.
DEFAULT_HISTORY = 100
#: Seconds ``aclose`` waits for abandoned checks (that ignored cancellation) to end.
_ABANDON_GRACE = 1.0


class _Life(enum.Enum):
    NEW = "idle"
    RUNNING = "running"
    CLOSED = "closed"


class Monitor:
    """Health of every model of a :class:`HealthKit`, kept current in the background.

    * :meth:`acheck` answers on demand: a result is cached per ``(instance, target)``
      for ``cache_ttl`` and concurrent callers share one in-flight check.
    * :meth:`start` begins background probing with each model's ``period``,
      ``initial_delay``, ``jitter``, ``timeout``, thresholds and ``unhealthy_period``.
    * :meth:`status`, :meth:`is_ready` and friends answer from memory, never upstream.

    Every completed check, background or on demand, counts once toward the
    thresholds of the model it belongs to. The monitor owns ``kit``: :meth:`aclose`
    closes it. All methods must be called from the event loop the monitor runs in.
    """

    def __init__(
        self,
        kit: HealthKit,
        *,
        max_in_flight: int = 64,
        history_size: int = DEFAULT_HISTORY,
        seed: int | None = None,
        max_on_demand_targets: int = DEFAULT_MAX_ON_DEMAND_TARGETS,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        if max_on_demand_targets < 0:
            raise ValueError(f"max_on_demand_targets must be >= 0, got {max_on_demand_targets}")
        if history_size < 1:
            raise ValueError(f"history_size must be >= 1, got {history_size}")
        self._kit = kit
        self._life = _Life.NEW
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Listener tasks of async transition listeners (cancelled by :meth:`aclose`).
        self._tasks: set[asyncio.Future[Any]] = set()
        self._counts: collections.Counter[str] = collections.Counter()
        self._models = Models(
            kit.config.models.values(), history_size=history_size, spawn=self._spawn
        )
        self._detector = OutageDetector()
        self._runner = Runner(max_in_flight, self._counts)
        self._checks = Checks(
            runner=self._runner,
            models=self._models,
            detector=self._detector,
            counts=self._counts,
            max_targets=max_on_demand_targets,
            on_outcome=lambda *outcome: self._verdicts.on_outcome(*outcome),  # bound below
            instance=kit.resolver.get,
            closed=lambda: self._life is _Life.CLOSED,
            redact=kit.redact,
        )
        self._scheduler = Scheduler(
            models=self._models,
            checks=self._checks,
            detector=self._detector,
            instance=kit.resolver.get,
            running=lambda: self._life is _Life.RUNNING,
            seed=seed,
        )
        self._verdicts = Verdicts(
            models=self._models,
            checks=self._checks,
            scheduler=self._scheduler,
            detector=self._detector,
            counts=self._counts,
            running=lambda: self._life is _Life.RUNNING,
        )
        # Straight to the verdicts from now on: one call less per check.
        self._checks.on_outcome = self._verdicts.on_outcome
        self._checks.probe_ended = self._scheduler.probe_done

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Create the strategy instances and start background probing; idempotent."""
        if self._life is _Life.CLOSED:
            raise ClosedError("monitor is closed")
        if self._life is _Life.RUNNING:
            return
        await self._kit.astart()
        self._life = _Life.RUNNING
        self._loop = asyncio.get_running_loop()
        now = self._loop.time()
        self._runner.last_progress = now
        self._scheduler.schedule_first(self._models.states.values(), self._loop)
        self._scheduler.start()

    async def aclose(self) -> None:
        """Stop probing, then close every strategy instance (via the kit); idempotent."""
        if self._life is _Life.CLOSED:
            return
        self._life = _Life.CLOSED
        self._runner.stop_launching()
        tasks = [t for t in (self._scheduler.task, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: an async transition listener (user code) that swallows its
            # cancellation is left behind, never awaited forever.
            _, stuck = await asyncio.wait(tasks, timeout=_ABANDON_GRACE)
            for task in stuck:
                abandon(task)
            if stuck:
                log.warning("%d listener task(s) ignored cancellation at close", len(stuck))
        self._runner.close()
        self._checks.fail_all(ClosedError("monitor closed while the check ran"))
        # Checks get a moment to end after cancellation (one that ignores it, more).
        still = await self._runner.wait_abandoned(_ABANDON_GRACE)
        if still:
            log.warning("%d check(s) ignored cancellation and are still running", still)
        await self._kit.aclose()

    async def __aenter__(self) -> Monitor:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        return self._life is _Life.CLOSED

    @property
    def kit(self) -> HealthKit:
        return self._kit

    @property
    def max_in_flight(self) -> int:
        return self._runner.max_in_flight

    # -- queries (from memory) -------------------------------------------------------

    @property
    def models(self) -> list[str]:
        return list(self._models.states)

    def __contains__(self, model: object) -> bool:
        """``model in monitor``: configured, in O(1) (``models`` copies the list)."""
        return model in self._models.states

    def status(self, model: str) -> Status:
        """The thresholded status: ``unknown`` until the first result, and again once
        the last result is older than ``max_stale``."""
        st = self._models.get(model)
        return Status.UNKNOWN if st.is_stale(time.monotonic()) else st.thresholds.status

    def is_ready(self, model: str) -> bool:
        """False until ``success_threshold`` consecutive successes, and again after
        ``failure_threshold`` consecutive failures (Kubernetes readiness semantics);
        also false while the last result is older than ``max_stale``."""
        return self._models.get(model).fresh_ready(time.monotonic())

    def is_stale(self, model: str) -> bool:
        """The model has a result, but it is older than its ``max_stale``."""
        return self._models.get(model).is_stale(time.monotonic())

    def has_version(self, model: str, version: str | None) -> bool:
        """Whether ``version`` of ``model`` may have checks of its own.

        ``None`` and the configured version always; another version only when an
        upstream answer reported it (a batch answer naming it). Clients must not
        be able to make the monitor check versions nobody configured.
        """
        st = self._models.get(model)
        if version is None or version == st.config.version:
            return True
        return self._checks.has_reported(model, version)

    def upstream_down(self, model: str) -> bool:
        """Whether the instance that checks ``model`` is marked down (outlier detection)."""
        return self._detector.is_down(self._models.get(model).key[0])

    def is_live(self) -> bool:
        """True while the monitor runs: after :meth:`start`, until :meth:`aclose`."""
        task = self._scheduler.task
        return self._life is _Life.RUNNING and task is not None and not task.done()

    def server_ready(self) -> bool:
        """Every model is ready (a config without models is ready)."""
        now = time.monotonic()
        return all(st.fresh_ready(now) for st in self._models.states.values())

    def last_result(self, model: str) -> CheckResult | None:
        return self._models.get(model).last

    def history(self, model: str) -> Sequence[Transition]:
        """The model's most recent transitions, oldest first (bounded)."""
        return tuple(self._models.get(model).history)

    def stats(self) -> MonitorStats:
        samples = sorted(self._scheduler.lateness)
        now = time.monotonic()
        counts = self._counts
        return MonitorStats(
            models=len(self._models.states),
            ready=self._models.count_fresh_ready(now),
            in_flight=self._runner.running,
            checks=counts["checks"],
            batches=counts["batches"],
            batched_targets=counts["batched_targets"],
            coalesced=counts["coalesced"],
            cache_hits=counts["cache_hits"],
            timeouts=counts["timeouts"],
            outages=counts["outages"],
            refused_targets=counts["refused_targets"],
            lateness_p50=percentile(samples, 0.5),
            lateness_p99=percentile(samples, 0.99),
            lateness_max=samples[-1] if samples else 0.0,
        )

    # -- listeners -------------------------------------------------------------------

    def add_listener(self, listener: TransitionListener) -> None:
        """Call ``listener(transition)`` on every status change; sync or async.

        A listener that raises is logged and kept; it never stops the monitor.
        """
        self._models.listeners.append(listener)

    def remove_listener(self, listener: TransitionListener) -> None:
        self._models.listeners.remove(listener)

    def add_check_listener(self, listener: CheckListener) -> None:
        """Call ``listener(event)`` with a :class:`CheckEvent` after every upstream call.

        Called synchronously in the event loop, so it must be cheap; one that
        raises is logged and kept.
        """
        self._runner.listeners.append(listener)

    def remove_check_listener(self, listener: CheckListener) -> None:
        self._runner.listeners.remove(listener)

    @property
    def last_progress(self) -> float:
        """Loop time when the last upstream call finished, or when :meth:`start` ran.

        ``-inf`` before :meth:`start`. For a liveness watchdog: a monitor whose
        probes are due but that makes no progress is stuck.
        """
        return self._runner.last_progress

    def overdue(self) -> int:
        """How many models' probes are due more than one period late and not yet running.

        Safe to call from a watchdog thread while the loop is stuck (it reads the
        loop's clock, not the running loop); from the loop it is exact.
        """
        loop = self._loop
        if self._life is not _Life.RUNNING or loop is None:
            return 0
        now = loop.time()
        late = 0
        try:
            states = list(self._models.states.values())
        except RuntimeError:  # changed size under a watchdog thread: count next time
            return 0
        for st in states:
            # A probe queued behind the budget is still late; a running one is not.
            # ``due`` is when the next probe is due, or when the queued one was.
            if st.probing and not self._runner.is_queued(st.key):
                continue
            if now - st.due > st.settings.period:
                late += 1
        return late

    # -- on demand -------------------------------------------------------------------

    async def acheck(self, model: str, *, version: str | None = None) -> CheckResult:
        """Check ``model`` now, unless a result younger than ``cache_ttl`` exists.

        Concurrent callers for one target share one in-flight check. A version
        other than the configured one is checked as its own target and does not
        count toward the model's thresholds. The wait is bounded by the check's
        deadline: a check still queued for a budget slot (or running) by then
        answers with the known result, or ``unknown`` saying why. An instance
        whose upstream is marked down is not checked again while its half-open
        probe runs: the known result answers. Raises ``KeyError`` for an unknown model.
        """
        st = self._models.get(model)
        if self._life is _Life.CLOSED:
            raise ClosedError("monitor is closed")
        await self._kit.astart()
        st = self._models.get(model)  # a reload may have run while the kit started
        now = asyncio.get_running_loop().time()
        own = version is None or version == st.config.version
        if own:
            key = st.key
            if st.last is not None and st.fresh_until > now:
                self._counts["cache_hits"] += 1
                return st.last
        else:
            key = (st.key[0], st.config.target_for(version))
            cached = self._checks.cache.get(key)
            if cached is not None and cached.expires > now:
                self._counts["cache_hits"] += 1
                return cached.result
        fut = self._checks.shared.get(key)
        if fut is not None:
            self._counts["coalesced"] += 1
        else:
            if not own and not self._checks.admit_target(key, now):
                return self._checks.refused(st, key[1])
            if not self._detector.may_start(key[0]):
                return self._checks.known(st, key, "its upstream is marked down")
            instance = self._kit.resolver.get(model)
            answer = self._checks.try_inline(key, instance, st)
            if answer is not None:
                return answer
            fut = self._checks.submit_single(key, instance, st)
        return await self._checks.wait(fut, st, key)

    async def aready(self, model: str, *, version: str | None = None) -> bool:
        """Readiness for a readiness endpoint: from memory, revalidated in the background.

        Once the target has a result, this never waits for the upstream: it answers
        the known state and, when that is older than ``cache_ttl``, starts one
        shared background check (stale-while-revalidate). Only a target without a
        result (or one older than ``max_stale``, for versions) waits for one shared
        on-demand check, bounded by its deadline. A model whose last result is
        older than ``max_stale`` is not ready. Raises ``KeyError`` for an unknown
        model; check :meth:`has_version` before asking about a version.
        """
        st = self._models.get(model)
        if self._life is _Life.CLOSED:
            raise ClosedError("monitor is closed")
        loop = asyncio.get_running_loop()
        if version is None or version == st.config.version:
            if st.last is None:
                await self.acheck(model)
                return self.is_ready(model)
            if st.fresh_until <= loop.time():
                self._checks.refresh(st, st.key)
            return self.is_ready(model)
        key = (st.key[0], st.config.target_for(version))
        cached = self._checks.cache.get(key)
        now = loop.time()
        if cached is not None and cached.stale > now:
            if cached.expires <= now:
                self._checks.refresh(st, key)
            return cached.result.status.is_ok
        return (await self.acheck(model, version=version)).status.is_ok

    async def aserver_ready(self) -> bool:
        """Every model ready, answered like :meth:`aready` for each model.

        Models without a result yet get one shared on-demand check each (bounded
        by their deadlines); every other model answers from memory and is
        revalidated in the background when its result is older than ``cache_ttl``.
        """
        if self._life is _Life.CLOSED:
            raise ClosedError("monitor is closed")
        await self._kit.astart()
        states = self._models.states
        missing = [st.name for st in states.values() if st.last is None]
        if missing:
            await asyncio.gather(*(self.acheck(name) for name in missing))
        now = asyncio.get_running_loop().time()
        for st in list(states.values()):
            if st.last is not None and st.fresh_until <= now:
                self._checks.refresh(st, st.key)
        return self.server_ready()

    def _spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- config ------------------------------------------------------------------------

    async def areload(self, config: ServerConfig) -> ReloadPlan:
        """Switch to ``config``: only models whose check changed restart probing.

        A changed model keeps its status until its first new result, which is
        probed at once; unchanged models keep their state and schedule (a new
        period applies from the next probe, or sooner if the new one is shorter).
        """
        if self._life is _Life.CLOSED:
            raise ClosedError("monitor is closed")
        plan = await self._kit.areload(config)
        apply_reload(
            plan,
            config,
            models=self._models,
            scheduler=self._scheduler,
            detector=self._detector,
            checks=self._checks,
            now=asyncio.get_running_loop().time(),
            running=self._life is _Life.RUNNING,
        )
        return plan

    def __repr__(self) -> str:
        ready = sum(1 for st in self._models.states.values() if st.ready)
        return f"<Monitor {self._life.value} models={len(self._models.states)} ready={ready}>"
