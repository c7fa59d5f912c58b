"""Background probing: a heap of due times, jitter, batch grouping and parking.

One scheduler task sleeps until the earliest due time. When models come due it
submits one check per model, or one batch check per shared
:class:`~healthkit.BatchStrategy` instance; models of an instance whose upstream
is marked down are parked while its half-open probe runs.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import heapq
import logging
import math
import random
from collections.abc import Callable, Iterable

from .._monitor_settings import MonitorSettings
from .._result import CheckResult
from .._strategy import BatchStrategy, Strategy
from ._checks import ANSWERS_INLINE, Checks, declared_for_acheck
from ._models import Models, ModelState, Probe
from ._outage import OutageDetector, is_starved

__all__ = ["Scheduler"]

log = logging.getLogger("healthkit.monitor")

#: Models due within this many seconds of each other start in the same scheduler tick.
_TICK = 0.002
#: A model may also start up to 1 % of its period early (at most 100 ms) to join a tick:
#: at ten thousand models, ticks of one or two probes each cost more than the probes.
_EARLY_SHARE = 0.01
_EARLY_MAX = 0.1
#: Recent probe lateness samples kept for :meth:`Monitor.stats`.
_LATENESS_SAMPLES = 10_000

#: How a strategy instance checks (decided once per instance): one call for many
#: targets, inline without suspending (see ``_checks.ANSWERS_INLINE``), or a task.
_BATCH, _INLINE, _TASK = 0, 1, 2


def _kind_of(instance: Strategy) -> int:
    if isinstance(instance, BatchStrategy):
        return _BATCH
    if declared_for_acheck(type(instance), ANSWERS_INLINE):
        return _INLINE
    return _TASK


class Scheduler:
    """When each model is probed next, and the task that probes them on time."""

    def __init__(
        self,
        *,
        models: Models,
        checks: Checks,
        detector: OutageDetector,
        instance: Callable[[str], Strategy],
        running: Callable[[], bool],
        seed: int | None,
    ) -> None:
        self._models = models
        self._checks = checks
        self._detector = detector
        self._instance_of = instance
        self._running = running
        self._random = random.Random(seed)
        #: ``(due, model name)``: an entry is live while that model's state has ``due``
        #: still (rescheduling pushes anew, never edits in place). A name, not the state:
        #: a tuple of a float and a string is untracked by the garbage collector at its
        #: first young collection, where one holding the state stays tracked, and a
        #: hundred thousand of them in the old generation made each full collection
        #: (several a round at 100,000 models) walk a hundred thousand objects more.
        self._heap: list[tuple[float, str]] = []
        #: Heap entries of models that check in a task of their own, come due while the
        #: runner had no :meth:`~Runner.room`: launched, oldest first, as room frees up
        #: (validated as heap entries are). Still scheduled, so ``Monitor.overdue``
        #: counts them once they are late.
        self._held: collections.deque[tuple[float, str]] = collections.deque()
        #: The future the scheduler sleeps on (``None`` while it runs a tick).
        self._waiter: asyncio.Future[None] | None = None
        self._sleep_until = math.inf
        #: spec id -> how its instance checks: :data:`_BATCH`, :data:`_INLINE` or :data:`_TASK`.
        self._kinds: dict[int, int] = {}
        self.task: asyncio.Task[None] | None = None
        self.lateness: collections.deque[float] = collections.deque(maxlen=_LATENESS_SAMPLES)

    # -- timing ----------------------------------------------------------------------------

    def first_delay(self, settings: MonitorSettings) -> float:
        # Spread the first probes so a restart does not hit the predictor all at once.
        return settings.initial_delay + self._random.uniform(0.0, settings.jitter * settings.period)

    def interval(self, st: ModelState) -> float:
        s = st.config.monitor
        base = s.period
        if s.unhealthy_period is not None and st.failing():
            base = s.unhealthy_period
        return base * (1.0 + s.jitter * (self._random.random() - 0.5))

    def schedule(self, st: ModelState, due: float) -> None:
        st.due = due
        heapq.heappush(self._heap, (due, st.config.name))
        if due < self._sleep_until:
            self._wake()

    def schedule_first(self, states: Iterable[ModelState], loop: asyncio.AbstractEventLoop) -> None:
        """Schedule the first probe of every model in ``states``, spread from now.

        The delays are drawn first and "now" read after them, and the heap is built
        in one pass: pushing 100,000 models one by one took 0.2 s, and every model
        whose first probe fell inside that time started late by up to that much.
        """
        delays = [(self.first_delay(st.settings), st) for st in states]
        now = loop.time()
        heap = self._heap
        for delay, st in delays:
            st.due = due = now + delay
            heap.append((due, st.config.name))
        heapq.heapify(heap)
        self._wake()

    def forget(self, spec_id: int) -> None:
        """The instance is gone (a later equal spec is a new one)."""
        self._kinds.pop(spec_id, None)

    # -- the task --------------------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="healthkit-monitor")

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _sleep(self, loop: asyncio.AbstractEventLoop, until: float) -> None:
        """Sleep until loop time ``until`` (``inf``: until woken) or until :meth:`_wake`.

        A bare future and a timer, not ``asyncio.wait_for(event.wait(), delay)``: on
        Python 3.11 that can swallow a cancellation that races with the event being
        set, and the monitor's ``aclose`` then waited forever for this task.
        """
        waiter = self._waiter = loop.create_future()
        timer = loop.call_at(until, self._wake) if until != math.inf else None
        self._sleep_until = until
        try:
            await waiter
        finally:
            self._sleep_until = -math.inf
            self._waiter = None
            if timer is not None:
                timer.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        runner = self._checks.runner
        while True:
            now = loop.time()
            held = bool(self._held) and runner.room() > 0
            if not held and (not self._heap or self._heap[0][0] > now + _TICK):
                if self._held:  # no room: the runner wakes us when a check ends
                    runner.on_room = self._wake
                await self._sleep(loop, self._heap[0][0] if self._heap else math.inf)
                continue
            try:
                self._launch_due(loop.time())
            except Exception:
                # The monitor never dies: one bad tick is logged and the next one runs.
                log.exception("monitor scheduler tick failed")
            # Let the probes just started (and everything else) run before the next tick.
            await asyncio.sleep(0)

    # -- probing ---------------------------------------------------------------------------

    def _launch_due(self, now: float) -> None:
        due: list[ModelState] = []
        parked: list[ModelState] = []
        shared = self._checks.shared
        states = self._models.states
        detector = self._detector
        # Empty (no instance ever failed) is the common case: no breaker to ask then.
        breakers = detector.breakers
        heap = self._heap
        lateness = self.lateness.append
        until = now + _TICK
        scheduled = Probe.SCHEDULED
        kinds = self._kinds
        room = self._checks.runner.room()
        held = self._held
        while True:
            # Held probes first (the oldest due), while there is room; then the heap.
            task: bool | None
            if held and room > 0:
                when, name = held.popleft()
                st = states.get(name)
                task = True  # only probes that run in a task are held
            elif heap:
                when, name = heap[0]
                st = states.get(name)
                if (
                    when > until
                    and st is not None
                    and st.due == when
                    and st.probe is scheduled
                    and when - now > min(_EARLY_MAX, _EARLY_SHARE * st.config.monitor.period)
                ):
                    break
                heapq.heappop(heap)
                task = None
            else:
                break
            # Stale: the model left, or was rescheduled (or started) since.
            if st is None or st.due != when or st.probe is not scheduled:
                continue
            if task is None:
                kind = kinds.get(st.key[0])
                if kind is None:
                    kind = self._classify(st)
                task = kind == _TASK
                if task and room <= 0:
                    held.append((when, name))  # behind the older ones already held
                    continue
            lateness(now - when if now > when else 0.0)
            if breakers and not detector.may_start(st.key[0]) and st.key not in shared:
                # The upstream is down and a half-open probe is out: wait for its verdict.
                parked.append(st)
                continue
            # ``due`` stays ``when``: while the probe runs it says when it was due.
            st.probe = Probe.RUNNING
            due.append(st)
            if task:
                room -= 1
        for st in parked:
            self.park(st, now)
        if not due:
            return
        groups: dict[int, list[ModelState]] = {}
        instance_of = self._instance_of
        checks = self._checks
        for st in due:
            key = st.key
            spec_id = key[0]
            try:
                instance = instance_of(st.config.name)
            except KeyError:
                self.probe_done(st, now)
                continue
            if breakers and not detector.may_start(spec_id) and key not in shared:
                # Another model of this instance just took the half-open probe.
                self.probe_done(st, now, park=True)
                continue
            kind = kinds.get(spec_id)
            if kind is None:
                kind = kinds[spec_id] = _kind_of(instance)
            if kind == _BATCH and not (breakers and detector.is_down(spec_id)):
                groups.setdefault(spec_id, []).append(st)
            elif kind == _INLINE and not (shared and key in shared):
                # Answers without suspending (noop): checked and rescheduled right here.
                if checks.run_inline(key, instance, st, now) is not None:
                    self.probe_done(st, now, now=now)
                else:
                    checks.submit_single(key, instance, st, probe=now)
            else:
                self._probe(st, instance, now)
        for spec_id, members in groups.items():
            # Members of the group due within half their period come along now:
            # after one round the whole group is probed with one call per period.
            for name in self._models.members(spec_id):
                other = self._models.states[name]
                if not other.probing and other.due - now <= other.settings.period / 2:
                    other.probe = Probe.RUNNING
                    other.due = math.inf
                    members.append(other)
            batch = self._instance(members[0])
            if batch is None:
                for st in members:
                    self.probe_done(st, now)
            elif len(members) == 1:
                self._probe(members[0], batch, now)
            else:
                assert isinstance(batch, BatchStrategy)
                futures = self._checks.submit_batch(batch, members)
                for st, fut in zip(members, futures, strict=True):
                    self._when_done(fut, st, now)

    def _classify(self, st: ModelState) -> int | None:
        """How ``st``'s instance checks (remembered per spec); ``None`` if it has none."""
        instance = self._instance(st)
        if instance is None:
            return None
        kind = self._kinds[st.key[0]] = _kind_of(instance)
        return kind

    def _instance(self, st: ModelState) -> Strategy | None:
        try:
            return self._instance_of(st.name)
        except KeyError:
            return None

    def _probe(self, st: ModelState, instance: Strategy, started: float) -> None:
        """A background probe: join the key's shared check, or start one."""
        shared = self._checks.shared
        fut = shared.get(st.key) if shared else None  # a key's hash is a Python call
        if fut is None:
            if self._checks.try_inline(st.key, instance, st) is not None:
                self.probe_done(st, started, now=started)
            else:
                # Rescheduled by the job's end (no callback on its future).
                self._checks.submit_single(st.key, instance, st, probe=started)
            return
        self._when_done(fut, st, started)

    def _when_done(self, fut: asyncio.Future[CheckResult], st: ModelState, started: float) -> None:
        fut.add_done_callback(functools.partial(self._probe_ended, st, started))

    def _probe_ended(
        self, st: ModelState, started: float, fut: asyncio.Future[CheckResult]
    ) -> None:
        retry = not fut.cancelled() and fut.exception() is None and is_starved(fut.result())
        self.probe_done(st, started, retry)

    def park(self, st: ModelState, now: float) -> None:
        """Hold ``st``'s probe while its upstream is down: the verdict reschedules it.

        It still comes due a period later (and is parked again if the upstream is
        still down), so no model is ever left without a schedule.
        """
        breaker = self._detector.get(st.key[0])
        if breaker is not None and breaker.down:
            breaker.parked.add(st.name)
        self.schedule(st, now + self.interval(st))

    def probe_done(
        self,
        st: ModelState,
        started: float,
        retry: bool = False,
        *,
        park: bool = False,
        now: float | None = None,
    ) -> None:
        """``st``'s probe (started at loop time ``started``) ended; ``now`` if known.

        ``retry``: it brought no evidence (the checker's own loop was starved while it
        ran): the next probe comes a deadline after now if that is sooner than its
        period, so a model is not left without fresh evidence for a whole period.
        """
        probe = st.probe
        again = probe is Probe.RUNNING_THEN_AGAIN
        if probe is not Probe.SCHEDULED:
            # A probe started early (to share a tick) keeps its phase: the next one is
            # a period after it was due (``due`` while it runs; inf: it joined a batch
            # early), not after it started.
            wanted = st.due
            if wanted != math.inf and wanted > started:
                started = wanted
            st.probe = Probe.SCHEDULED
            st.due = math.inf
        if not self._running() or self._models.states.get(st.config.name) is not st:
            return
        if park:
            self.park(st, started)
            return
        if now is None:
            now = asyncio.get_running_loop().time()
        if again:
            self.schedule(st, now)
        elif retry:
            self.schedule(st, min(max(started + self.interval(st), now), now + st.deadline))
        else:
            self.schedule(st, max(started + self.interval(st), now))
