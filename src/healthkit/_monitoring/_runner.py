"""Upstream calls under one in-flight budget, each with a hard deadline.

The runner is callback-driven (a task per check, a timer per deadline, no
coroutine waiting on either) because ten thousand models at a ten-second period
mean a thousand checks a second, and the event loop's time is the budget.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import logging
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any

import attrs

from .._guard import raised_result, returned_result
from ._models import Key
from ._records import CheckEvent, CheckListener

__all__ = ["Job", "LoopLag", "Runner"]

log = logging.getLogger("healthkit.monitor")

#: Seconds between heartbeats of the loop-lag measure (only while checks run).
_LAG_INTERVAL = 0.025
#: Lateness of one heartbeat that is ordinary work of a busy loop, not starvation.
_LAG_TOLERANCE = 0.01


class LoopLag:
    """Seconds the event loop could not run callbacks on time, summed.

    A heartbeat timer measures how late it fires; lateness beyond a busy loop's
    ordinary delay is starvation (a blocking call, a CPU-bound step, a process
    the OS does not schedule). It runs only while ``busy()`` holds.
    """

    def __init__(self, busy: Callable[[], bool]) -> None:
        self._busy = busy
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._when = 0.0
        self._total = 0.0

    def total(self) -> float:
        """Starved seconds so far, including a heartbeat that is late right now."""
        if self._handle is None or self._loop is None:
            return self._total
        late = self._loop.time() - self._when - _LAG_TOLERANCE
        return self._total + late if late > 0 else self._total

    def ensure(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._handle is None:
            self._loop = loop
            self._when = loop.time() + _LAG_INTERVAL
            self._handle = loop.call_at(self._when, self._beat)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _beat(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        late = now - self._when - _LAG_TOLERANCE
        if late > 0:
            self._total += late
        if not self._busy():
            self._handle = None
            return
        self._when = now + _LAG_INTERVAL
        self._handle = self._loop.call_at(self._when, self._beat)


@attrs.define(eq=False)
class Job:
    """One upstream call (a check, or a batch of them) for the runner."""

    strategy: str
    deadline: float
    #: Creates the coroutine to run; called when the budget allows. ``None``: a single
    #: check, ``guarded_check(instance, strategy, keys[0][1])``.
    make: Callable[[], Coroutine[Any, Any, Any]] | None
    #: ``done(job, value, error)``, called exactly once; ``job`` says how it went.
    done: Callable[[Job, Any, BaseException | None], None]
    targets: int = 1
    batch: bool = False
    #: The model checked (single checks); names the task for a loop-stall watchdog.
    model: str | None = None
    #: The keys the job answers (for :meth:`Monitor.overdue` and fallbacks while queued).
    keys: tuple[Key, ...] = ()
    #: Queue order when the budget is short: the oldest result first.
    priority: float = -math.inf
    #: The strategy instance (spec id) the job checks.
    spec: int = 0
    finished: bool = False
    #: How it went, set before ``done`` runs: cut at the deadline, seconds it ran,
    #: and seconds of it during which the event loop was starved.
    timed_out: bool = False
    elapsed: float = 0.0
    starved: float = 0.0
    _started: float = 0.0
    _lag_at_start: float = 0.0
    #: A single check's instance, settings, shared future and half-open probe.
    instance: Any = None
    settings: Any = None
    future: asyncio.Future[Any] | None = None
    breaker: Any = None
    #: The model whose background probe this check is, and the loop time the probe
    #: started: the job's end reschedules it (no callback on the future per probe).
    probe: Any = None
    tick: float = 0.0
    #: At most this many jobs of its instance (``spec``) run at once (its connections;
    #: ``healthkit._strategy.CONCURRENCY``); ``None``: no limit of its own.
    cap: int | None = None
    task: asyncio.Future[Any] = attrs.field(init=False)

    def model_name(self) -> str | None:
        """The model checked (a single check), ``None`` for a batch."""
        if self.model is not None or self.batch or not self.keys:
            return self.model
        return str(self.keys[0][1])


class Runner:
    """Runs :class:`Job` s, at most ``max_in_flight`` at once, oldest result first."""

    def __init__(self, max_in_flight: int, counts: collections.Counter[str]) -> None:
        self.max_in_flight = max_in_flight
        self._counts = counts
        # A heap: oldest result first when the budget is short, so no model starves.
        self._queue: list[tuple[float, int, Job]] = []
        self._queued_keys: set[Key] = set()
        #: Background probes (``Job.probe``) among the queued jobs.
        self._queued_probes = 0
        self._running: set[Job] = set()
        #: Running jobs per instance (spec id), of instances with a ``cap``.
        self._busy: collections.Counter[int] = collections.Counter()
        #: Jobs whose instance runs its ``cap`` already, per spec id: heaps like ``_queue``.
        #: They wait here, not inside the strategy, so their deadline has not started,
        #: and they take no slot of the budget from other instances' checks.
        self._blocked: dict[int, list[tuple[float, int, Job]]] = {}
        #: ``(loop time, seq, job)`` of each running job's deadline, earliest first, and
        #: one timer (``_cutter``) for the earliest of them: a timer of its own per check
        #: cost a timer handle, a push into the loop's heap (compared in Python) and a
        #: cancellation per probe. Finished jobs stay until they reach the top or until
        #: they are half of it (``_finished``: how many there are).
        self._deadlines: list[tuple[float, int, Job]] = []
        self._finished = 0
        self._cutter: asyncio.TimerHandle | None = None
        self._cut_at = math.inf
        self._abandoned: set[asyncio.Future[Any]] = set()
        self._seq = itertools.count()
        self._closed = False
        self.listeners: list[CheckListener] = []
        #: Called once (then cleared) when the runner has :meth:`room` again: the
        #: scheduler sets it while it holds probes back (see ``Scheduler._held``).
        self.on_room: Callable[[], object] | None = None
        #: Loop time when the last call finished (``-inf`` before any).
        self.last_progress = -math.inf
        self.lag = LoopLag(lambda: bool(self._running))

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def queued(self) -> int:
        return len(self._queue) + sum(len(heap) for heap in self._blocked.values())

    def is_queued(self, key: Key) -> bool:
        return key in self._queued_keys

    def room(self) -> int:
        """Background probes that may still queue: the budget's size, less those queued.

        Up to that many wait in the queue and compete with on-demand checks by
        priority (oldest result first), so on-demand checks that keep the budget busy
        never starve them; beyond it the scheduler holds probes back rather than build
        a job and a future per model (ten thousand models due at once made ten
        thousand of each, about 500 bytes a model of high-water memory).
        """
        return self.max_in_flight - self._queued_probes

    def submit(self, job: Job) -> None:
        if not self._has_room(job):
            self._hold(job, self._blocked.setdefault(job.spec, []))
        elif len(self._running) < self.max_in_flight:
            self._launch(job)
        else:
            self._hold(job, self._queue)

    def _has_room(self, job: Job) -> bool:
        """Whether ``job``'s instance runs fewer than its ``cap`` (if any) jobs now."""
        return job.cap is None or self._busy[job.spec] < job.cap

    def _hold(self, job: Job, heap: list[tuple[float, int, Job]]) -> None:
        heapq.heappush(heap, (job.priority, next(self._seq), job))
        self._queued_keys.update(job.keys)
        if job.probe is not None:
            self._queued_probes += 1

    def _take(self, heap: list[tuple[float, int, Job]]) -> Job:
        job = heapq.heappop(heap)[2]
        if job.probe is not None:
            self._queued_probes -= 1
        return job

    def shed(self, spec_id: int) -> list[Job]:
        """Take the instance's queued jobs out of the queue, unrun (``done`` not called)."""
        blocked = [item[2] for item in self._blocked.pop(spec_id, [])]
        queued = [item[2] for item in self._queue if item[2].spec == spec_id]
        if not blocked and not queued:
            return []
        if queued:
            keep = [item for item in self._queue if item[2].spec != spec_id]
            heapq.heapify(keep)
            self._queue = keep
        shed = queued + blocked
        for job in shed:
            job.finished = True
            self._queued_keys.difference_update(job.keys)
            if job.probe is not None:
                self._queued_probes -= 1
        self._room_freed()
        return shed

    def stop_launching(self) -> None:
        """Launch nothing more from the queue (the monitor is closing)."""
        self._closed = True

    def close(self) -> None:
        """Drop the queue and abandon the running jobs (their ``done`` is not called)."""
        self._closed = True
        self.on_room = None
        self._queue.clear()
        self._blocked.clear()
        self._queued_keys.clear()
        self._queued_probes = 0
        for job in list(self._running):
            job.finished = True
            self._abandon(job.task)
        self._running.clear()
        self._busy.clear()
        self._deadlines.clear()
        self._finished = 0
        if self._cutter is not None:
            self._cutter.cancel()
            self._cutter = None
            self._cut_at = math.inf
        self.lag.stop()

    async def wait_abandoned(self, grace: float) -> int:
        """Give abandoned checks ``grace`` seconds to end; how many are still running."""
        if not self._abandoned:
            return 0
        _, still = await asyncio.wait(list(self._abandoned), timeout=grace)
        return len(still)

    def ran_inline(self, strategy: str, target: object, elapsed: float, now: float) -> None:
        """Account for a check that answered without suspending: it took no budget
        slot, no task and no deadline timer, but it is a check like any other."""
        self._counts["checks"] += 1
        self.last_progress = now
        if self.listeners:
            event = CheckEvent(
                strategy=strategy, model=str(target), seconds=elapsed, targets=1, batch=False
            )
            self._notify(event)

    def _launch(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        if self._queued_keys:
            self._queued_keys.difference_update(job.keys)
        self._counts["checks"] += 1
        if job.cap is not None:
            self._busy[job.spec] += 1
        self.lag.ensure(loop)
        job._lag_at_start = self.lag.total()
        job._started = time.perf_counter()
        # The deadline starts when the check does, not while it queued for the budget.
        at = loop.time() + job.deadline
        heapq.heappush(self._deadlines, (at, next(self._seq), job))
        if at < self._cut_at:
            self._arm(loop, at)
        self._running.add(job)
        if job.batch:
            task_name = f"healthkit batch {job.strategy} ({job.targets} models)"
        else:
            task_name = f"healthkit check {job.strategy} {job.model_name()}"
        job.task = loop.create_task(self._run(job), name=task_name)

    async def _run(self, job: Job) -> None:
        """The check's task: finishes its job inline, in the step the check ends."""
        try:
            if job.make is None:
                # guarded_check without a cap (the timer cuts it), in this coroutine:
                # one coroutine less per probe.
                target = job.keys[0][1]
                began = time.perf_counter()
                try:
                    answer = await job.instance.acheck(target)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    value = raised_result(job.strategy, target, exc, time.perf_counter() - began)
                else:
                    elapsed = time.perf_counter() - began
                    value = returned_result(job.strategy, target, answer, elapsed)
            else:
                value = await job.make()
        except asyncio.CancelledError:
            if not job.finished:
                self._end(job, None, asyncio.CancelledError("check was cancelled"))
            raise
        except Exception as exc:  # a strategy not async, or failing outside guarded_check
            if not job.finished:
                self._end(job, None, exc)
            return
        if not job.finished:  # else cut by its deadline, or the monitor closed: answered
            self._end(job, value, None)

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._cutter is not None:
            self._cutter.cancel()
        self._cut_at = at
        self._cutter = loop.call_at(at, self._cut, at)

    def _cut(self, at: float) -> None:
        """The cutter's timer (set for loop time ``at``): cut every job past its deadline."""
        self._cutter = None
        self._cut_at = math.inf
        loop = asyncio.get_running_loop()
        # The loop runs a timer up to its clock's resolution early: ``at`` itself is due.
        limit = max(loop.time(), at)
        heap = self._deadlines
        try:
            while heap:
                when, _, job = heap[0]
                if job.finished:
                    heapq.heappop(heap)
                    self._finished -= 1
                    continue
                if when > limit:
                    break
                heapq.heappop(heap)
                self._expire(job)
        finally:
            # Armed again for the earliest job still running, even if a cut failed:
            # no check is ever left without its deadline.
            while heap and heap[0][2].finished:
                heapq.heappop(heap)
                self._finished -= 1
            if heap and heap[0][0] < self._cut_at:
                self._arm(loop, heap[0][0])

    def _expire(self, job: Job) -> None:
        if job.finished:
            return
        self._counts["timeouts"] += 1
        self._abandon(job.task)
        job.timed_out = True
        self._end(job, None, None)

    def _abandon(self, task: asyncio.Future[Any]) -> None:
        # Not awaited: a check that swallows cancellation must not hold the monitor.
        task.cancel()
        if not task.done():
            self._abandoned.add(task)
            task.add_done_callback(self._abandoned.discard)

    def _end(self, job: Job, value: Any, error: BaseException | None) -> None:
        job.finished = True
        self._running.discard(job)
        if job.cap is not None:
            left = self._busy[job.spec] - 1
            if left > 0:
                self._busy[job.spec] = left
            else:
                del self._busy[job.spec]
        if not job.timed_out:  # a cut job already left the deadline heap
            self._finished += 1
            if self._finished > 64 and 2 * self._finished > len(self._deadlines):
                # Finished jobs held past their end: drop them (amortized, in one pass).
                # In place: a cut in progress holds the list.
                self._deadlines[:] = [item for item in self._deadlines if not item[2].finished]
                heapq.heapify(self._deadlines)
                self._finished = 0
        job.elapsed = time.perf_counter() - job._started
        job.starved = self.lag.total() - job._lag_at_start
        self._after_call(job)
        try:
            job.done(job, value, error)
        except Exception:
            log.exception("finishing a %r check failed", job.strategy)
        if not self._closed:
            self._launch_queued(job.spec)
        self._room_freed()

    def _launch_queued(self, spec_id: int) -> None:
        """Launch what a job of ``spec_id`` just made room for: a job of its own instance
        that waited for it first, then the budget's queue in order."""
        self._launch_blocked(spec_id)
        while self._queue and len(self._running) < self.max_in_flight:
            queued = self._take(self._queue)
            if self._has_room(queued):
                self._launch(queued)
            else:  # its instance filled up while it queued: it waits for that instead
                self._hold(queued, self._blocked.setdefault(queued.spec, []))
        if self._blocked and len(self._running) < self.max_in_flight:
            # Any instance with room again: none is left waiting with nothing running.
            for other in list(self._blocked):
                self._launch_blocked(other)

    def _launch_blocked(self, spec_id: int) -> None:
        blocked = self._blocked.get(spec_id)
        if blocked is None:
            return
        while blocked and len(self._running) < self.max_in_flight and self._has_room(blocked[0][2]):
            self._launch(self._take(blocked))
        if not blocked:
            del self._blocked[spec_id]

    def _room_freed(self) -> None:
        """Call :attr:`on_room` once half the budget's room is free again.

        Half at a time: a scheduler tick per check that ends would cost more than the
        checks, and the queue still never runs dry.
        """
        if (
            self.on_room is not None
            and not self._closed
            and self.room() >= max(1, self.max_in_flight // 2)
        ):
            wake, self.on_room = self.on_room, None
            wake()

    def _after_call(self, job: Job) -> None:
        self.last_progress = asyncio.get_running_loop().time()
        if not self.listeners:
            return
        self._notify(
            CheckEvent(
                strategy=job.strategy,
                model=job.model_name(),
                seconds=job.elapsed,
                targets=job.targets,
                batch=job.batch,
            )
        )

    def _notify(self, event: CheckEvent) -> None:
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                log.exception("check listener %r failed", listener)
