"""The SQLite history store: a bounded queue, one writer thread, reads on fresh connections.

The event loop only ever puts a tuple on a bounded queue (never blocks: a full
queue drops the event and counts it). One writer thread batches the queue into
one transaction per ``flush_interval``; checks are folded into per-model,
per-minute rows in memory first, so ten thousand checks a minute cost a
handful of row updates. Reads open their own connection (WAL: they never wait
for the writer), so any thread may read.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._configuration._history import HistoryConfig
from .._status import Status
from ._queries import _Queries
from ._records import HistoryError, HistoryStats
from ._schema import SCHEMA_VERSION
from ._writer import LOG_INTERVAL, _Minute, _Writer

if TYPE_CHECKING:
    from .._monitor import CheckEvent, Monitor, Transition

__all__ = ["SCHEMA_VERSION", "HistoryStore"]

log = logging.getLogger("healthkit.history")

#: What a stopped monitor leaves in the timeline (its models' state is unknown from then on).
STOPPED = "history: monitor stopped"


class HistoryStore(_Writer, _Queries):
    """Transitions and per-minute check figures of the models of one or more monitors.

    ``HistoryStore(path)`` opens (or creates, or migrates) the file and starts
    the writer; :meth:`attach` feeds it a monitor's transitions and checks.
    ``readonly=True`` opens an existing file for reading only (the CLI): no
    writer, and a missing file is an error. Raises :class:`HistoryError` with
    the path and what is wrong when the file cannot be used.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retention: float = 30 * 86400.0,
        max_size: int | None = None,
        queue_size: int = 100_000,
        flush_interval: float = 1.0,
        readonly: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = os.fspath(path)
        self.retention = retention
        self.max_size = max_size
        self.readonly = readonly
        self._flush_interval = flush_interval
        self._clock = clock
        self._queue: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=queue_size)
        self._queued = 0
        self._dropped = 0
        self._batches = 0
        self._write_errors = 0
        self._last_drop_log = -float("inf")
        self._monitors: list[tuple[Monitor, Callable[..., object], Callable[..., object]]] = []
        self._closed = False
        self._writer: threading.Thread | None = None
        #: Checks folded per (model, minute) until the writer's next batch takes them.
        self._pending: dict[tuple[str, int], _Minute] = {}
        self._pending_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        if readonly:
            if not os.path.exists(self.path):
                raise HistoryError(f"no history file at {self.path!r}")
            self._check_readable()
            return
        self._open_for_writing()
        self._writer = threading.Thread(
            target=self._write_loop, name=f"healthkit history {self.path}", daemon=True
        )
        self._writer.start()

    @classmethod
    def from_config(cls, config: HistoryConfig, **options: Any) -> HistoryStore:
        return cls(
            config.path,
            retention=config.retention,
            max_size=config.max_size,
            queue_size=config.queue_size,
            flush_interval=config.flush_interval,
            **options,
        )

    def __repr__(self) -> str:
        return f"<HistoryStore {self.path!r}{' readonly' if self.readonly else ''}>"

    # -- feeding -------------------------------------------------------------

    def attach(self, monitor: Monitor) -> None:
        """Record ``monitor``'s transitions and checks from now on, through its public listeners."""
        if self._writer is None:
            raise HistoryError(f"history file {self.path!r} is open read-only")

        def on_transition(tr: Transition) -> None:
            self.record_transition(tr.model, tr.old.value, tr.new.value, detail=tr.result.detail)

        def on_check(event: CheckEvent) -> None:
            # A batch call answers many models at once: not one model's latency.
            if event.batch or event.model is None:
                return
            name = event.model
            if name not in monitor:
                name = name.rpartition("@")[0]
                if name not in monitor:
                    return
            # The check listener runs just before the monitor stores the result:
            # read it one loop step later, off the monitor's own code path.
            seconds = event.seconds
            asyncio.get_running_loop().call_soon(self._sample, monitor, name, seconds)

        monitor.add_listener(on_transition)
        monitor.add_check_listener(on_check)
        self._monitors.append((monitor, on_transition, on_check))

    def detach(self, monitor: Monitor, *, stopped: bool = True) -> None:
        """Stop recording ``monitor``; with ``stopped``, its models' state becomes unknown.

        The marker keeps uptime honest across restarts: the time the server was
        down counts as neither up nor down.
        """
        for entry in list(self._monitors):
            if entry[0] is not monitor:
                continue
            self._monitors.remove(entry)
            try:
                monitor.remove_listener(entry[1])
                monitor.remove_check_listener(entry[2])
            except ValueError:
                pass
            if stopped:
                for name in monitor.models:
                    try:
                        status = monitor.status(name)
                    except KeyError:
                        continue
                    if status is not Status.UNKNOWN:
                        self.record_transition(name, status.value, "unknown", detail=STOPPED)

    def _sample(self, monitor: Monitor, name: str, seconds: float) -> None:
        try:
            result = monitor.last_result(name)
        except KeyError:  # removed by a reload meanwhile
            return
        self.record_check(name, seconds, failed=result is None or not result.status.is_ok)

    def record_transition(
        self, model: str, old: str, new: str, *, detail: str | None = None, at: float | None = None
    ) -> None:
        """Queue a transition (``at``: epoch seconds, now by default). Never blocks."""
        self._put(("t", model, self._clock() if at is None else at, old, new, detail))

    def record_check(
        self, model: str, seconds: float, *, failed: bool, at: float | None = None
    ) -> None:
        """Queue one check's figures for the per-minute aggregate. Never blocks."""
        if self._writer is None or self._closed:
            return
        key = (model, int((self._clock() if at is None else at) // 60) * 60)
        # Folded into its minute here, not in the writer: a dict update costs the
        # caller a microsecond, where a queued tuple per check would keep the writer
        # thread busy in Python (holding the GIL the event loop waits for).
        with self._pending_lock:
            minute = self._pending.get(key)
            if minute is None:
                if len(self._pending) >= self._queue.maxsize:
                    minute = None
                else:
                    minute = self._pending[key] = _Minute()
            if minute is not None:
                minute.add(seconds, failed)
                self._queued += 1
                return
        self._drop()

    def _put(self, item: tuple[Any, ...]) -> None:
        if self._writer is None or self._closed:
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._drop()
            return
        self._queued += 1

    def _drop(self) -> None:
        self._dropped += 1
        now = time.monotonic()
        if now - self._last_drop_log >= LOG_INTERVAL:
            self._last_drop_log = now
            log.warning(
                "history %s: writer behind, %d events dropped so far (queue full)",
                self.path,
                self._dropped,
            )

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything queued so far is written; False on timeout or when closed."""
        if self._writer is None or not self._writer.is_alive():
            return False
        done = threading.Event()
        try:
            self._queue.put(("f", done), timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    async def aflush(self, timeout: float = 10.0) -> bool:
        return await asyncio.to_thread(self.flush, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Detach every monitor (their models become unknown), write what is queued, stop."""
        if self._closed:
            return
        for monitor, _, _ in list(self._monitors):
            self.detach(monitor)
        self._closed = True
        self._close_readers()
        writer = self._writer
        if writer is None:
            return
        try:
            self._queue.put(("s",), timeout=timeout)
        except queue.Full:
            log.warning("history %s: writer stuck, closing without the last events", self.path)
            return
        writer.join(timeout)

    async def aclose(self, timeout: float = 10.0) -> None:
        # Detach on the loop (the monitor's listeners are the loop's), then wait for
        # the writer in a thread.
        for monitor, _, _ in list(self._monitors):
            self.detach(monitor)
        await asyncio.to_thread(self.close, timeout)

    def stats(self) -> HistoryStats:
        return HistoryStats(
            queued=self._queued,
            dropped=self._dropped,
            batches=self._batches,
            write_errors=self._write_errors,
        )
