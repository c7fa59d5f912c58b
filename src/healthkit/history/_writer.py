"""The writer thread: batches the queue and the folded minutes into one transaction per interval."""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from typing import Any

from ._records import bucket_index
from ._retention import _Retention
from ._schema import _NBUCKETS, _UPSERT, _Schema

log = logging.getLogger("healthkit.history")

#: Seconds between two log lines about dropped events or failed writes.
LOG_INTERVAL = 60.0
#: Seconds between two retention sweeps.
SWEEP_INTERVAL = 60.0


class _Minute:
    __slots__ = ("buckets", "checks", "failures", "high", "low", "total")

    def __init__(self) -> None:
        self.checks = 0
        self.failures = 0
        self.low = float("inf")
        self.high = 0.0
        self.total = 0.0
        self.buckets = [0] * _NBUCKETS

    def add(self, seconds: float, failed: bool) -> None:
        self.checks += 1
        self.failures += failed
        self.low = min(self.low, seconds)
        self.high = max(self.high, seconds)
        self.total += seconds
        self.buckets[bucket_index(seconds)] += 1


class _Writer(_Schema, _Retention):
    _queue: queue.Queue[tuple[Any, ...]]
    _flush_interval: float
    _pending: dict[tuple[str, int], _Minute]
    _pending_lock: threading.Lock
    _batches: int
    _write_errors: int
    _dropped: int

    def _write_loop(self) -> None:
        conn: sqlite3.Connection | None = None
        transitions: list[tuple[Any, ...]] = []
        minutes: dict[tuple[str, int], _Minute]
        waiters: list[threading.Event] = []
        last_error_log = -float("inf")
        next_flush = time.monotonic() + self._flush_interval
        next_sweep = time.monotonic()
        stop = False
        while not stop:
            try:
                item = self._queue.get(timeout=max(0.0, next_flush - time.monotonic()))
            except queue.Empty:
                item = None
            if item is not None:
                kind = item[0]
                if kind == "t":
                    transitions.append(item[1:])
                elif kind == "f":
                    waiters.append(item[1])
                else:
                    stop = True
                if kind not in ("f", "s") and time.monotonic() < next_flush:
                    continue
            next_flush = time.monotonic() + self._flush_interval
            with self._pending_lock:
                minutes, self._pending = self._pending, {}
            if transitions or minutes:
                try:
                    if conn is None:
                        conn = self._connect()
                    self._write(conn, transitions, minutes)
                    self._batches += 1
                except (sqlite3.Error, OSError) as exc:
                    self._write_errors += 1
                    self._dropped += len(transitions) + sum(m.checks for m in minutes.values())
                    now = time.monotonic()
                    if now - last_error_log >= LOG_INTERVAL:
                        last_error_log = now
                        log.warning(
                            "history %s: write failed, %d events dropped so far: %s",
                            self.path,
                            self._dropped,
                            exc,
                        )
                    if conn is not None:
                        conn.close()
                        conn = None
                transitions = []
                minutes = {}
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + SWEEP_INTERVAL
                try:
                    if conn is None:
                        conn = self._connect()
                    self._sweep(conn)
                except (sqlite3.Error, OSError) as exc:
                    log.warning("history %s: retention sweep failed: %s", self.path, exc)
            for waiter in waiters:
                waiter.set()
            waiters = []
        if conn is not None:
            conn.close()

    def _write(
        self,
        conn: sqlite3.Connection,
        transitions: list[tuple[Any, ...]],
        minutes: dict[tuple[str, int], _Minute],
    ) -> None:
        with conn:
            conn.executemany(
                "INSERT INTO transitions (model, at, old, new, detail) VALUES (?, ?, ?, ?, ?)",
                transitions,
            )
            conn.executemany(
                _UPSERT,
                [
                    (model, start, m.checks, m.failures, m.low, m.total, m.high, *m.buckets)
                    for (model, start), m in minutes.items()
                ],
            )
