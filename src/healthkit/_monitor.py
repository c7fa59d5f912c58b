"""The monitor: cached, coalesced on-demand checks and thresholded background probing.

One scheduler task keeps a heap of due times, one entry per model. When models
come due it submits one check per model, or one batch check per shared
:class:`BatchStrategy` instance, to a job runner with one global budget of
in-flight checks. Every upstream check runs once per ``(instance, target)`` key
however many callers want it (single-flight), its result is cached for
``cache_ttl``, and it is observed exactly once by the model's threshold state
machine.

The runner is callback-driven (a task per check, a timer per deadline, no
coroutine waiting on either) because ten thousand models at a ten-second period
mean a thousand checks a second, and the event loop's time is the budget.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import heapq
import inspect
import itertools
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from ._config import ModelConfig, ServerConfig
from ._errors import ClosedError
from ._guard import deadline_for, guarded_check
from ._healthkit import HealthKit
from ._monitor_settings import MonitorSettings
from ._resolver import ReloadPlan
from ._result import CheckResult, ErrorInfo, Target
from ._status import Status
from ._strategy import BatchStrategy, Strategy, StrategySpec

__all__ = ["Monitor", "MonitorStats", "Transition"]

log = logging.getLogger("healthkit.monitor")

T = TypeVar("T")

#: Default number of transitions kept per model.
DEFAULT_HISTORY = 100
#: Models due within this many seconds of each other start in the same scheduler tick.
_TICK = 0.002
#: Recent probe lateness samples kept for :meth:`Monitor.stats`.
_LATENESS_SAMPLES = 10_000
#: Seconds ``aclose`` waits for abandoned checks (that ignored cancellation) to end.
_ABANDON_GRACE = 1.0

#: (spec id, target): a spec id names one shared instance (equal specs, one id), and
#: small ints hash in no time, unlike a deep config hashed on every lookup.
_Key = tuple[int, Target]
CheckHook = Callable[[str, float, int, bool], None]


@attrs.frozen(kw_only=True)
class Transition:
    """A model's thresholded status changed from ``old`` to ``new`` because of ``result``."""

    model: str
    old: Status
    new: Status
    result: CheckResult
    at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "old": self.old.value,
            "new": self.new.value,
            "at": self.at.isoformat(),
            "detail": self.result.detail,
        }


@attrs.frozen(kw_only=True)
class MonitorStats:
    """Counters of a monitor since it was created (for metrics and benchmarks)."""

    models: int
    ready: int
    in_flight: int
    #: Upstream calls started: single checks plus batch calls.
    checks: int
    #: Batch calls among ``checks``, and how many targets they answered.
    batches: int
    batched_targets: int
    #: On-demand callers that joined a check already in flight.
    coalesced: int
    #: On-demand callers answered from the cache.
    cache_hits: int
    #: Checks cut by the monitor's deadline.
    timeouts: int
    #: Seconds background probes started after they were due (recent samples).
    lateness_p50: float
    lateness_p99: float
    lateness_max: float

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.define(eq=False)
class _ModelState:
    config: ModelConfig
    status: Status = Status.UNKNOWN
    ready: bool = False
    successes: int = 0
    failures: int = 0
    last: CheckResult | None = None
    #: A list, not a deque: an empty deque is 600 bytes, times ten thousand models.
    history: list[Transition] = attrs.field(factory=list)
    #: Loop time until which ``last`` answers on-demand checks (the model's own cache entry).
    fresh_until: float = -math.inf
    #: Loop time of the next probe (``inf`` while a probe runs or before start).
    due: float = math.inf
    #: Bumped whenever the queued heap entry is superseded.
    generation: int = 0
    probing: bool = False
    #: Probe again as soon as the running probe ends (the config changed meanwhile).
    reprobe: bool = False
    #: Derived from ``config`` by ``Monitor._configure``.
    key: _Key = (0, Target())
    deadline: float = 0.0

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def settings(self) -> MonitorSettings:
        return self.config.monitor

    @property
    def target(self) -> Target:
        return self.config.target


@attrs.define(eq=False)
class _Cached:
    result: CheckResult
    expires: float


@attrs.define(eq=False)
class _Job:
    """One upstream call (a check, or a batch of them) for the runner."""

    strategy: str
    deadline: float
    #: Creates the coroutine to run; called when the budget allows.
    make: Callable[[], Coroutine[Any, Any, Any]]
    #: ``done(value, error, timed_out, elapsed)``, called exactly once.
    done: Callable[[Any, BaseException | None, bool, float], None]
    targets: int = 1
    batch: bool = False
    started: float = 0.0
    finished: bool = False
    task: asyncio.Future[Any] = attrs.field(init=False)
    timer: asyncio.TimerHandle = attrs.field(init=False)


def _timeout_result(name: str, target: Target, deadline: float, elapsed: float) -> CheckResult:
    return CheckResult(
        status=Status.UNHEALTHY,
        strategy=name,
        target=target,
        latency=elapsed,
        detail=f"check timed out after {deadline:g}s (cut by the monitor)",
        error=ErrorInfo(type="TimeoutError", message=f"no answer within {deadline:g}s"),
    )


def _failed(
    name: str, target: Target, detail: str, error: ErrorInfo, elapsed: float
) -> CheckResult:
    return CheckResult(
        status=Status.UNHEALTHY,
        strategy=name,
        target=target,
        latency=elapsed,
        detail=detail,
        error=error,
    )


def _batch_results(
    name: str,
    targets: Sequence[Target],
    answers: Any,
    error: BaseException | None,
    timed_out: bool,
    deadline: float,
) -> list[CheckResult]:
    """One result per target from whatever ``acheck_many`` did (or failed to do)."""
    failure: tuple[str, ErrorInfo] | None = None
    if timed_out:
        failure = (
            f"batch check timed out after {deadline:g}s (cut by the monitor)",
            ErrorInfo(type="TimeoutError", message=f"no answer within {deadline:g}s"),
        )
    elif error is not None:
        failure = (
            f"batch check raised {type(error).__name__}: {error}",
            ErrorInfo.from_exception(error),
        )
    elif not isinstance(answers, Mapping):
        failure = (
            f"acheck_many returned {type(answers).__name__}, not a mapping",
            ErrorInfo(type="TypeError", message="acheck_many() must return a mapping"),
        )
    out: list[CheckResult] = []
    for target in targets:
        if failure is not None:
            out.append(_failed(name, target, failure[0], failure[1], 0.0))
            continue
        result = answers.get(target)
        if isinstance(result, CheckResult):
            out.append(result)
        elif result is None:
            out.append(
                _failed(
                    name,
                    target,
                    f"batch answer has no result for {target}",
                    ErrorInfo(type="KeyError", message=f"no result for {target}"),
                    0.0,
                )
            )
        else:
            out.append(
                _failed(
                    name,
                    target,
                    f"batch answer for {target} is {type(result).__name__}, not a CheckResult",
                    ErrorInfo(type="TypeError", message="acheck_many() values must be results"),
                    0.0,
                )
            )
    return out


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


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
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        if history_size < 1:
            raise ValueError(f"history_size must be >= 1, got {history_size}")
        self._kit = kit
        self._max_in_flight = max_in_flight
        self._history_size = history_size
        self._random = random.Random(seed)
        self._states: dict[str, _ModelState] = {}
        self._spec_ids: dict[StrategySpec, int] = {}
        self._spec_counter = itertools.count(1)
        self._by_spec: dict[int, set[str]] = {}
        for mc in kit.config.models.values():
            self._add_state(mc)
        self._listeners: list[Callable[[Transition], object]] = []
        self._check_hooks: list[CheckHook] = []
        self._cache: dict[_Key, _Cached] = {}
        self._inflight: dict[_Key, asyncio.Future[CheckResult]] = {}
        self._batch_capable: dict[int, bool] = {}
        self._heap: list[tuple[float, int, str, int]] = []
        self._seq = itertools.count()
        # An Event binds to a loop on first use (Python >= 3.10): creating it here is safe.
        self._wake = asyncio.Event()
        self._sleep_until = math.inf
        self._scheduler: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self._abandoned: set[asyncio.Future[Any]] = set()
        self._queue: collections.deque[_Job] = collections.deque()
        self._running: set[_Job] = set()
        self._started = False
        self._closed = False
        self._in_flight = 0
        self._counts: collections.Counter[str] = collections.Counter()
        self._lateness: collections.deque[float] = collections.deque(maxlen=_LATENESS_SAMPLES)

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Create the strategy instances and start background probing; idempotent."""
        if self._closed:
            raise ClosedError("monitor is closed")
        if self._started:
            return
        await self._kit.astart()
        self._started = True
        now = asyncio.get_running_loop().time()
        for st in self._states.values():
            self._schedule(st, now + self._first_delay(st.settings))
        self._scheduler = asyncio.create_task(self._run_scheduler(), name="healthkit-monitor")

    async def aclose(self) -> None:
        """Stop probing, then close every strategy instance (via the kit); idempotent."""
        if self._closed:
            return
        self._closed = True
        tasks = [t for t in (self._scheduler, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._queue.clear()
        for job in list(self._running):
            job.finished = True
            job.timer.cancel()
            self._abandon(job.task)
        self._running.clear()
        for fut in self._inflight.values():
            if not fut.done():
                fut.set_exception(ClosedError("monitor closed while the check ran"))
                fut.exception()  # retrieved: nobody may be waiting for it
        self._inflight.clear()
        if self._abandoned:
            # Checks get a moment to end after cancellation (one that ignores it, more).
            _, still = await asyncio.wait(list(self._abandoned), timeout=_ABANDON_GRACE)
            if still:
                log.warning("%d check(s) ignored cancellation and are still running", len(still))
        await self._kit.aclose()

    async def __aenter__(self) -> Monitor:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def kit(self) -> HealthKit:
        return self._kit

    @property
    def max_in_flight(self) -> int:
        return self._max_in_flight

    # -- queries (from memory) -------------------------------------------------------

    @property
    def models(self) -> list[str]:
        return list(self._states)

    def __contains__(self, model: object) -> bool:
        """``model in monitor``: configured, in O(1) (``models`` copies the list)."""
        return model in self._states

    def _state(self, model: str) -> _ModelState:
        try:
            return self._states[model]
        except KeyError:
            raise KeyError(f"unknown model {model!r}") from None

    def status(self, model: str) -> Status:
        """The thresholded status: ``unknown`` until the first result."""
        return self._state(model).status

    def is_ready(self, model: str) -> bool:
        """False until ``success_threshold`` consecutive successes, and again after
        ``failure_threshold`` consecutive failures (Kubernetes readiness semantics)."""
        return self._state(model).ready

    def is_live(self) -> bool:
        """True while the monitor runs: after :meth:`start`, until :meth:`aclose`."""
        return (
            self._started
            and not self._closed
            and self._scheduler is not None
            and not self._scheduler.done()
        )

    def server_ready(self) -> bool:
        """Every model is ready (a config without models is ready)."""
        return all(st.ready for st in self._states.values())

    def last_result(self, model: str) -> CheckResult | None:
        return self._state(model).last

    def history(self, model: str) -> Sequence[Transition]:
        """The model's most recent transitions, oldest first (bounded)."""
        return tuple(self._state(model).history)

    def stats(self) -> MonitorStats:
        samples = sorted(self._lateness)
        return MonitorStats(
            models=len(self._states),
            ready=sum(1 for st in self._states.values() if st.ready),
            in_flight=self._in_flight,
            checks=self._counts["checks"],
            batches=self._counts["batches"],
            batched_targets=self._counts["batched_targets"],
            coalesced=self._counts["coalesced"],
            cache_hits=self._counts["cache_hits"],
            timeouts=self._counts["timeouts"],
            lateness_p50=_percentile(samples, 0.5),
            lateness_p99=_percentile(samples, 0.99),
            lateness_max=samples[-1] if samples else 0.0,
        )

    # -- listeners -------------------------------------------------------------------

    def add_listener(self, listener: Callable[[Transition], object]) -> None:
        """Call ``listener(transition)`` on every status change; sync or async.

        A listener that raises is logged and kept; it never stops the monitor.
        """
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Transition], object]) -> None:
        self._listeners.remove(listener)

    def _add_check_hook(self, hook: CheckHook) -> None:
        """Internal (metrics): ``hook(strategy, seconds, targets, batch)`` after each call."""
        self._check_hooks.append(hook)

    # -- on demand -------------------------------------------------------------------

    async def acheck(self, model: str, *, version: str | None = None) -> CheckResult:
        """Check ``model`` now, unless a result younger than ``cache_ttl`` exists.

        Concurrent callers for one target share one in-flight check. A version
        other than the configured one is checked as its own target and does not
        count toward the model's thresholds. Raises ``KeyError`` for an unknown model.
        """
        st = self._state(model)
        if self._closed:
            raise ClosedError("monitor is closed")
        await self._kit.astart()
        st = self._state(model)  # a reload may have run while the kit started
        now = asyncio.get_running_loop().time()
        if version is None or version == st.config.version:
            key = st.key
            if st.last is not None and st.fresh_until > now:
                self._counts["cache_hits"] += 1
                return st.last
        else:
            key = (st.key[0], Target(model=model, version=version))
            cached = self._cache.get(key)
            if cached is not None and cached.expires > now:
                self._counts["cache_hits"] += 1
                return cached.result
        fut = self._inflight.get(key)
        if fut is not None:
            self._counts["coalesced"] += 1
        else:
            fut = self._submit_single(key, self._kit.resolver.get(model), st)
        # Shielded: a caller that goes away (a closed HTTP request) must not cancel
        # the check the other callers are waiting for.
        return await asyncio.shield(fut)

    # -- running checks ----------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _submit(self, job: _Job) -> None:
        if self._in_flight < self._max_in_flight:
            self._launch(job)
        else:
            self._queue.append(job)

    def _launch(self, job: _Job) -> None:
        loop = asyncio.get_running_loop()
        self._in_flight += 1
        self._counts["checks"] += 1
        job.started = time.perf_counter()
        # The deadline starts when the check does, not while it queued for the budget.
        job.timer = loop.call_later(job.deadline, self._expire, job)
        self._running.add(job)
        job.task = loop.create_task(self._run(job))

    async def _run(self, job: _Job) -> None:
        """The check's task: finishes its job inline, in the step the check ends."""
        try:
            value = await job.make()
        except asyncio.CancelledError:
            if not job.finished:
                job.timer.cancel()
                self._end(job, None, asyncio.CancelledError("check was cancelled"))
            raise
        except Exception as exc:  # a strategy not async, or failing outside guarded_check
            if not job.finished:
                job.timer.cancel()
                self._end(job, None, exc)
            return
        if not job.finished:  # else cut by its deadline, or the monitor closed: answered
            job.timer.cancel()
            self._end(job, value, None)

    def _expire(self, job: _Job) -> None:
        if job.finished:
            return
        self._counts["timeouts"] += 1
        self._abandon(job.task)
        self._end(job, None, None, timed_out=True)

    def _abandon(self, task: asyncio.Future[Any]) -> None:
        # Not awaited: a check that swallows cancellation must not hold the monitor.
        task.cancel()
        if not task.done():
            self._abandoned.add(task)
            task.add_done_callback(self._abandoned_done)

    def _abandoned_done(self, task: asyncio.Future[Any]) -> None:
        self._abandoned.discard(task)

    def _end(
        self, job: _Job, value: Any, error: BaseException | None, *, timed_out: bool = False
    ) -> None:
        job.finished = True
        self._running.discard(job)
        self._in_flight -= 1
        elapsed = time.perf_counter() - job.started
        self._after_call(job.strategy, elapsed, job.targets, job.batch)
        try:
            job.done(value, error, timed_out, elapsed)
        except Exception:
            log.exception("finishing a %r check failed", job.strategy)
        while self._queue and self._in_flight < self._max_in_flight and not self._closed:
            self._launch(self._queue.popleft())

    def _submit_single(
        self, key: _Key, instance: Strategy, st: _ModelState
    ) -> asyncio.Future[CheckResult]:
        """Start (or queue) one check of ``key`` for model ``st``; returns its in-flight future."""
        target = key[1]
        name, deadline, settings = st.config.check.strategy, st.deadline, st.settings
        fut: asyncio.Future[CheckResult] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut

        def done(value: Any, error: BaseException | None, timed_out: bool, elapsed: float) -> None:
            if timed_out:
                result = _timeout_result(name, target, deadline, elapsed)
            elif isinstance(value, CheckResult):
                result = value  # guarded_check turned errors and garbage into results
            else:
                detail = "check was cancelled" if error is None else f"check failed: {error!r}"
                result = _failed(
                    name,
                    target,
                    detail,
                    ErrorInfo(type=type(error).__name__, message=str(error) or detail),
                    elapsed,
                )
            self._settle(key, fut, result, settings)

        self._submit(
            _Job(
                strategy=name,
                deadline=deadline,
                make=lambda: guarded_check(instance, name, target),
                done=done,
            )
        )
        return fut

    def _submit_batch(
        self, instance: BatchStrategy, members: list[_ModelState]
    ) -> list[asyncio.Future[CheckResult]]:
        """One ``acheck_many`` for ``members``; returns each member's in-flight future."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[CheckResult]] = []
        own: dict[_Key, tuple[MonitorSettings, asyncio.Future[CheckResult]]] = {}
        deadline = 0.0
        for st in members:
            existing = self._inflight.get(st.key)
            if existing is None:
                existing = loop.create_future()
                self._inflight[st.key] = existing
                own[st.key] = (st.settings, existing)
                deadline = max(deadline, st.deadline)
            futures.append(existing)
        if not own:
            return futures
        targets = [key[1] for key in own]
        name = members[0].config.check.strategy

        def done(value: Any, error: BaseException | None, timed_out: bool, elapsed: float) -> None:
            results = _batch_results(name, targets, value, error, timed_out, deadline)
            for (key, (settings, fut)), result in zip(own.items(), results, strict=True):
                if not result.latency:
                    result = attrs.evolve(result, latency=elapsed)
                self._settle(key, fut, result, settings)

        self._counts["batches"] += 1
        self._counts["batched_targets"] += len(targets)
        self._submit(
            _Job(
                strategy=name,
                deadline=deadline,
                make=lambda: instance.acheck_many(targets),
                done=done,
                targets=len(targets),
                batch=True,
            )
        )
        return futures

    def _after_call(self, strategy: str, seconds: float, targets: int, batch: bool) -> None:
        for hook in self._check_hooks:
            try:
                hook(strategy, seconds, targets, batch)
            except Exception:
                log.exception("check hook failed")

    def _settle(
        self,
        key: _Key,
        fut: asyncio.Future[CheckResult],
        result: CheckResult,
        settings: MonitorSettings,
    ) -> None:
        """Cache a finished check, let its model observe it (once), then wake the callers."""
        target = key[1]
        if self._inflight.get(key) is fut:
            del self._inflight[key]
        now = asyncio.get_running_loop().time()
        st = self._states.get(target.model) if target.model is not None else None
        if st is not None and (st.key is key or st.key == key):
            # The model's own target: its last result is its cache entry.
            self._observe(st, result)
            st.fresh_until = now + settings.cache_ttl
        elif settings.cache_ttl > 0:
            self._cache[key] = _Cached(result=result, expires=now + settings.cache_ttl)
            if len(self._cache) > 1024:
                self._prune_cache(now)
        if not fut.done():
            fut.set_result(result)

    def _prune_cache(self, now: float) -> None:
        live = set(self._by_spec)
        for key in [k for k, c in self._cache.items() if c.expires <= now or k[0] not in live]:
            del self._cache[key]

    # -- thresholds ------------------------------------------------------------------

    def _observe(self, st: _ModelState, result: CheckResult) -> None:
        settings = st.settings
        st.last = result
        ok = result.status.is_ok
        if ok:
            st.successes += 1
            st.failures = 0
        else:
            st.failures += 1
            st.successes = 0
        old = st.status
        new = old
        if st.ready:
            if ok:
                new = result.status  # healthy <-> degraded: both still serve
            elif st.failures >= settings.failure_threshold:
                st.ready = False
                new = result.status
        elif ok:
            if st.successes >= settings.success_threshold:
                st.ready = True
                new = result.status
        else:
            # Already not ready: the failure changes nothing but the reason we show.
            new = result.status
        st.status = new
        if new != old:
            self._transition(st, old, new, result)

    def _transition(self, st: _ModelState, old: Status, new: Status, result: CheckResult) -> None:
        tr = Transition(
            model=st.name, old=old, new=new, result=result, at=dt.datetime.now(dt.timezone.utc)
        )
        st.history.append(tr)
        if len(st.history) > self._history_size:
            del st.history[0]  # at most history_size entries: cheap enough
        level = logging.INFO if new.is_ok else logging.WARNING
        log.log(level, "model %r: %s -> %s (%s)", st.name, old.value, new.value, result.detail)
        for listener in list(self._listeners):
            try:
                out = listener(tr)
                if inspect.isawaitable(out):
                    self._spawn(self._await_listener(out))
            except Exception:
                log.exception("transition listener %r failed", listener)

    async def _await_listener(self, awaitable: Awaitable[object]) -> None:
        try:
            await awaitable
        except Exception:
            log.exception("async transition listener failed")

    # -- scheduling ------------------------------------------------------------------

    def _first_delay(self, settings: MonitorSettings) -> float:
        # Spread the first probes so a restart does not hit the predictor all at once.
        return settings.initial_delay + self._random.uniform(0.0, settings.jitter * settings.period)

    def _interval(self, st: _ModelState) -> float:
        s = st.settings
        base = s.period
        failing = not st.ready or (st.last is not None and not st.last.status.is_ok)
        if s.unhealthy_period is not None and failing:
            base = s.unhealthy_period
        return base * (1.0 + s.jitter * (self._random.random() - 0.5))

    def _schedule(self, st: _ModelState, due: float) -> None:
        st.generation += 1
        st.due = due
        heapq.heappush(self._heap, (due, next(self._seq), st.name, st.generation))
        if due < self._sleep_until:
            self._wake.set()

    def _probe_done(self, st: _ModelState, started: float) -> None:
        st.probing = False
        if self._closed or self._states.get(st.name) is not st or not self._started:
            return
        now = asyncio.get_running_loop().time()
        if st.reprobe:
            st.reprobe = False
            self._schedule(st, now)
        else:
            self._schedule(st, max(started + self._interval(st), now))

    async def _run_scheduler(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            now = loop.time()
            if not self._heap or self._heap[0][0] > now + _TICK:
                self._sleep_until = self._heap[0][0] if self._heap else math.inf
                delay = None if not self._heap else self._heap[0][0] - now
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                self._sleep_until = -math.inf
                continue
            try:
                self._launch_due(loop.time())
            except Exception:
                # The monitor never dies: one bad tick is logged and the next one runs.
                log.exception("monitor scheduler tick failed")
            # Let the probes just started (and everything else) run before the next tick.
            await asyncio.sleep(0)

    def _launch_due(self, now: float) -> None:
        due: list[_ModelState] = []
        while self._heap and self._heap[0][0] <= now + _TICK:
            when, _, name, generation = heapq.heappop(self._heap)
            st = self._states.get(name)
            if st is None or st.generation != generation or st.probing:
                continue
            self._lateness.append(max(0.0, now - when))
            st.probing = True
            st.due = math.inf
            due.append(st)
        groups: dict[int, list[_ModelState]] = {}
        for st in due:
            instance = self._instance(st)
            if instance is None:
                self._probe_done(st, now)
            elif self._is_batch(st.key[0], instance):
                groups.setdefault(st.key[0], []).append(st)
            else:
                self._probe(st, instance, now)
        for spec_id, members in groups.items():
            # Members of the group due within half their period come along now:
            # after one round the whole group is probed with one call per period.
            for name in self._by_spec.get(spec_id, ()):
                other = self._states[name]
                if not other.probing and other.due - now <= other.settings.period / 2:
                    other.probing = True
                    other.due = math.inf
                    other.generation += 1
                    members.append(other)
            instance = self._instance(members[0])
            if instance is None:
                for st in members:
                    self._probe_done(st, now)
            elif len(members) == 1:
                self._probe(members[0], instance, now)
            else:
                assert isinstance(instance, BatchStrategy)
                futures = self._submit_batch(instance, members)
                for st, fut in zip(members, futures, strict=True):
                    self._when_done(fut, st, now)

    def _instance(self, st: _ModelState) -> Strategy | None:
        try:
            return self._kit.resolver.get(st.name)
        except KeyError:
            return None

    def _is_batch(self, spec_id: int, instance: Strategy) -> bool:
        known = self._batch_capable.get(spec_id)
        if known is None:
            known = isinstance(instance, BatchStrategy)
            self._batch_capable[spec_id] = known
        return known

    def _probe(self, st: _ModelState, instance: Strategy, started: float) -> None:
        """A background probe: join the key's in-flight check, or start one."""
        fut = self._inflight.get(st.key)
        if fut is None:
            fut = self._submit_single(st.key, instance, st)
        self._when_done(fut, st, started)

    def _when_done(self, fut: asyncio.Future[CheckResult], st: _ModelState, started: float) -> None:
        fut.add_done_callback(lambda _: self._probe_done(st, started))

    # -- config ------------------------------------------------------------------------

    def _add_state(self, mc: ModelConfig) -> _ModelState:
        st = _ModelState(config=mc)
        self._states[mc.name] = st
        self._configure(st, mc)
        return st

    def _configure(self, st: _ModelState, mc: ModelConfig) -> None:
        """Point ``st`` at ``mc``: its key, deadline and place in the spec index."""
        st.config = mc
        spec_id = self._spec_ids.get(mc.check)
        if spec_id is None:
            spec_id = self._spec_ids[mc.check] = next(self._spec_counter)
        st.key = (spec_id, mc.target)
        st.deadline = deadline_for(mc.check, mc.monitor)
        self._by_spec.setdefault(spec_id, set()).add(mc.name)

    def _index_remove(self, st: _ModelState) -> None:
        spec_id = st.key[0]
        names = self._by_spec.get(spec_id)
        if names is not None:
            names.discard(st.name)
            if not names:
                # Nobody uses the spec any more: a later equal spec is a new instance.
                del self._by_spec[spec_id]
                self._batch_capable.pop(spec_id, None)
                self._spec_ids.pop(st.config.check, None)

    async def areload(self, config: ServerConfig) -> ReloadPlan:
        """Switch to ``config``: only models whose check changed restart probing.

        A changed model keeps its status until its first new result, which is
        probed at once; unchanged models keep their state and schedule (a new
        period applies from the next probe, or sooner if the new one is shorter).
        """
        if self._closed:
            raise ClosedError("monitor is closed")
        plan = await self._kit.areload(config)
        now = asyncio.get_running_loop().time()
        for name in plan.removed:
            st = self._states.pop(name, None)
            if st is not None:
                st.generation += 1
                self._index_remove(st)
        for name in plan.added:
            st = self._add_state(config.models[name])
            if self._started:
                self._schedule(st, now + self._first_delay(st.settings))
        for name, mc in config.models.items():
            if name in plan.added:
                continue
            st = self._states[name]
            if mc == st.config:
                continue
            restart = (
                name in plan.changed
                or mc.check != st.config.check
                or mc.version != st.config.version
            )
            self._index_remove(st)
            self._configure(st, mc)
            if restart:
                st.successes = st.failures = 0
                st.fresh_until = -math.inf
                if st.probing:
                    st.reprobe = True
                elif self._started:
                    self._schedule(st, now)
            elif not st.probing and self._started:
                soonest = now + self._interval(st)
                if soonest < st.due:
                    self._schedule(st, soonest)
        self._prune_cache(now)
        return plan

    def __repr__(self) -> str:
        ready = sum(1 for st in self._states.values() if st.ready)
        state = "closed" if self._closed else "running" if self._started else "idle"
        return f"<Monitor {state} models={len(self._states)} ready={ready}>"
