"""Single-flight checks with a result cache, and the cap on client-chosen targets.

Every upstream check runs once per ``(instance, target)`` key however many
callers want it, its result is cached for ``cache_ttl`` (a model's own target
keeps its result in its state instead), and a model's own result is observed
exactly once by its thresholds.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from .._guard import raised_result, returned_result
from .._monitor_settings import MonitorSettings
from .._result import CheckResult, ErrorInfo, Target
from .._status import Status
from .._strategy import BatchStrategy, Strategy, concurrency_of
from ._models import Key, Models, ModelState
from ._outage import (
    OutageDetector,
    is_starved,
    is_transport_failure,
    outage_result,
)
from ._results import _batch_results, _failed, _timeout_result, _unless_starved
from ._runner import Job, Runner

__all__ = ["DEFAULT_MAX_ON_DEMAND_TARGETS", "TARGET_WINDOW", "Cached", "Checks"]

#: Default cap of distinct on-demand targets (other than the models' own) per window.
DEFAULT_MAX_ON_DEMAND_TARGETS = 256
#: Seconds of the window over which distinct on-demand targets are counted.
TARGET_WINDOW = 10.0
#: Extra seconds a waiting caller allows past a check's deadline, so that a check cut
#: at its deadline still answers with its own timeout result rather than a fallback.
_WAIT_GRACE = 0.05
#: Versions per model remembered from upstream answers.
_REPORTED_VERSIONS = 32
#: Results that end within this many seconds after one another (and within 1 % of
#: their ``cache_ttl``) are observed at the loop time of the first (see
#: :meth:`Checks._settled_at`).
_SAME_TIME = 0.01

#: ``on_outcome(spec_id, result, deadline, starved, targets, failure_threshold, timeout)``:
#: one upstream call's evidence about its instance (a batch call is one piece), with the
#: call's hard cap and the seconds the event loop was starved while it ran.
OutcomeHook = Callable[[int, CheckResult, float, float, Sequence[Target], int, float], None]

#: Class attribute of a strategy whose ``acheck`` answers from memory, without awaiting
#: anything (``noop``): the monitor runs such a check inline, without a task of its own.
ANSWERS_INLINE = "_healthkit_answers_inline"
#: Method of such a strategy that answers what ``acheck`` would, as a plain call: the
#: monitor calls it rather than create and drive a coroutine per probe (with its
#: ``StopIteration``, about a tenth of a ``noop`` probe's cost).
CHECK_NOW = "_healthkit_check_now"


def declared_for_acheck(cls: type, name: str) -> bool:
    """Whether ``cls`` has ``name`` (:data:`ANSWERS_INLINE`, :data:`CHECK_NOW`) set, by
    the class that defines the ``acheck`` in use or by a subclass of it.

    Both speak for an ``acheck``: a subclass (of ``noop``, say) that overrides
    ``acheck`` without saying so again inherits a promise made for its base's
    ``acheck``, not for its own, so its own runs as any other check does.
    """
    said: bool | None = None  # what the nearest class that sets ``name`` says
    for klass in cls.__mro__:
        own = vars(klass)
        if said is None and name in own:
            said = bool(own[name])
        if "acheck" in own:
            return bool(said)
    return False


@attrs.define(eq=False)
class Cached:
    result: CheckResult
    #: Loop times: reused as fresh until ``expires``, answered (while revalidated) until ``stale``.
    expires: float
    stale: float
    #: ``time.monotonic()`` when it arrived (queue order: oldest first).
    at: float


class Checks:
    """Shared in-flight checks by key, the cache, and the window of on-demand targets."""

    def __init__(
        self,
        *,
        runner: Runner,
        models: Models,
        detector: OutageDetector,
        counts: collections.Counter[str],
        max_targets: int,
        on_outcome: OutcomeHook,
        instance: Callable[[str], Strategy],
        closed: Callable[[], bool],
        redact: Callable[[CheckResult], CheckResult],
    ) -> None:
        self.runner = runner
        self._models = models
        self._detector = detector
        self._counts = counts
        self.max_targets = max_targets
        self.on_outcome = on_outcome
        self._instance = instance
        self._closed = closed
        #: Every result a strategy returns passes here before it is stored or logged.
        self._redact = redact
        #: The future of the check running (or queued) for each key: callers join it.
        self.shared: dict[Key, asyncio.Future[CheckResult]] = {}
        #: Results of targets other than the models' own.
        self.cache: dict[Key, Cached] = {}
        self._window_end = -math.inf
        self._window_targets: set[Key] = set()
        self._reported: dict[str, set[str]] = {}
        #: Strategy class -> (its check answers inline, it offers a plain call): see
        #: :func:`declared_for_acheck`.
        self._inline: dict[type, tuple[bool, bool]] = {}
        #: Loop time the last settled result was observed at (see :meth:`_settled_at`).
        self._settled = -math.inf
        #: ``(now, ttl, now + ttl)`` of the last inline answer (see :meth:`_fresh_until`).
        self._fresh_memo: tuple[float, float, float] = (math.nan, math.nan, math.nan)
        #: Bound once: every single check's job ends here.
        self._done_single = self._single_done
        #: ``probe_ended(state, started, retry)``: a background probe submitted with
        #: ``probe=`` ended (the scheduler reschedules it; ``retry``: it brought no
        #: evidence, see :func:`_outage.is_starved`); set by the monitor.
        self.probe_ended: Callable[[ModelState, float, bool], None] | None = None

    # -- the cap on client-chosen targets ------------------------------------------------

    def admit_target(self, key: Key, now: float) -> bool:
        """Count ``key`` toward the distinct on-demand targets of this window."""
        if now >= self._window_end:
            self._window_end = now + TARGET_WINDOW
            self._window_targets.clear()
        if key in self._window_targets:
            return True
        if len(self._window_targets) >= self.max_targets:
            return False
        self._window_targets.add(key)
        return True

    def refused(self, st: ModelState, target: Target) -> CheckResult:
        self._counts["refused_targets"] += 1
        return CheckResult(
            status=Status.UNKNOWN,
            strategy=st.config.check.strategy,
            target=target,
            detail=(
                f"not checked: more than {self.max_targets} distinct on-demand targets "
                f"in {TARGET_WINDOW:g}s (max_on_demand_targets)"
            ),
        )

    def has_reported(self, model: str, version: str) -> bool:
        return version in self._reported.get(model, ())

    def _note_reported(self, answers: Mapping[Any, Any]) -> None:
        """Remember versions an upstream answer named beyond those asked about."""
        for target in answers:
            if not isinstance(target, Target) or target.model is None or target.version is None:
                continue
            if target.model in self._models.states:
                seen = self._reported.setdefault(target.model, set())
                if len(seen) < _REPORTED_VERSIONS:
                    seen.add(target.version)

    # -- submitting ------------------------------------------------------------------------

    def _priority(self, key: Key, st: ModelState) -> float:
        # Oldest result first (a target never checked before all); loop-time vs
        # monotonic does not matter, only the order among results does.
        if st.owns(key):
            return st.observed if st.last is not None else -math.inf
        cached = self.cache.get(key)
        return cached.at if cached is not None else -math.inf

    def submit_single(
        self, key: Key, instance: Strategy, st: ModelState, *, probe: float | None = None
    ) -> asyncio.Future[CheckResult]:
        """Start (or queue) one check of ``key`` for model ``st``; returns its shared future.

        ``probe``: the check is ``st``'s background probe, started at that loop time;
        :attr:`probe_ended` is called when it ends, however it ends (but for a monitor
        that closed), after its result is settled and its outcome judged.
        """
        fut: asyncio.Future[CheckResult] = asyncio.get_running_loop().create_future()
        self.shared[key] = fut
        # No closures per check: the job carries what its end needs (a round of ten
        # thousand queued checks made ten thousand closures, about 700 bytes each).
        self.runner.submit(
            Job(
                strategy=st.config.check.strategy,
                deadline=st.timing[0],
                make=None,
                done=self._done_single,
                keys=(key,),
                priority=self._priority(key, st),
                spec=key[0],
                instance=instance,
                settings=st.settings,
                future=fut,
                breaker=self._detector.take_probe(key[0]),
                probe=None if probe is None else st,
                tick=0.0 if probe is None else probe,
                cap=concurrency_of(instance),
            )
        )
        return fut

    def _single_done(self, job: Job, value: Any, error: BaseException | None) -> None:
        retry = False
        try:
            retry = self._finish_single(job, value, error)
        finally:
            # Even if finishing failed: a probe never left without a schedule.
            if job.probe is not None and self.probe_ended is not None:
                self.probe_ended(job.probe, job.tick, retry)

    def _finish_single(self, job: Job, value: Any, error: BaseException | None) -> bool:
        """Settle the job's result; whether it was starved (no evidence: retry soon)."""
        key = job.keys[0]
        target, name, settings = key[1], job.strategy, job.settings
        assert settings is not None and job.future is not None
        if job.breaker is not None:
            self._detector.probe_done(job.breaker)
        if job.timed_out:
            result = _timeout_result(name, target, job.deadline, job.elapsed)
        elif isinstance(value, CheckResult):
            result = value  # guarded_check turned errors and garbage into results
        else:
            detail = "check was cancelled" if error is None else f"check failed: {error!r}"
            result = _failed(
                name,
                target,
                detail,
                ErrorInfo(type=type(error).__name__, message=str(error) or detail),
                job.elapsed,
            )
        result = _unless_starved(self._redact(result), job)
        self.settle(key, job.future, result, settings)
        retry = is_starved(result)
        if result.error is not None or self._detector.breakers:  # see run_inline
            self.on_outcome(
                key[0],
                result,
                job.deadline,
                job.starved,
                (target,),
                settings.failure_threshold,
                settings.timeout,
            )
        return retry

    def try_inline(self, key: Key, instance: Strategy, st: ModelState) -> CheckResult | None:
        """Check ``key`` now, inline, if ``instance`` answers without suspending.

        Only for strategies that declare :data:`ANSWERS_INLINE` and only when no check
        of ``key`` is in flight (callers join that one). Such a check takes no budget
        slot, task, future or deadline timer: it cannot outlive this call, so there is
        nothing to cut, cancel or share. ``None`` when it must run as a job: the
        strategy does not declare it, or its check awaited something after all (the
        coroutine is closed here, in the step that started it, and the check runs again
        in a task of its own: a coroutine that captured the current task, as anyio
        cancel scopes and ``asyncio.timeout`` do, must not be resumed in another one).
        """
        if not self._ways(type(instance))[0] or (self.shared and key in self.shared):
            return None
        return self.run_inline(key, instance, st)

    def _ways(self, cls: type) -> tuple[bool, bool]:
        """(``cls`` answers inline, it offers a plain-call check), remembered per class."""
        ways = self._inline.get(cls)
        if ways is None:
            inline = declared_for_acheck(cls, ANSWERS_INLINE)
            ways = self._inline[cls] = (inline, inline and declared_for_acheck(cls, CHECK_NOW))
        return ways

    def run_inline(
        self, key: Key, instance: Strategy, st: ModelState, now: float | None = None
    ) -> CheckResult | None:
        """:meth:`try_inline` for a caller that knows ``instance`` declares it and no
        check of ``key`` is in flight (the scheduler, once per background probe).

        ``now``: the loop time of the scheduler's tick. The models answered in one
        tick then share the float objects of their ``observed`` and ``fresh_until``
        (48 bytes a model, a hundred thousand models).
        """
        name = st.config.check.strategy
        target = key[1]
        # What guarded_check does, without a coroutine of its own around the check.
        began = time.perf_counter()
        if self._ways(type(instance))[1]:
            check_now = getattr(instance, CHECK_NOW)
            try:
                answer = check_now(target)
            except Exception as exc:
                elapsed = time.perf_counter() - began
                value = raised_result(name, target, exc, elapsed)
            else:
                elapsed = time.perf_counter() - began
                value = returned_result(name, target, answer, elapsed)
            return self._answered_inline(key, st, name, target, value, elapsed, now)
        try:
            coro = instance.acheck(target)
            if type(coro) is not types.CoroutineType:
                return None  # not a native coroutine: let guarded_check deal with it
            coro.send(None)
        except StopIteration as stop:
            elapsed = time.perf_counter() - began
            value = returned_result(name, target, stop.value, elapsed)
        except Exception as exc:
            elapsed = time.perf_counter() - began
            value = raised_result(name, target, exc, elapsed)
        else:
            coro.close()
            return None
        return self._answered_inline(key, st, name, target, value, elapsed, now)

    def _answered_inline(
        self,
        key: Key,
        st: ModelState,
        name: str,
        target: Target,
        value: CheckResult,
        elapsed: float,
        now: float | None,
    ) -> CheckResult:
        if now is None:
            now = asyncio.get_running_loop().time()
        runner = self.runner
        if runner.listeners:
            runner.ran_inline(name, target, elapsed, now)
        else:  # what ran_inline does when nobody listens, without the call
            self._counts["checks"] += 1
            runner.last_progress = now
        # Inline: no deadline to cut it and no loop time to starve it of.
        result = self._redact(value)
        settings = st.config.monitor
        # The model's own target (every background probe) needs no lookup of its owner.
        owner = st if key is st.key else self._models.owner(key)
        self._store(key, owner, result, settings, now)
        if result.error is not None or self._detector.breakers:
            # Else no evidence for the outage detector: an answer without an error is
            # no transport failure, and there is no breaker to reset.
            self.on_outcome(
                key[0],
                result,
                st.timing[0],
                0.0,
                (target,),
                settings.failure_threshold,
                settings.timeout,
            )
        return result

    def _fresh_until(self, now: float, ttl: float) -> float:
        """``now + ttl``, the same float object for every model answered at ``now``."""
        memo = self._fresh_memo
        if memo[0] is now and memo[1] == ttl:
            return memo[2]
        value = now + ttl
        self._fresh_memo = (now, ttl, value)
        return value

    def submit_batch(
        self, instance: BatchStrategy, members: list[ModelState]
    ) -> list[asyncio.Future[CheckResult]]:
        """One ``acheck_many`` for ``members``; returns each member's shared future."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[CheckResult]] = []
        own: dict[Key, tuple[MonitorSettings, asyncio.Future[CheckResult]]] = {}
        deadline = timeout = 0.0
        priority = math.inf
        threshold = 1
        for st in members:
            existing = self.shared.get(st.key)
            if existing is None:
                existing = loop.create_future()
                self.shared[st.key] = existing
                own[st.key] = (st.settings, existing)
                deadline = max(deadline, st.deadline)
                timeout = max(timeout, st.settings.timeout)
                priority = min(priority, self._priority(st.key, st))
                threshold = max(threshold, st.settings.failure_threshold)
            futures.append(existing)
        if not own:
            return futures
        targets = [key[1] for key in own]
        name = members[0].config.check.strategy
        spec_id = members[0].key[0]

        def done(job: Job, value: Any, error: BaseException | None) -> None:
            results = [
                _unless_starved(self._redact(r), job)
                for r in _batch_results(name, targets, value, error, job.timed_out, deadline)
            ]
            for (key, (settings, fut)), result in zip(own.items(), results, strict=True):
                if not result.latency:
                    result = attrs.evolve(result, latency=job.elapsed)
                self.settle(key, fut, result, settings)
            if isinstance(value, Mapping) and len(value) > len(targets):
                self._note_reported(value)
            # One upstream call is one piece of evidence, however many targets it answered.
            failed = [r for r in results if is_transport_failure(r)]
            evidence = failed[0] if failed else results[0]
            self.on_outcome(
                spec_id, evidence, job.deadline, job.starved, targets, threshold, timeout
            )

        self._counts["batches"] += 1
        self._counts["batched_targets"] += len(targets)
        self.runner.submit(
            Job(
                strategy=name,
                deadline=deadline,
                make=lambda: instance.acheck_many(targets),
                done=done,
                targets=len(targets),
                batch=True,
                keys=tuple(own),
                priority=priority,
                spec=spec_id,
                cap=concurrency_of(instance),
            )
        )
        return futures

    # -- on demand -------------------------------------------------------------------------

    def refresh(self, st: ModelState, key: Key) -> None:
        """Start a background check of ``key`` unless one runs (or may not run) now."""
        if self._closed() or key in self.shared:
            return
        if not st.owns(key) and not self.admit_target(key, asyncio.get_running_loop().time()):
            self._counts["refused_targets"] += 1
            return
        if not self._detector.may_start(key[0]):
            return
        try:
            instance = self._instance(st.name)
        except KeyError:
            return
        if self.try_inline(key, instance, st) is None:
            self.submit_single(key, instance, st)

    async def wait(self, fut: asyncio.Future[CheckResult], st: ModelState, key: Key) -> CheckResult:
        """Await a shared check for at most its deadline; then answer what is known."""
        if not fut.done():
            # Shielded: a caller that goes away (a closed HTTP request) must not
            # cancel the check the other callers are waiting for.
            with contextlib.suppress(asyncio.TimeoutError):
                return await asyncio.wait_for(asyncio.shield(fut), st.deadline + _WAIT_GRACE)
        if fut.done():
            return fut.result()
        where = "still running"
        if self.runner.is_queued(key):
            try:
                cap = concurrency_of(self._instance(st.name))
            except KeyError:
                cap = None
            at_once = f"; at most {cap} at once on this instance" if cap is not None else ""
            where = (
                f"waiting for a budget slot ({self.runner.queued} checks queued, "
                f"max_in_flight {self.runner.max_in_flight}{at_once})"
            )
        return self.known(st, key, f"no answer within {st.deadline:g}s: the check is {where}")

    def known(self, st: ModelState, key: Key, why: str) -> CheckResult:
        """The known result of ``key`` if it is not stale, else ``unknown`` saying ``why``."""
        if st.owns(key):
            if st.last is not None and not st.is_stale(time.monotonic()):
                return st.last
        else:
            cached = self.cache.get(key)
            if cached is not None and cached.stale > asyncio.get_running_loop().time():
                return cached.result
        breaker = self._detector.get(key[0])
        if breaker is not None and breaker.down and breaker.proof is not None:
            return outage_result(st.config.check.strategy, key[1], breaker)
        return CheckResult(
            status=Status.UNKNOWN, strategy=st.config.check.strategy, target=key[1], detail=why
        )

    # -- results ---------------------------------------------------------------------------

    def settle(
        self,
        key: Key,
        fut: asyncio.Future[CheckResult],
        result: CheckResult,
        settings: MonitorSettings,
    ) -> None:
        """Cache a finished check, let its model observe it (once), then wake the callers."""
        current = self.shared.pop(key, None)  # one hash of the key, not two
        if current is not fut and current is not None:
            self.shared[key] = current  # another check of the key: not this one's to end
        now = self._settled_at(asyncio.get_running_loop().time(), settings.cache_ttl)
        self._store(key, self._models.owner(key), result, settings, now)
        if not fut.done():
            fut.set_result(result)

    def _settled_at(self, now: float, ttl: float) -> float:
        """The loop time a result settled at ``now`` is observed at.

        The time of the previous settled result when that is at most
        :data:`_SAME_TIME` (and 1 % of ``ttl``) earlier, else ``now``: results that end
        close together share the float objects of their ``observed`` and
        ``fresh_until`` (48 bytes a model, ten thousand checks ending a few
        milliseconds apart). Never a later time: a result can only look that much
        older than it is, so it is revalidated and goes stale that much sooner.
        """
        last = self._settled
        if 0.0 <= now - last <= min(_SAME_TIME, 0.01 * ttl):
            return last
        self._settled = now
        return now

    def _store(
        self,
        key: Key,
        st: ModelState | None,
        result: CheckResult,
        settings: MonitorSettings,
        now: float,
    ) -> None:
        if st is not None and st.owns(key):
            # The model's own target: its last result is its cache entry.
            self._models.observe(st, result, now)
            st.fresh_until = self._fresh_until(now, settings.cache_ttl)
        elif st is not None:
            # Kept past cache_ttl, until max_stale: readiness answers revalidate it.
            self.cache[key] = Cached(
                result=result,
                expires=now + settings.cache_ttl,
                stale=now + st.stale_after,
                at=time.monotonic(),
            )
            if len(self.cache) > 1024:
                self.prune(now)

    def shed(self, spec_id: int, answer: Callable[[str, Target], CheckResult]) -> None:
        """Answer the instance's queued checks with ``answer(strategy, target)``, unrun.

        A thousand queued checks of a hung upstream would hold the budget for a
        thousand timeouts, and keep the half-open probe (and every other
        instance's checks) waiting behind them.
        """
        loop = asyncio.get_running_loop()
        for job in self.runner.shed(spec_id):
            for key in job.keys:
                fut = self.shared.get(key)
                model = key[1].model
                st = self._models.states.get(model) if model is not None else None
                if fut is not None and st is not None:
                    self.settle(key, fut, answer(job.strategy, key[1]), st.settings)
            if job.probe is not None and self.probe_ended is not None:
                # Next step, as a callback on its future would run: the verdict that
                # sheds it (a trip) marks the models down first, and the interval to
                # the next probe depends on that.
                loop.call_soon(self.probe_ended, job.probe, job.tick, False)

    def prune(self, now: float) -> None:
        live = self._models.spec_models
        for key in [k for k, c in self.cache.items() if c.stale <= now or k[0] not in live]:
            del self.cache[key]

    def fail_all(self, error: BaseException) -> None:
        """The monitor closed: every caller still waiting gets ``error``."""
        for fut in self.shared.values():
            if not fut.done():
                fut.set_exception(error)
                fut.exception()  # retrieved: nobody may be waiting for it
        self.shared.clear()
