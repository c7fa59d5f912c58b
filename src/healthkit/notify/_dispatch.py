"""From transitions to delivered notifications: filters, min interval, storm grouping, retries.

Everything here runs on the monitor's event loop, but never on the check path:
the transition listener only appends to a list and arms a timer; delivery runs
in one worker task per notifier, each attempt cut at the entry's ``timeout``,
so a dead or slow receiver costs a task that waits, never a probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import attrs

from .._notifier import Notification, NotificationEvent, Notifier, NotifierSpec, event_kind
from ..toolkit import retrying

if TYPE_CHECKING:
    from .._monitor import Monitor, Transition
    from .._registry import StrategyRegistry

__all__ = ["NotifierStats", "Notifications"]

log = logging.getLogger("healthkit.notify")

#: Seconds between two log lines about failed or dropped deliveries of one notifier.
LOG_INTERVAL = 60.0
#: Messages waiting for delivery per notifier; more are dropped (and counted).
QUEUE_SIZE = 1000


@attrs.frozen(kw_only=True)
class _Backoff:
    """The retry settings of one delivery, as :func:`healthkit.toolkit.retrying` reads them."""

    retries: int
    backoff: float = 0.2
    backoff_max: float = 5.0


@attrs.frozen(kw_only=True)
class NotifierStats:
    """Counters of one ``[[notifiers]]`` entry since it started."""

    name: str
    type: str
    #: Messages delivered.
    sent: int
    #: Messages not delivered after every retry.
    failed: int
    #: Messages dropped: the delivery queue was full (a receiver far behind).
    dropped: int
    #: Transitions held back by ``min_interval`` (folded into a later message or skipped).
    suppressed: int


class _Dispatcher:
    def __init__(
        self, spec: NotifierSpec, notifier: Notifier, redact: Callable[[str], str]
    ) -> None:
        self.spec = spec
        self.notifier = notifier
        self._redact = redact
        self._settings = spec.settings
        self._window: list[NotificationEvent] = []
        self._window_timer: asyncio.TimerHandle | None = None
        self._last_sent: dict[str, float] = {}
        self._last_told: dict[str, str] = {}
        self._held: dict[str, tuple[NotificationEvent, int]] = {}
        self._held_timers: dict[str, asyncio.TimerHandle] = {}
        self._queue: asyncio.Queue[Notification] = asyncio.Queue(QUEUE_SIZE)
        self._worker: asyncio.Task[None] | None = None
        self._last_log = -float("inf")
        self.sent = self.failed = self.dropped = self.suppressed = 0

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(
                self._work(), name=f"healthkit notifier {self.spec.name}"
            )

    # -- from transitions to messages (on the loop, cheap) ---------------------

    def on_event(self, event: NotificationEvent) -> None:
        if not self._settings.wants(event.model, event.kind):
            return
        loop = asyncio.get_running_loop()
        interval = self._settings.min_interval
        if interval > 0:
            last = self._last_sent.get(event.model)
            now = loop.time()
            if last is not None and now - last < interval:
                self.suppressed += 1
                held = self._held.get(event.model)
                self._held[event.model] = (event, 0 if held is None else held[1] + 1)
                if event.model not in self._held_timers:
                    self._held_timers[event.model] = loop.call_at(
                        last + interval, self._release, event.model
                    )
                return
            self._last_sent[event.model] = now
        self._emit(event)

    def _release(self, model: str) -> None:
        self._held_timers.pop(model, None)
        held = self._held.pop(model, None)
        if held is None:
            return
        event, folded = held
        if self._last_told.get(model) == event.new:
            return  # it changed and changed back: what was told still holds
        self._last_sent[model] = asyncio.get_running_loop().time()
        self._emit(attrs.evolve(event, suppressed=folded))

    def _emit(self, event: NotificationEvent) -> None:
        self._last_told[event.model] = event.new
        if self._settings.storm_window <= 0:
            self._enqueue(Notification(notifier=self.spec.name, events=(event,)))
            return
        self._window.append(event)
        if self._window_timer is None:
            self._window_timer = asyncio.get_running_loop().call_later(
                self._settings.storm_window, self._close_window
            )

    def _close_window(self) -> None:
        self._window_timer = None
        events, self._window = self._window, []
        if len(events) >= self._settings.storm_threshold:
            self._enqueue(Notification(notifier=self.spec.name, events=tuple(events), storm=True))
            return
        for event in events:
            self._enqueue(Notification(notifier=self.spec.name, events=(event,)))

    def _enqueue(self, notification: Notification) -> None:
        try:
            self._queue.put_nowait(notification)
        except asyncio.QueueFull:
            self.dropped += 1
            self._log_problem(f"delivery queue full, {self.dropped} messages dropped so far")

    # -- delivery (its own task) ------------------------------------------------

    async def _work(self) -> None:
        while True:
            notification = await self._queue.get()
            try:
                await self._deliver(notification)
            finally:
                self._queue.task_done()

    async def _deliver(self, notification: Notification) -> None:
        settings = self._settings
        # The strategies' retry policy: pauses from 0.2 s doubling up to 5 s, plus jitter.
        attempts = retrying(_Backoff(retries=settings.retries), retry=Exception)
        try:
            async for attempt in attempts:
                with attempt:
                    await asyncio.wait_for(self.notifier.send(notification), settings.timeout)
        except Exception as exc:
            self.failed += 1
            reason = (
                f"timed out after {settings.timeout:g}s"
                if isinstance(exc, TimeoutError)
                else f"{type(exc).__name__}: {exc}"
            )
            self._log_problem(
                f"delivery failed after {settings.retries + 1} attempts ({self._redact(reason)}); "
                f"{self.failed} failed so far"
            )
            return
        self.sent += 1

    def _log_problem(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_log >= LOG_INTERVAL:
            self._last_log = now
            log.warning("notifier %r (%s): %s", self.spec.name, self.spec.type, message)

    # -- ending ----------------------------------------------------------------

    def flush_now(self) -> None:
        """Send what waits for its window or its interval now (at shutdown)."""
        for model, handle in list(self._held_timers.items()):
            handle.cancel()
            self._release(model)
        if self._window_timer is not None:
            self._window_timer.cancel()
            self._close_window()

    async def aclose(self, timeout: float) -> None:
        self.flush_now()
        if self._worker is not None:
            try:
                await asyncio.wait_for(self._queue.join(), timeout)
            except TimeoutError:
                log.warning(
                    "notifier %r: %d messages not delivered at shutdown",
                    self.spec.name,
                    self._queue.qsize(),
                )
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        try:
            await self.notifier.aclose()
        except Exception:
            log.exception("closing notifier %r failed", self.spec.name)

    def stats(self) -> NotifierStats:
        return NotifierStats(
            name=self.spec.name,
            type=self.spec.type,
            sent=self.sent,
            failed=self.failed,
            dropped=self.dropped,
            suppressed=self.suppressed,
        )


class Notifications:
    """The notifiers of a config, fed by a monitor's transitions.

    ``Notifications(specs, registry=registry)`` builds each entry's notifier
    (one that fails to build is logged and left out: checks never depend on
    notifiers); :meth:`attach` (from the running loop) starts delivery and
    listens to a monitor; :meth:`aclose` sends what waits and stops.
    ``redact`` masks secrets in logged failure reasons (pass ``kit.redactor``).
    """

    def __init__(
        self,
        specs: Iterable[NotifierSpec],
        *,
        registry: StrategyRegistry,
        redact: Callable[[str], str] = lambda text: text,
    ) -> None:
        self._dispatchers: list[_Dispatcher] = []
        self._monitors: list[tuple[Monitor, Callable[[Transition], None]]] = []
        for spec in specs:
            try:
                ntype = registry.notifiers[spec.type]
                notifier = ntype.factory(spec.config)
            except Exception as exc:  # a broken notifier plugin must not stop the server
                log.error(
                    "notifier %r (%s) could not be built and is off: %s: %s",
                    spec.name,
                    spec.type,
                    type(exc).__name__,
                    redact(str(exc)),
                )
                continue
            self._dispatchers.append(_Dispatcher(spec, notifier, redact))

    def __len__(self) -> int:
        return len(self._dispatchers)

    def attach(self, monitor: Monitor) -> None:
        """Notify ``monitor``'s transitions from now on (call from its running loop)."""
        for dispatcher in self._dispatchers:
            dispatcher.start()

        def on_transition(tr: Transition) -> None:
            self.publish(
                NotificationEvent(
                    model=tr.model,
                    old=tr.old.value,
                    new=tr.new.value,
                    kind=event_kind(tr.old.value, tr.new.value),
                    at=tr.at,
                    detail=tr.result.detail,
                )
            )

        monitor.add_listener(on_transition)
        self._monitors.append((monitor, on_transition))

    def publish(self, event: NotificationEvent) -> None:
        """Hand one event to every notifier (from the running loop)."""
        for dispatcher in self._dispatchers:
            try:
                dispatcher.on_event(event)
            except Exception:
                log.exception("notifier %r failed to take an event", dispatcher.spec.name)

    def stats(self) -> list[NotifierStats]:
        return [d.stats() for d in self._dispatchers]

    async def aclose(self, timeout: float = 5.0) -> None:
        """Stop listening, deliver what waits (at most ``timeout`` seconds), close notifiers."""
        for monitor, listener in self._monitors:
            with contextlib.suppress(ValueError):
                monitor.remove_listener(listener)
        self._monitors = []
        await asyncio.gather(*(d.aclose(timeout) for d in self._dispatchers))
