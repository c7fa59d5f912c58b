"""The checker's own liveness: a loop-stall watchdog and the monitor's progress.

A health checker that cannot do its job must say so on ``/livez`` (and gRPC
liveness), so Kubernetes restarts it. Two things stop it:

* **A blocked event loop.** Every probe, every answer and every timer runs on one
  loop; a check that blocks it (``time.sleep`` in a plugin, a CPU-bound parse)
  freezes all of them. Nothing *in* the loop can notice, so :class:`LoopWatchdog`
  keeps a daemon thread outside it: the loop heartbeats (a ``call_later`` chain),
  the thread notices a missed heartbeat and names what the loop was running.
* **No progress.** Probes are due, yet no upstream call has finished for several
  periods: the scheduler or the in-flight budget is wedged.

Naming the culprit from the watchdog thread: ``asyncio.current_task(loop)``
read from another thread (a dict lookup under the GIL in CPython 3.11-3.13; a
supported cross-thread call from 3.14) gives the task the loop is stepping. The
monitor names its check tasks ``healthkit check <strategy> <model>`` (and
``healthkit batch <strategy> (N models)``), so that names the strategy and the
model. ``sys._current_frames()`` of the loop's thread adds the file, line and
function it is stuck in; it works even when the loop blocks outside any task.
A loop blocked inside C code that holds the GIL keeps the thread from running:
the stall is then seen by the heartbeat once the loop is back, without a culprit.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from ._guard import deadline_for

if TYPE_CHECKING:
    from ._config import ServerConfig
    from ._monitor import Monitor

__all__ = ["Liveness", "LivenessReport", "LoopWatchdog", "Stall"]

log = logging.getLogger("healthkit.watchdog")

#: Defaults of :class:`Liveness` (and of ``create_app`` and ``healthkit serve``).
DEFAULT_STALL_LIMIT = 5.0
DEFAULT_PROGRESS_PERIODS = 3.0
DEFAULT_STALL_MEMORY = 60.0

_CHECK_TASK = "healthkit check "
_BATCH_TASK = "healthkit batch "


@attrs.frozen(kw_only=True)
class Stall:
    """The event loop was (or is) blocked for ``seconds``, running ``task``."""

    #: How long the loop was blocked; while it lasts, how long so far.
    seconds: float
    #: The limit it went over.
    limit: float
    #: Name of the asyncio task the loop was stepping, if any.
    task: str | None = None
    #: The check's strategy and model, when the task is a monitor check.
    strategy: str | None = None
    model: str | None = None
    #: ``file:line in function`` of the loop thread's innermost frame.
    where: str | None = None
    #: ``time.monotonic()`` when the loop came back; ``None`` while it is still blocked.
    ended: float | None = None

    def culprit(self) -> str:
        """What the loop was running, in words."""
        if self.strategy is not None and self.model is not None:
            what = f"check {self.strategy!r} of model {self.model!r}"
        elif self.strategy is not None:
            what = f"batch check {self.strategy!r} ({self.task})"
        elif self.task is not None:
            what = f"task {self.task!r}"
        else:
            what = "no asyncio task (a callback)" if self.where else "unknown code"
        return f"{what} at {self.where}" if self.where else what

    def describe(self, *, details: bool = True) -> str:
        state = "is blocked for" if self.ended is None else "was blocked for"
        text = f"event loop {state} {self.seconds:.1f}s (limit {self.limit:g}s)"
        if details:
            text += f" running {self.culprit()}"
        return text


@attrs.frozen(kw_only=True)
class LivenessReport:
    """Whether the checker can do its job; ``reason`` says why not."""

    live: bool
    reason: str | None = None
    stall: Stall | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.live:
            return {"live": True}
        return {"live": False, "reason": self.reason}


def _task_parts(name: str | None) -> tuple[str | None, str | None]:
    """(strategy, model) from a monitor check task's name."""
    if name is None:
        return None, None
    if name.startswith(_CHECK_TASK):
        strategy, _, model = name[len(_CHECK_TASK) :].partition(" ")
        return strategy or None, model or None
    if name.startswith(_BATCH_TASK):
        strategy = name[len(_BATCH_TASK) :].partition(" ")[0]
        return strategy or None, None
    return None, None


class LoopWatchdog:
    """A daemon thread that notices when the event loop misses its heartbeat.

    :meth:`start` (in the loop) schedules a heartbeat every ``interval`` seconds
    and starts the thread; :meth:`stop` ends both. The thread never keeps the
    process alive (daemon) and ends by itself when the loop is closed.
    """

    def __init__(
        self,
        *,
        stall_limit: float,
        interval: float | None = None,
        alive: Callable[[], bool] | None = None,
    ) -> None:
        if not stall_limit > 0:
            raise ValueError(f"stall_limit must be > 0, got {stall_limit!r}")
        self.stall_limit = stall_limit
        #: Heartbeat and watch interval: small against the limit, never busy.
        self.interval = interval if interval is not None else min(0.25, stall_limit / 4)
        #: Watch only while this says so (e.g. while the monitor is not closed).
        self._alive = alive
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._last_beat = 0.0
        #: The stall the thread saw while it lasted (with its culprit).
        self._current: Stall | None = None
        self._last: Stall | None = None
        #: Stalls seen since start (for tests and metrics).
        self.stalls = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start heartbeating in the running loop and watching from a thread; idempotent."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stop.clear()
        self._last_beat = time.monotonic()
        self._handle = self._loop.call_later(self.interval, self._beat)
        self._thread = threading.Thread(target=self._watch, name="healthkit-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the heartbeat and the thread; idempotent."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=max(1.0, 2 * self.interval))

    # -- stalls -----------------------------------------------------------------------

    def current_stall(self) -> Stall | None:
        """The stall going on now, as the thread sees it (``None`` when the loop runs)."""
        with self._lock:
            return self._current

    def last_stall(self) -> Stall | None:
        """The most recent stall that ended."""
        with self._lock:
            return self._last

    # -- the loop's side --------------------------------------------------------------

    def _beat(self) -> None:
        now = time.monotonic()
        with self._lock:
            blocked = now - self._last_beat - self.interval
            self._last_beat = now
            seen, self._current = self._current, None
        if blocked > self.stall_limit:
            if seen is None:
                # The thread had no chance to look (the GIL was held, or it just missed it).
                seen = Stall(seconds=blocked, limit=self.stall_limit)
                log.warning("%s", seen.describe())
            else:
                log.info("event loop running again after %.1fs blocked", blocked)
            with self._lock:
                self._last = attrs.evolve(seen, seconds=blocked, ended=now)
                self.stalls += 1
        loop = self._loop
        if loop is not None and self._thread is not None and not self._stop.is_set():
            self._handle = loop.call_later(self.interval, self._beat)

    # -- the thread's side ------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            loop = self._loop
            if loop is None or loop.is_closed() or (self._alive is not None and not self._alive()):
                self._stop.set()  # the heartbeat ends with it
                return
            if not loop.is_running():
                continue  # stopped between two runs: nothing is blocked
            with self._lock:
                blocked = time.monotonic() - self._last_beat - self.interval
                noticed = self._current is not None
            if blocked <= self.stall_limit or noticed:
                continue
            stall = self._culprit(loop, blocked)
            with self._lock:
                if self._last_beat + self.interval + self.stall_limit > time.monotonic():
                    continue  # the loop came back meanwhile
                self._current = stall
            log.warning("%s", stall.describe())

    def _culprit(self, loop: asyncio.AbstractEventLoop, blocked: float) -> Stall:
        name: str | None = None
        try:
            task = asyncio.current_task(loop)
        except Exception:  # a loop implementation that does not allow it
            task = None
        if task is not None:
            name = task.get_name()
        strategy, model = _task_parts(name)
        where: str | None = None
        frame = sys._current_frames().get(self._loop_thread or -1)
        if frame is not None:
            code = frame.f_code
            where = f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"
        return Stall(
            seconds=blocked,
            limit=self.stall_limit,
            task=name,
            strategy=strategy,
            model=model,
            where=where,
        )


class Liveness:
    """Whether the checker over ``monitor`` can do its job (``/livez``, gRPC liveness).

    Not live when:

    * the monitor is not running (closed, or its scheduler ended);
    * the event loop is blocked longer than ``stall_limit`` seconds, and for
      ``stall_memory`` seconds after such a stall ended (long enough for a
      Kubernetes liveness probe to see it; while the loop is blocked nothing on
      it answers at all);
    * probes are due, yet no check has completed for ``progress_periods`` x
      (the shortest period + its check deadline) of the configured models.

    ``stall_limit=None`` turns the watchdog off; ``progress_periods=None`` the
    progress rule. :meth:`start` and :meth:`aclose` run in the monitor's loop.
    """

    def __init__(
        self,
        monitor: Monitor,
        *,
        stall_limit: float | None = DEFAULT_STALL_LIMIT,
        progress_periods: float | None = DEFAULT_PROGRESS_PERIODS,
        stall_memory: float = DEFAULT_STALL_MEMORY,
    ) -> None:
        if stall_limit is not None and not stall_limit > 0:
            raise ValueError(f"stall_limit must be > 0 or None, got {stall_limit!r}")
        if progress_periods is not None and not progress_periods > 0:
            raise ValueError(f"progress_periods must be > 0 or None, got {progress_periods!r}")
        if not stall_memory >= 0:
            raise ValueError(f"stall_memory must be >= 0, got {stall_memory!r}")
        self.monitor = monitor
        self.stall_limit = stall_limit
        self.progress_periods = progress_periods
        self.stall_memory = stall_memory
        self.watchdog = (
            LoopWatchdog(stall_limit=stall_limit, alive=lambda: not monitor.closed)
            if stall_limit
            else None
        )
        self._window: tuple[ServerConfig, float] | None = None

    async def start(self) -> None:
        """Start the watchdog in the running loop; idempotent."""
        if self.watchdog is not None:
            self.watchdog.start()

    async def aclose(self) -> None:
        """Stop the watchdog thread; idempotent."""
        if self.watchdog is not None:
            self.watchdog.stop()

    def progress_window(self) -> float | None:
        """Seconds without a completed check (while probes are due) after which not live."""
        if self.progress_periods is None:
            return None
        config = self.monitor.kit.config
        if self._window is None or self._window[0] is not config:
            shortest = min(
                (
                    mc.monitor.period + deadline_for(mc.check, mc.monitor)
                    for mc in config.models.values()
                ),
                default=math.inf,
            )
            self._window = (config, self.progress_periods * shortest)
        return self._window[1]

    def check(self, *, details: bool = True) -> LivenessReport:
        """Live or not, and why; from memory, in the monitor's loop.

        ``details=False`` keeps strategy and model names out of the reason.
        """
        monitor = self.monitor
        if not monitor.is_live():
            state = "closed" if monitor.closed else "not running"
            return LivenessReport(live=False, reason=f"the health monitor is {state}")
        stall = self._recent_stall()
        if stall is not None:
            return LivenessReport(live=False, reason=stall.describe(details=details), stall=stall)
        window = self.progress_window()
        if window is not None and math.isfinite(window):
            idle = asyncio.get_running_loop().time() - monitor.last_progress
            if idle > window:
                late = monitor.overdue()
                if late:
                    return LivenessReport(
                        live=False,
                        reason=(
                            f"no check has completed for {idle:.1f}s while {late} model(s)"
                            f" were due (limit {window:g}s)"
                        ),
                    )
        return LivenessReport(live=True)

    def _recent_stall(self) -> Stall | None:
        watchdog = self.watchdog
        if watchdog is None:
            return None
        current = watchdog.current_stall()
        if current is not None:
            return current
        last = watchdog.last_stall()
        ended = None if last is None else last.ended
        if ended is not None and time.monotonic() - ended <= self.stall_memory:
            return last
        return None
