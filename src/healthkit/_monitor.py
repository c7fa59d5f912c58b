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

__all__ = ["CheckEvent", "Monitor", "MonitorStats", "Transition"]

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
#: Extra seconds a waiting caller allows past a check's deadline, so that a check cut
#: at its deadline still answers with its own timeout result rather than a fallback.
_WAIT_GRACE = 0.05
#: Default cap of distinct on-demand targets (other than the models' own) per window.
DEFAULT_MAX_ON_DEMAND_TARGETS = 256
#: Seconds of the window over which distinct on-demand targets are counted.
_TARGET_WINDOW = 10.0
#: Half-open probes in flight at once for an instance whose upstream is down.
_HALF_OPEN_PROBES = 1
#: Versions per model remembered from upstream answers.
_REPORTED_VERSIONS = 32
#: Error types (exception names) that mean the upstream did not answer at all.
_TRANSPORT_ERRORS = frozenset(
    {
        "TimeoutError",
        "TimeoutException",
        "ConnectTimeout",
        "ReadTimeout",
        "WriteTimeout",
        "PoolTimeout",
        "ConnectError",
        "ReadError",
        "WriteError",
        "NetworkError",
        "RemoteProtocolError",
        "ConnectionError",
        "ConnectionRefusedError",
        "ConnectionResetError",
        "ConnectionAbortedError",
        "BrokenPipeError",
    }
)

#: (spec id, target): a spec id names one shared instance (equal specs, one id), and
#: small ints hash in no time, unlike a deep config hashed on every lookup.
_Key = tuple[int, Target]
CheckHook = Callable[[str, float, int, bool], None]


@attrs.frozen(kw_only=True)
class CheckEvent:
    """One finished upstream call, as seen by :meth:`Monitor.add_check_listener`."""

    #: The strategy's registered name (``http``, ``grpc``, ...).
    strategy: str
    #: The model checked; ``None`` for a batch call.
    model: str | None
    #: Seconds the call ran (cut at its deadline if it hung).
    seconds: float
    #: Targets the call answered (1, or the batch size).
    targets: int
    batch: bool


CheckListener = Callable[[CheckEvent], object]


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
    #: Times an instance's upstream was marked down (outlier detection).
    outages: int
    #: On-demand targets refused by the cap on distinct targets.
    refused_targets: int
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
    stale_after: float = math.inf
    #: ``time.monotonic()`` when ``last`` was observed (staleness is measured from it).
    observed: float = -math.inf
    #: When the running probe was due (for :meth:`Monitor.overdue`).
    wanted: float = math.inf

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
    #: Loop times: reused as fresh until ``expires``, answered (while revalidated) until ``stale``.
    expires: float
    stale: float
    #: ``time.monotonic()`` when it arrived (queue order: oldest first).
    at: float


@attrs.define(eq=False)
class _Breaker:
    """Outlier detection for one strategy instance (one spec id): is its upstream down?"""

    #: Consecutive transport failures of the instance's checks, across its models.
    failures: int = 0
    open: bool = False
    #: Half-open probes in flight while open.
    probes: int = 0
    #: The check that proved the upstream down, and the count that tripped it.
    proof: CheckResult | None = None
    tripped_after: int = 0
    #: Models whose probes wait for the breaker to close.
    parked: set[str] = attrs.field(factory=set)


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
    #: The model checked (single checks); names the task for a loop-stall watchdog.
    model: str | None = None
    #: The keys the job answers (for :meth:`Monitor.overdue` and fallbacks while queued).
    keys: tuple[_Key, ...] = ()
    #: Queue order when the budget is short: the oldest result first.
    priority: float = -math.inf
    #: The strategy instance (spec id) the job checks.
    spec: int = 0
    started: float = 0.0
    finished: bool = False
    task: asyncio.Future[Any] = attrs.field(init=False)
    timer: asyncio.TimerHandle = attrs.field(init=False)


def _is_transport_failure(result: CheckResult) -> bool:
    """The upstream did not answer (timeout, refused, reset), as opposed to answering "no".

    A plain 503 of one model says nothing about its siblings; a timeout or a refused
    connection says the same about every model behind that upstream.
    """
    error = result.error
    if error is None or result.status.is_ok:
        return False
    if error.type in _TRANSPORT_ERRORS:
        return True
    # gRPC: the status code leads the message (see the grpc strategy).
    return error.type == "AioRpcError" and error.message.startswith(
        ("UNAVAILABLE", "DEADLINE_EXCEEDED")
    )


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
        max_on_demand_targets: int = DEFAULT_MAX_ON_DEMAND_TARGETS,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        if max_on_demand_targets < 0:
            raise ValueError(f"max_on_demand_targets must be >= 0, got {max_on_demand_targets}")
        if history_size < 1:
            raise ValueError(f"history_size must be >= 1, got {history_size}")
        self._kit = kit
        self._max_in_flight = max_in_flight
        self._max_targets = max_on_demand_targets
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
        self._check_listeners: list[CheckListener] = []
        self._last_progress = -math.inf
        self._loop: asyncio.AbstractEventLoop | None = None
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
        # A heap: oldest result first when the budget is short, so no model starves.
        self._queue: list[tuple[float, int, _Job]] = []
        self._queued_keys: set[_Key] = set()
        self._running: set[_Job] = set()
        self._breakers: dict[int, _Breaker] = {}
        self._reported: dict[str, set[str]] = {}
        self._window_end = -math.inf
        self._window_targets: set[_Key] = set()
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
        self._loop = asyncio.get_running_loop()
        now = self._loop.time()
        self._last_progress = now
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
        self._queued_keys.clear()
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
        """The thresholded status: ``unknown`` until the first result, and again once
        the last result is older than ``max_stale``."""
        st = self._state(model)
        if st.last is not None and time.monotonic() - st.observed > st.stale_after:
            return Status.UNKNOWN
        return st.status

    def is_ready(self, model: str) -> bool:
        """False until ``success_threshold`` consecutive successes, and again after
        ``failure_threshold`` consecutive failures (Kubernetes readiness semantics);
        also false while the last result is older than ``max_stale``."""
        st = self._state(model)
        return st.ready and time.monotonic() - st.observed <= st.stale_after

    def is_stale(self, model: str) -> bool:
        """The model has a result, but it is older than its ``max_stale``."""
        st = self._state(model)
        return st.last is not None and time.monotonic() - st.observed > st.stale_after

    def has_version(self, model: str, version: str | None) -> bool:
        """Whether ``version`` of ``model`` may have checks of its own.

        ``None`` and the configured version always; another version only when an
        upstream answer reported it (a batch answer naming it). Clients must not
        be able to make the monitor check versions nobody configured.
        """
        st = self._state(model)
        if version is None or version == st.config.version:
            return True
        return version in self._reported.get(model, ())

    def upstream_down(self, model: str) -> bool:
        """Whether the instance that checks ``model`` is marked down (outlier detection)."""
        breaker = self._breakers.get(self._state(model).key[0])
        return breaker is not None and breaker.open

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
        now = time.monotonic()
        return all(st.ready and now - st.observed <= st.stale_after for st in self._states.values())

    def last_result(self, model: str) -> CheckResult | None:
        return self._state(model).last

    def history(self, model: str) -> Sequence[Transition]:
        """The model's most recent transitions, oldest first (bounded)."""
        return tuple(self._state(model).history)

    def stats(self) -> MonitorStats:
        samples = sorted(self._lateness)
        now = time.monotonic()
        return MonitorStats(
            models=len(self._states),
            ready=sum(
                1
                for st in self._states.values()
                if st.ready and now - st.observed <= st.stale_after
            ),
            in_flight=self._in_flight,
            checks=self._counts["checks"],
            batches=self._counts["batches"],
            batched_targets=self._counts["batched_targets"],
            coalesced=self._counts["coalesced"],
            cache_hits=self._counts["cache_hits"],
            timeouts=self._counts["timeouts"],
            outages=self._counts["outages"],
            refused_targets=self._counts["refused_targets"],
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

    def add_check_listener(self, listener: CheckListener) -> None:
        """Call ``listener(event)`` with a :class:`CheckEvent` after every upstream call.

        Called synchronously in the event loop, so it must be cheap; one that
        raises is logged and kept.
        """
        self._check_listeners.append(listener)

    def remove_check_listener(self, listener: CheckListener) -> None:
        self._check_listeners.remove(listener)

    @property
    def last_progress(self) -> float:
        """Loop time when the last upstream call finished, or when :meth:`start` ran.

        ``-inf`` before :meth:`start`. For a liveness watchdog: a monitor whose
        probes are due but that makes no progress is stuck.
        """
        return self._last_progress

    def overdue(self) -> int:
        """How many models' probes are due more than one period late and not yet running.

        Safe to call from a watchdog thread while the loop is stuck (it reads the
        loop's clock, not the running loop); from the loop it is exact.
        """
        loop = self._loop
        if not self._started or self._closed or loop is None:
            return 0
        now = loop.time()
        late = 0
        try:
            states = list(self._states.values())
        except RuntimeError:  # changed size under a watchdog thread: count next time
            return 0
        for st in states:
            # A probe queued behind the budget is still late; a running one is not.
            wanted = st.wanted if st.probing and st.key in self._queued_keys else st.due
            if now - wanted > st.settings.period:
                late += 1
        return late

    def _add_check_hook(self, hook: CheckHook) -> None:
        """Internal (metrics): ``hook(strategy, seconds, targets, batch)`` after each call."""
        self._check_hooks.append(hook)

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
        st = self._state(model)
        if self._closed:
            raise ClosedError("monitor is closed")
        await self._kit.astart()
        st = self._state(model)  # a reload may have run while the kit started
        now = asyncio.get_running_loop().time()
        own = version is None or version == st.config.version
        if own:
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
            if not own and not self._admit_target(key, now):
                return self._refused(st, key[1])
            if not self._may_check(key[0]):
                return self._known(st, key, "its upstream is marked down")
            fut = self._submit_single(key, self._kit.resolver.get(model), st)
        return await self._wait(fut, st, key)

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
        st = self._state(model)
        if self._closed:
            raise ClosedError("monitor is closed")
        loop = asyncio.get_running_loop()
        if version is None or version == st.config.version:
            if st.last is None:
                await self.acheck(model)
                return self.is_ready(model)
            if st.fresh_until <= loop.time():
                self._refresh(st, st.key)
            return self.is_ready(model)
        key = (st.key[0], Target(model=model, version=version))
        cached = self._cache.get(key)
        now = loop.time()
        if cached is not None and cached.stale > now:
            if cached.expires <= now:
                self._refresh(st, key)
            return cached.result.status.is_ok
        return (await self.acheck(model, version=version)).status.is_ok

    async def aserver_ready(self) -> bool:
        """Every model ready, answered like :meth:`aready` for each model.

        Models without a result yet get one shared on-demand check each (bounded
        by their deadlines); every other model answers from memory and is
        revalidated in the background when its result is older than ``cache_ttl``.
        """
        if self._closed:
            raise ClosedError("monitor is closed")
        await self._kit.astart()
        missing = [st.name for st in self._states.values() if st.last is None]
        if missing:
            await asyncio.gather(*(self.acheck(name) for name in missing))
        now = asyncio.get_running_loop().time()
        for st in list(self._states.values()):
            if st.last is not None and st.fresh_until <= now:
                self._refresh(st, st.key)
        return self.server_ready()

    def _refresh(self, st: _ModelState, key: _Key) -> None:
        """Start a background check of ``key`` unless one runs (or may not run) now."""
        if self._closed or key in self._inflight:
            return
        own = key is st.key or key == st.key
        if not own and not self._admit_target(key, asyncio.get_running_loop().time()):
            self._counts["refused_targets"] += 1
            return
        if not self._may_check(key[0]):
            return
        instance = self._instance(st)
        if instance is not None:
            self._submit_single(key, instance, st)

    async def _wait(
        self, fut: asyncio.Future[CheckResult], st: _ModelState, key: _Key
    ) -> CheckResult:
        """Await a shared check for at most its deadline; then answer what is known."""
        if not fut.done():
            # Shielded: a caller that goes away (a closed HTTP request) must not
            # cancel the check the other callers are waiting for.
            with contextlib.suppress(asyncio.TimeoutError):
                return await asyncio.wait_for(asyncio.shield(fut), st.deadline + _WAIT_GRACE)
        if fut.done():
            return fut.result()
        where = (
            f"waiting for a budget slot ({len(self._queue)} checks queued, "
            f"max_in_flight {self._max_in_flight})"
            if key in self._queued_keys
            else "still running"
        )
        return self._known(st, key, f"no answer within {st.deadline:g}s: the check is {where}")

    def _known(self, st: _ModelState, key: _Key, why: str) -> CheckResult:
        """The known result of ``key`` if it is not stale, else ``unknown`` saying ``why``."""
        if key is st.key or key == st.key:
            if st.last is not None and time.monotonic() - st.observed <= st.stale_after:
                return st.last
        else:
            cached = self._cache.get(key)
            if cached is not None and cached.stale > asyncio.get_running_loop().time():
                return cached.result
        breaker = self._breakers.get(key[0])
        if breaker is not None and breaker.open and breaker.proof is not None:
            return self._outage_result(st.config.check.strategy, key[1], breaker)
        return CheckResult(
            status=Status.UNKNOWN,
            strategy=st.config.check.strategy,
            target=key[1],
            detail=why,
        )

    def _refused(self, st: _ModelState, target: Target) -> CheckResult:
        self._counts["refused_targets"] += 1
        return CheckResult(
            status=Status.UNKNOWN,
            strategy=st.config.check.strategy,
            target=target,
            detail=(
                f"not checked: more than {self._max_targets} distinct on-demand targets "
                f"in {_TARGET_WINDOW:g}s (max_on_demand_targets)"
            ),
        )

    def _admit_target(self, key: _Key, now: float) -> bool:
        """Count ``key`` toward the distinct on-demand targets of this window."""
        if now >= self._window_end:
            self._window_end = now + _TARGET_WINDOW
            self._window_targets.clear()
        if key in self._window_targets:
            return True
        if len(self._window_targets) >= self._max_targets:
            return False
        self._window_targets.add(key)
        return True

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
            heapq.heappush(self._queue, (job.priority, next(self._seq), job))
            self._queued_keys.update(job.keys)

    def _launch(self, job: _Job) -> None:
        loop = asyncio.get_running_loop()
        if self._queued_keys:
            self._queued_keys.difference_update(job.keys)
        self._in_flight += 1
        self._counts["checks"] += 1
        job.started = time.perf_counter()
        # The deadline starts when the check does, not while it queued for the budget.
        job.timer = loop.call_later(job.deadline, self._expire, job)
        self._running.add(job)
        if job.batch:
            task_name = f"healthkit batch {job.strategy} ({job.targets} models)"
        else:
            task_name = f"healthkit check {job.strategy} {job.model}"
        job.task = loop.create_task(self._run(job), name=task_name)

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
        self._after_call(job, elapsed)
        try:
            job.done(value, error, timed_out, elapsed)
        except Exception:
            log.exception("finishing a %r check failed", job.strategy)
        while self._queue and self._in_flight < self._max_in_flight and not self._closed:
            self._launch(heapq.heappop(self._queue)[2])

    def _may_check(self, spec_id: int) -> bool:
        """Whether a new check of the instance may start (its half-open probe, if it is down)."""
        breaker = self._breakers.get(spec_id)
        return breaker is None or not breaker.open or breaker.probes < _HALF_OPEN_PROBES

    def _probe_slot(self, spec_id: int) -> _Breaker | None:
        """Take a half-open probe slot if the instance is down; the caller gives it back."""
        breaker = self._breakers.get(spec_id)
        if breaker is None or not breaker.open:
            return None
        breaker.probes += 1
        return breaker

    def _priority(self, key: _Key, st: _ModelState) -> float:
        # Oldest result first (a target never checked before all); loop-time vs
        # monotonic does not matter, only the order among results does.
        if key is st.key or key == st.key:
            return st.observed if st.last is not None else -math.inf
        cached = self._cache.get(key)
        return cached.at if cached is not None else -math.inf

    def _submit_single(
        self, key: _Key, instance: Strategy, st: _ModelState
    ) -> asyncio.Future[CheckResult]:
        """Start (or queue) one check of ``key`` for model ``st``; returns its in-flight future."""
        target = key[1]
        name, deadline, settings = st.config.check.strategy, st.deadline, st.settings
        fut: asyncio.Future[CheckResult] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        probe = self._probe_slot(key[0])

        def done(value: Any, error: BaseException | None, timed_out: bool, elapsed: float) -> None:
            if probe is not None:
                probe.probes = max(0, probe.probes - 1)
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
            self._account(key[0], result, settings.failure_threshold)

        self._submit(
            _Job(
                strategy=name,
                deadline=deadline,
                make=lambda: guarded_check(instance, name, target),
                done=done,
                model=str(target),
                keys=(key,),
                priority=self._priority(key, st),
                spec=key[0],
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
        priority = math.inf
        threshold = 1
        for st in members:
            existing = self._inflight.get(st.key)
            if existing is None:
                existing = loop.create_future()
                self._inflight[st.key] = existing
                own[st.key] = (st.settings, existing)
                deadline = max(deadline, st.deadline)
                priority = min(priority, self._priority(st.key, st))
                threshold = max(threshold, st.settings.failure_threshold)
            futures.append(existing)
        if not own:
            return futures
        targets = [key[1] for key in own]
        name = members[0].config.check.strategy
        spec_id = members[0].key[0]

        def done(value: Any, error: BaseException | None, timed_out: bool, elapsed: float) -> None:
            results = _batch_results(name, targets, value, error, timed_out, deadline)
            for (key, (settings, fut)), result in zip(own.items(), results, strict=True):
                if not result.latency:
                    result = attrs.evolve(result, latency=elapsed)
                self._settle(key, fut, result, settings)
            if isinstance(value, Mapping) and len(value) > len(targets):
                self._note_reported(value)
            # One upstream call is one piece of evidence, however many targets it answered.
            failed = [r for r in results if _is_transport_failure(r)]
            self._account(spec_id, failed[0] if failed else results[0], threshold)

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
                keys=tuple(own),
                priority=priority,
                spec=spec_id,
            )
        )
        return futures

    def _note_reported(self, answers: Mapping[Any, Any]) -> None:
        """Remember versions an upstream answer named beyond those asked about."""
        for target in answers:
            if not isinstance(target, Target) or target.model is None or target.version is None:
                continue
            if target.model in self._states:
                seen = self._reported.setdefault(target.model, set())
                if len(seen) < _REPORTED_VERSIONS:
                    seen.add(target.version)

    # -- outlier detection ---------------------------------------------------------------

    def _account(self, spec_id: int, result: CheckResult, threshold: int) -> None:
        """Feed one upstream call's outcome to its instance's breaker."""
        breaker = self._breakers.get(spec_id)
        if not _is_transport_failure(result):
            if breaker is not None:
                breaker.failures = 0
                if breaker.open:
                    self._close_breaker(spec_id, breaker, result)
            return
        if spec_id not in self._by_spec:
            return  # the instance left with a reload
        if breaker is None:
            breaker = self._breakers[spec_id] = _Breaker()
        breaker.failures += 1
        if not breaker.open and breaker.failures >= threshold:
            self._open_breaker(spec_id, breaker, result)

    def _outage_result(self, strategy: str, target: Target, breaker: _Breaker) -> CheckResult:
        proof = breaker.proof
        assert proof is not None
        return CheckResult(
            status=Status.UNHEALTHY,
            strategy=strategy,
            target=target,
            detail=(
                f"upstream unreachable: {breaker.tripped_after} consecutive checks of this "
                f"{strategy} instance failed to reach it (last: {proof.target}: {proof.detail})"
            ),
            error=proof.error,
        )

    def _open_breaker(self, spec_id: int, breaker: _Breaker, proof: CheckResult) -> None:
        """Mark every model of the instance not ready now (never ready: see _close_breaker)."""
        breaker.open = True
        breaker.proof = proof
        breaker.tripped_after = breaker.failures
        self._counts["outages"] += 1
        names = self._by_spec.get(spec_id, set())
        log.warning(
            "upstream of %d model(s) marked down after %d consecutive transport failures "
            "(last: %s: %s)",
            len(names),
            breaker.failures,
            proof.target,
            proof.detail,
        )
        self._shed_queued(spec_id, breaker)
        now = time.monotonic()
        for name in list(names):
            st = self._states.get(name)
            if st is None:
                continue
            if not st.ready and st.last is not None and not st.last.status.is_ok:
                continue  # already failing, with its own reason
            result = self._outage_result(st.config.check.strategy, st.target, breaker)
            st.last = result
            st.observed = now
            st.successes = 0
            st.failures = max(st.failures, st.settings.failure_threshold)
            old = st.status
            st.ready = False
            st.status = Status.UNHEALTHY
            if old != st.status:
                self._transition(st, old, st.status, result, quiet=True)

    def _shed_queued(self, spec_id: int, breaker: _Breaker) -> None:
        """Answer the instance's queued checks with the outage instead of running them.

        A thousand queued checks of a hung upstream would hold the budget for a
        thousand timeouts, and keep the half-open probe (and every other
        instance's checks) waiting behind them.
        """
        if not any(item[2].spec == spec_id for item in self._queue):
            return
        keep = [item for item in self._queue if item[2].spec != spec_id]
        shed = [item[2] for item in self._queue if item[2].spec == spec_id]
        heapq.heapify(keep)
        self._queue = keep
        for job in shed:
            job.finished = True
            self._queued_keys.difference_update(job.keys)
            for key in job.keys:
                fut = self._inflight.get(key)
                model = key[1].model
                st = self._states.get(model) if model is not None else None
                if fut is None or st is None:
                    continue
                result = self._outage_result(job.strategy, key[1], breaker)
                self._settle(key, fut, result, st.settings)

    def _close_breaker(self, spec_id: int, breaker: _Breaker, evidence: CheckResult) -> None:
        """The upstream answered: probe the parked models promptly.

        Nothing is marked ready here: each model needs its own fresh successes.
        """
        breaker.open = False
        breaker.probes = 0
        parked, breaker.parked = breaker.parked, set()
        log.info(
            "upstream answered again (%s: %s); probing %d parked model(s)",
            evidence.target,
            evidence.detail,
            len(parked),
        )
        if not self._started or self._closed:
            return
        now = asyncio.get_running_loop().time()
        for name in parked:
            st = self._states.get(name)
            if st is not None and not st.probing and st.key[0] == spec_id:
                self._schedule(st, now)

    def _after_call(self, job: _Job, seconds: float) -> None:
        self._last_progress = asyncio.get_running_loop().time()
        for hook in self._check_hooks:
            try:
                hook(job.strategy, seconds, job.targets, job.batch)
            except Exception:
                log.exception("check hook failed")
        if self._check_listeners:
            event = CheckEvent(
                strategy=job.strategy,
                model=None if job.batch else job.model,
                seconds=seconds,
                targets=job.targets,
                batch=job.batch,
            )
            for listener in list(self._check_listeners):
                try:
                    listener(event)
                except Exception:
                    log.exception("check listener %r failed", listener)

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
        elif st is not None:
            # Kept past cache_ttl, until max_stale: readiness answers revalidate it.
            self._cache[key] = _Cached(
                result=result,
                expires=now + settings.cache_ttl,
                stale=now + st.stale_after,
                at=time.monotonic(),
            )
            if len(self._cache) > 1024:
                self._prune_cache(now)
        if not fut.done():
            fut.set_result(result)

    def _prune_cache(self, now: float) -> None:
        live = set(self._by_spec)
        for key in [k for k, c in self._cache.items() if c.stale <= now or k[0] not in live]:
            del self._cache[key]

    # -- thresholds ------------------------------------------------------------------

    def _observe(self, st: _ModelState, result: CheckResult) -> None:
        settings = st.settings
        st.last = result
        st.observed = time.monotonic()
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

    def _transition(
        self,
        st: _ModelState,
        old: Status,
        new: Status,
        result: CheckResult,
        *,
        quiet: bool = False,
    ) -> None:
        tr = Transition(
            model=st.name, old=old, new=new, result=result, at=dt.datetime.now(dt.timezone.utc)
        )
        st.history.append(tr)
        if len(st.history) > self._history_size:
            del st.history[0]  # at most history_size entries: cheap enough
        # An outage marks many models at once and logs one line for all of them.
        level = logging.DEBUG if quiet else logging.INFO if new.is_ok else logging.WARNING
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

    def _park(self, st: _ModelState, now: float) -> None:
        """Hold ``st``'s probe while its upstream is down: the breaker's verdict reschedules it.

        It still comes due a period later (and is parked again if the upstream is
        still down), so no model is ever left without a schedule.
        """
        breaker = self._breakers.get(st.key[0])
        if breaker is not None and breaker.open:
            breaker.parked.add(st.name)
        self._schedule(st, now + self._interval(st))

    def _may_check_all(self, spec_id: int) -> bool:
        breaker = self._breakers.get(spec_id)
        return breaker is None or not breaker.open

    def _probe_done(self, st: _ModelState, started: float, *, park: bool = False) -> None:
        st.probing = False
        st.wanted = math.inf
        if self._closed or self._states.get(st.name) is not st or not self._started:
            return
        if park:
            self._park(st, started)
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
        parked: list[_ModelState] = []
        while self._heap and self._heap[0][0] <= now + _TICK:
            when, _, name, generation = heapq.heappop(self._heap)
            st = self._states.get(name)
            if st is None or st.generation != generation or st.probing:
                continue
            self._lateness.append(max(0.0, now - when))
            breaker = self._breakers.get(st.key[0])
            if (
                breaker is not None
                and breaker.open
                and st.key not in self._inflight
                and breaker.probes >= _HALF_OPEN_PROBES
            ):
                # The upstream is down and a half-open probe is out: wait for its verdict.
                parked.append(st)
                continue
            st.probing = True
            st.wanted = when
            st.due = math.inf
            due.append(st)
        for st in parked:
            self._park(st, now)
        groups: dict[int, list[_ModelState]] = {}
        for st in due:
            instance = self._instance(st)
            if instance is None:
                self._probe_done(st, now)
            elif not self._may_check(st.key[0]) and st.key not in self._inflight:
                # Another model of this instance just took the half-open probe.
                self._probe_done(st, now, park=True)
            elif self._is_batch(st.key[0], instance) and self._may_check_all(st.key[0]):
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
        st.stale_after = mc.monitor.stale_after(st.deadline)
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
                self._breakers.pop(spec_id, None)
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
