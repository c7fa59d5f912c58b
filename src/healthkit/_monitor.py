"""The monitor: cached, coalesced on-demand checks and thresholded background probing.

One scheduler task keeps a heap of due times, one entry per model. When models
come due it starts one probe task per model, or one batch task per shared
:class:`BatchStrategy` instance, all drawing on one global budget of in-flight
checks. Every upstream check runs once per ``(instance, target)`` key however
many callers want it (single-flight), its result is cached for ``cache_ttl``,
and it is observed exactly once by the model's threshold state machine.
"""

from __future__ import annotations

import asyncio
import collections
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
from ._guard import guarded_check
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

_Key = tuple[StrategySpec, Target]
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
    history: collections.deque[Transition] = attrs.field(factory=collections.deque)
    #: Loop time of the next probe (``inf`` while a probe runs or before start).
    due: float = math.inf
    #: Bumped whenever the queued heap entry is superseded.
    generation: int = 0
    probing: bool = False
    #: Probe again as soon as the running probe ends (the config changed meanwhile).
    reprobe: bool = False

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


class _Timeout(Exception):
    pass


def deadline_for(spec: StrategySpec, settings: MonitorSettings) -> float:
    """The hard cap of one check: ``timeout`` per attempt plus backoff, plus a little grace.

    The grace (10 % of ``timeout``, at most 0.25 s) lets a strategy that honours
    its own timeout report it, with its better message, before the monitor cuts it.
    """
    attempts = int(getattr(spec.config, "retries", 0) or 0) + 1
    gap = float(getattr(spec.config, "backoff_max", 0.0) or 0.0) + float(getattr(spec.config, "backoff", 0.0) or 0.0)
    backoff = gap * (attempts - 1)
    return settings.timeout * attempts + backoff + min(0.1 * settings.timeout, 0.25)


def _timeout_result(name: str, target: Target, deadline: float, elapsed: float) -> CheckResult:
    return CheckResult(
        status=Status.UNHEALTHY,
        strategy=name,
        target=target,
        latency=elapsed,
        detail=f"check timed out after {deadline:g}s (cut by the monitor)",
        error=ErrorInfo(type="TimeoutError", message=f"no answer within {deadline:g}s"),
    )


def _failed(name: str, target: Target, detail: str, error: ErrorInfo, elapsed: float) -> CheckResult:
    return CheckResult(
        status=Status.UNHEALTHY,
        strategy=name,
        target=target,
        latency=elapsed,
        detail=detail,
        error=error,
    )


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
        self._by_spec: dict[StrategySpec, set[str]] = {}
        for mc in kit.config.models.values():
            self._add_state(mc)
        self._listeners: list[Callable[[Transition], object]] = []
        self._check_hooks: list[CheckHook] = []
        self._cache: dict[_Key, _Cached] = {}
        self._inflight: dict[_Key, asyncio.Future[CheckResult]] = {}
        self._batch_capable: dict[StrategySpec, bool] = {}
        self._heap: list[tuple[float, int, str, int]] = []
        self._seq = itertools.count()
        # Primitives bind to a loop on first use (Python >= 3.10), so creating them here is safe.
        self._budget = asyncio.Semaphore(max_in_flight)
        self._wake = asyncio.Event()
        self._sleep_until = math.inf
        self._scheduler: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self._abandoned: set[asyncio.Future[Any]] = set()
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
        for fut in list(self._inflight.values()):
            fut.cancel()
        self._inflight.clear()
        if self._abandoned:
            # Checks that ignored cancellation once get one more chance to end cleanly.
            pending = list(self._abandoned)
            for task in pending:
                task.cancel()
            _, still = await asyncio.wait(pending, timeout=_ABANDON_GRACE)
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
        """Internal (metrics): ``hook(strategy, seconds, targets, batch)`` after every upstream call."""
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
        target = st.target
        if version is not None and version != st.config.version:
            target = Target(model=model, version=version)
        spec = st.config.check
        key = (spec, target)
        cached = self._cache.get(key)
        if cached is not None and cached.expires > asyncio.get_running_loop().time():
            self._counts["cache_hits"] += 1
            return cached.result
        fut = self._inflight.get(key)
        if fut is not None:
            self._counts["coalesced"] += 1
        else:
            instance = self._kit.resolver.get(model)
            fut = self._spawn(self._run_single(key, instance, st.settings))
            self._inflight[key] = fut
        # Shielded: a caller that goes away (a closed HTTP request) must not cancel
        # the check the other callers are waiting for.
        return await asyncio.shield(fut)

    # -- running checks ----------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _with_deadline(self, awaitable: Awaitable[T], deadline: float) -> T:
        """Await ``awaitable`` for at most ``deadline`` seconds, even if it ignores cancellation."""
        task = asyncio.ensure_future(awaitable)
        try:
            done, _ = await asyncio.wait((task,), timeout=deadline)
        except asyncio.CancelledError:
            self._abandon(task)
            raise
        if not done:
            self._abandon(task)
            raise _Timeout()
        return task.result()

    def _abandon(self, task: asyncio.Future[Any]) -> None:
        # Not awaited: a check that swallows cancellation must not hold the monitor.
        task.cancel()
        if not task.done():
            self._abandoned.add(task)
            task.add_done_callback(self._abandoned_done)

    def _abandoned_done(self, task: asyncio.Future[Any]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("an abandoned check ended with %r", task.exception())

    async def _run_single(
        self, key: _Key, instance: Strategy, settings: MonitorSettings
    ) -> CheckResult:
        spec, target = key
        deadline = deadline_for(spec, settings)
        result: CheckResult | None = None
        try:
            async with self._budget:
                self._in_flight += 1
                self._counts["checks"] += 1
                start = time.perf_counter()
                try:
                    result = await self._with_deadline(
                        guarded_check(instance, spec.strategy, target), deadline
                    )
                except _Timeout:
                    self._counts["timeouts"] += 1
                    result = _timeout_result(
                        spec.strategy, target, deadline, time.perf_counter() - start
                    )
                finally:
                    self._in_flight -= 1
                self._after_call(spec.strategy, time.perf_counter() - start, 1, False)
            return result
        finally:
            if result is not None:
                self._complete(key, result, settings)
            elif self._inflight.get(key) is asyncio.current_task():
                del self._inflight[key]

    async def _run_batch(
        self, spec: StrategySpec, instance: BatchStrategy, members: list[_ModelState]
    ) -> None:
        """Probe ``members`` (all sharing ``instance``) with one ``acheck_many`` call."""
        loop = asyncio.get_running_loop()
        start_loop = loop.time()
        own: dict[_Key, tuple[_ModelState, asyncio.Future[CheckResult]]] = {}
        joined: list[asyncio.Future[CheckResult]] = []
        for st in members:
            key = (spec, st.target)
            existing = self._inflight.get(key)
            if existing is not None:
                joined.append(existing)
            else:
                fut: asyncio.Future[CheckResult] = loop.create_future()
                self._inflight[key] = fut
                own[key] = (st, fut)
        try:
            if own:
                results = await self._call_batch(spec, instance, own)
                for key, (st, fut) in own.items():
                    result = results[key]
                    if not fut.done():
                        fut.set_result(result)
                    self._complete(key, result, st.settings)
            if joined:
                await asyncio.gather(*(asyncio.shield(f) for f in joined), return_exceptions=True)
        finally:
            for key, (_, fut) in own.items():
                if not fut.done():
                    fut.cancel()
                if self._inflight.get(key) is fut:
                    del self._inflight[key]
            for st in members:
                self._probe_done(st, start_loop)

    async def _call_batch(
        self,
        spec: StrategySpec,
        instance: BatchStrategy,
        own: Mapping[_Key, tuple[_ModelState, asyncio.Future[CheckResult]]],
    ) -> dict[_Key, CheckResult]:
        targets = [key[1] for key in own]
        deadline = max(deadline_for(spec, st.settings) for st, _ in own.values())
        name = spec.strategy
        async with self._budget:
            self._in_flight += 1
            self._counts["checks"] += 1
            self._counts["batches"] += 1
            self._counts["batched_targets"] += len(targets)
            start = time.perf_counter()
            failure: tuple[str, ErrorInfo] | None = None
            answers: Any = None
            try:
                answers = await self._with_deadline(instance.acheck_many(targets), deadline)
            except _Timeout:
                self._counts["timeouts"] += 1
                failure = (
                    f"batch check timed out after {deadline:g}s (cut by the monitor)",
                    ErrorInfo(type="TimeoutError", message=f"no answer within {deadline:g}s"),
                )
            except Exception as exc:  # a failing batch is a result for every target
                failure = (
                    f"batch check raised {type(exc).__name__}: {exc}",
                    ErrorInfo.from_exception(exc),
                )
            finally:
                self._in_flight -= 1
            elapsed = time.perf_counter() - start
            self._after_call(name, elapsed, len(targets), True)
        out: dict[_Key, CheckResult] = {}
        if failure is None and not isinstance(answers, Mapping):
            failure = (
                f"acheck_many returned {type(answers).__name__}, not a mapping",
                ErrorInfo(type="TypeError", message="acheck_many() must return a mapping"),
            )
        for key in own:
            target = key[1]
            if failure is not None:
                out[key] = _failed(name, target, failure[0], failure[1], elapsed)
                continue
            assert isinstance(answers, Mapping)
            result = answers.get(target)
            if isinstance(result, CheckResult):
                out[key] = result if result.latency else attrs.evolve(result, latency=elapsed)
            elif result is None:
                out[key] = _failed(
                    name,
                    target,
                    f"batch answer has no result for {target}",
                    ErrorInfo(type="KeyError", message=f"no result for {target}"),
                    elapsed,
                )
            else:
                out[key] = _failed(
                    name,
                    target,
                    f"batch answer for {target} is {type(result).__name__}, not a CheckResult",
                    ErrorInfo(type="TypeError", message="acheck_many() values must be CheckResults"),
                    elapsed,
                )
        return out

    def _after_call(self, strategy: str, seconds: float, targets: int, batch: bool) -> None:
        for hook in self._check_hooks:
            try:
                hook(strategy, seconds, targets, batch)
            except Exception:
                log.exception("check hook failed")

    def _complete(self, key: _Key, result: CheckResult, settings: MonitorSettings) -> None:
        """Cache a finished check and let the model it belongs to observe it, once."""
        spec, target = key
        # Only one check per key is ever in flight, and it is the one completing here.
        self._inflight.pop(key, None)
        loop = asyncio.get_running_loop()
        if settings.cache_ttl > 0:
            self._cache[key] = _Cached(result=result, expires=loop.time() + settings.cache_ttl)
            if len(self._cache) > 2 * len(self._states) + 1024:
                self._prune_cache(loop.time())
        st = self._states.get(target.model) if target.model is not None else None
        if st is not None and st.config.check == spec and st.target == target:
            self._observe(st, result)

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
        while len(st.history) > self._history_size:
            st.history.popleft()
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
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except asyncio.TimeoutError:
                    pass
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
        groups: dict[StrategySpec, list[_ModelState]] = {}
        for st in due:
            spec = st.config.check
            instance = self._instance(st)
            if instance is None:
                self._probe_done(st, now)
            elif self._is_batch(spec, instance):
                groups.setdefault(spec, []).append(st)
            else:
                self._spawn(self._probe(st, instance, now))
        for spec, members in groups.items():
            # Members of the group due within half their period come along now:
            # after one round the whole group is probed with one call per period.
            for name in self._by_spec.get(spec, ()):
                other = self._states[name]
                if not other.probing and other.due - now <= other.settings.period / 2:
                    other.probing = True
                    other.due = math.inf
                    other.generation += 1
                    members.append(other)
            instance = self._instance(members[0])
            if len(members) == 1 or instance is None:
                for st in members:
                    if instance is None:
                        self._probe_done(st, now)
                    else:
                        self._spawn(self._probe(st, instance, now))
            else:
                assert isinstance(instance, BatchStrategy)
                self._spawn(self._run_batch(spec, instance, members))

    def _instance(self, st: _ModelState) -> Strategy | None:
        try:
            return self._kit.resolver.get(st.name)
        except KeyError:
            return None

    def _is_batch(self, spec: StrategySpec, instance: Strategy) -> bool:
        known = self._batch_capable.get(spec)
        if known is None:
            known = isinstance(instance, BatchStrategy)
            self._batch_capable[spec] = known
        return known

    async def _probe(self, st: _ModelState, instance: Strategy, started: float) -> None:
        spec = st.config.check
        key = (spec, st.target)
        try:
            fut = self._inflight.get(key)
            if fut is None:
                fut = self._spawn(self._run_single(key, instance, st.settings))
                self._inflight[key] = fut
            await asyncio.shield(fut)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("probe of model %r failed", st.name)
        finally:
            self._probe_done(st, started)

    # -- config ------------------------------------------------------------------------

    def _add_state(self, mc: ModelConfig) -> _ModelState:
        st = _ModelState(config=mc)
        self._states[mc.name] = st
        self._by_spec.setdefault(mc.check, set()).add(mc.name)
        return st

    def _index_remove(self, mc: ModelConfig) -> None:
        names = self._by_spec.get(mc.check)
        if names is not None:
            names.discard(mc.name)
            if not names:
                del self._by_spec[mc.check]
                self._batch_capable.pop(mc.check, None)

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
                self._index_remove(st.config)
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
            restart = name in plan.changed or mc.check != st.config.check or mc.version != st.config.version
            self._index_remove(st.config)
            st.config = mc
            self._by_spec.setdefault(mc.check, set()).add(name)
            if restart:
                st.successes = st.failures = 0
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
