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
import datetime as dt
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from typing import TYPE_CHECKING, Any

from .._configuration._history import HistoryConfig
from .._status import Status
from ._records import (
    LATENCY_BUCKETS,
    HistoryError,
    HistoryStats,
    LatencySummary,
    MinuteRecord,
    TransitionRecord,
    bucket_index,
    bucket_percentile,
)

if TYPE_CHECKING:
    from .._monitor import CheckEvent, Monitor, Transition

__all__ = ["SCHEMA_VERSION", "HistoryStore"]

log = logging.getLogger("healthkit.history")

#: ``PRAGMA user_version`` of the current schema; older files are migrated on open.
SCHEMA_VERSION = 1
#: Seconds between two log lines about dropped events or failed writes.
LOG_INTERVAL = 60.0
#: Seconds between two retention sweeps.
SWEEP_INTERVAL = 60.0
#: What a stopped monitor leaves in the timeline (its models' state is unknown from then on).
STOPPED = "history: monitor stopped"

_NBUCKETS = len(LATENCY_BUCKETS) + 1
_BUCKET_COLS = [f"b{i}" for i in range(_NBUCKETS)]

_SCHEMA_V1 = f"""
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY,
    model TEXT NOT NULL,
    at REAL NOT NULL,
    old TEXT NOT NULL,
    new TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS transitions_model_at ON transitions (model, at);
CREATE INDEX IF NOT EXISTS transitions_at ON transitions (at);
CREATE TABLE IF NOT EXISTS minutes (
    model TEXT NOT NULL,
    minute INTEGER NOT NULL,
    checks INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    lat_min REAL NOT NULL,
    lat_sum REAL NOT NULL,
    lat_max REAL NOT NULL,
    {", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in _BUCKET_COLS)},
    PRIMARY KEY (model, minute)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS minutes_minute ON minutes (minute);
"""

#: Each step takes a file from version ``n`` to ``n + 1``.
_MIGRATIONS: dict[int, str] = {0: _SCHEMA_V1}

_UPSERT = (
    f"INSERT INTO minutes (model, minute, checks, failures, lat_min, lat_sum, lat_max, "
    f"{', '.join(_BUCKET_COLS)}) VALUES ({', '.join('?' * (7 + _NBUCKETS))}) "
    "ON CONFLICT (model, minute) DO UPDATE SET checks = checks + excluded.checks, "
    "failures = failures + excluded.failures, lat_min = min(lat_min, excluded.lat_min), "
    "lat_sum = lat_sum + excluded.lat_sum, lat_max = max(lat_max, excluded.lat_max), "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in _BUCKET_COLS)
)

Since = dt.datetime | dt.timedelta | float | None


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


def _utc(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc)


def _problem(path: str, exc: BaseException) -> HistoryError:
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
        return HistoryError(
            f"history file {path!r} is not a usable SQLite database ({text}); "
            "move it aside (healthkit starts a new one) or point [history] path elsewhere"
        )
    return HistoryError(f"cannot use history file {path!r}: {text}")


class HistoryStore:
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

    # -- opening -------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        return conn

    def _open_for_writing(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise HistoryError(f"cannot use history file {self.path!r}: no directory {directory!r}")
        try:
            with closing(self._connect()) as conn:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise HistoryError(
                        f"history file {self.path!r} has schema version {version}, newer than "
                        f"this healthkit's {SCHEMA_VERSION}: upgrade healthkit or use another path"
                    )
                # WAL: readers (the CLI, the status page) never wait for the writer,
                # and a second process on the same file takes turns instead of failing.
                conn.execute("PRAGMA journal_mode = WAL")
                if version == 0:
                    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
                    conn.execute("VACUUM")  # auto_vacuum applies to a new file only after one
                while version < SCHEMA_VERSION:
                    with conn:
                        conn.executescript(_MIGRATIONS[version])
                        version += 1
                        conn.execute(f"PRAGMA user_version = {version}")
        except HistoryError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise _problem(self.path, exc) from None

    def _check_readable(self) -> None:
        try:
            with closing(self._connect()) as conn:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise _problem(self.path, exc) from None
        if version != SCHEMA_VERSION:
            raise HistoryError(
                f"history file {self.path!r} has schema version {version}, this healthkit reads "
                f"{SCHEMA_VERSION} (open it once with 'healthkit serve' to migrate it)"
            )

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

    # -- the writer thread ---------------------------------------------------

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

    def _sweep(self, conn: sqlite3.Connection) -> None:
        """Drop what is older than ``retention``, then the oldest tenth until under ``max_size``."""
        cutoff = self._clock() - self.retention
        with conn:
            conn.execute("DELETE FROM transitions WHERE at < ?", (cutoff,))
            conn.execute("DELETE FROM minutes WHERE minute < ?", (cutoff - 60,))
        if self.max_size is not None:
            for _ in range(20):
                if self._used_bytes(conn) <= self.max_size:
                    break
                low, high = conn.execute(
                    "SELECT min(lo), max(hi) FROM (SELECT min(at) lo, max(at) hi FROM transitions"
                    " UNION ALL SELECT min(minute), max(minute) + 60 FROM minutes)"
                ).fetchone()
                if low is None:
                    break
                cut = low + max(60.0, (high - low) / 10)
                with conn:
                    conn.execute("DELETE FROM transitions WHERE at < ?", (cut,))
                    conn.execute("DELETE FROM minutes WHERE minute < ?", (cut,))
        conn.execute("PRAGMA incremental_vacuum")

    @staticmethod
    def _used_bytes(conn: sqlite3.Connection) -> int:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    # -- reading -------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        # One connection per reading thread, kept: opening one costs more than most
        # queries here, and a status page asks about thousands of models.
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        try:
            if conn is None:
                conn = self._connect()
                self._local.conn = conn
                with self._readers_lock:
                    self._readers.append(conn)
            yield conn
        except sqlite3.Error as exc:
            self._local.conn = None
            if conn is not None:
                conn.close()
            raise _problem(self.path, exc) from None

    def _close_readers(self) -> None:
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        self._local = threading.local()

    def _since(self, since: Since) -> float | None:
        if since is None:
            return None
        if isinstance(since, dt.timedelta):
            return self._clock() - since.total_seconds()
        if isinstance(since, dt.datetime):
            if since.tzinfo is None:
                raise ValueError("since must be an aware datetime (UTC)")
            return since.timestamp()
        return self._clock() - float(since)

    def models(self) -> list[str]:
        """Every model with stored history, sorted."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT model FROM transitions UNION SELECT model FROM minutes ORDER BY 1"
            ).fetchall()
        return [r[0] for r in rows]

    def transitions(self, model: str | None = None, since: Since = None) -> list[TransitionRecord]:
        """Stored transitions, oldest first; of one model, and not before ``since``.

        ``since``: an aware datetime, a timedelta or seconds before now.
        """
        start = self._since(since)
        query = "SELECT model, at, old, new, detail FROM transitions WHERE 1"
        args: list[Any] = []
        if model is not None:
            query += " AND model = ?"
            args.append(model)
        if start is not None:
            query += " AND at >= ?"
            args.append(start)
        with self._reading() as conn:
            rows = conn.execute(query + " ORDER BY at, id", args).fetchall()
        return [
            TransitionRecord(model=m, at=_utc(at), old=old, new=new, detail=detail)
            for m, at, old, new, detail in rows
        ]

    def uptime(self, model: str, since: Since = None) -> float | None:
        """Fraction (0..1) of the known time since ``since`` during which ``model`` was up.

        Up is healthy or degraded; time in ``unknown`` (before the first result,
        while the server was stopped) counts neither way. The last state counts
        until now only while a monitor of this store records; otherwise only
        until the last evidence stored (a transition or a minute of checks).
        ``None`` when nothing is known.
        """
        return self._uptimes(since, [model], only=model)[model]

    def uptimes(
        self, since: Since = None, models: Iterable[str] | None = None
    ) -> dict[str, float | None]:
        """:meth:`uptime` of many models (every stored one by default) in three queries."""
        return self._uptimes(since, None if models is None else list(models))

    def _uptimes(
        self, since: Since, wanted: list[str] | None, only: str | None = None
    ) -> dict[str, float | None]:
        start = self._since(since)
        now = self._clock()
        # ``only``: one model, through the (model, at) index instead of a scan.
        where, args = ("model = ? AND ", [only]) if only is not None else ("", [])
        with self._reading() as conn:
            before: dict[str, str] = {}
            if start is not None:
                # SQLite gives the bare column ``new`` of the row holding max(at).
                before = {
                    m: new
                    for m, new, _ in conn.execute(
                        f"SELECT model, new, max(at) FROM transitions WHERE {where}at < ? "
                        "GROUP BY model",
                        (*args, start),
                    )
                }
            rows: dict[str, list[tuple[float, str]]] = {}
            for m, at, new in conn.execute(
                f"SELECT model, at, new FROM transitions WHERE {where}at >= ? "
                "ORDER BY model, at, id",
                (*args, -1.0 if start is None else start),
            ):
                rows.setdefault(m, []).append((at, new))
            last_minutes = dict(
                conn.execute(
                    f"SELECT model, max(minute) FROM minutes WHERE {where}1 GROUP BY model", args
                ).fetchall()
            )
        live: set[str] = set()
        for monitor, _, _ in self._monitors:
            live.update(monitor.models)
        names = wanted if wanted is not None else sorted({*before, *rows, *last_minutes})
        out: dict[str, float | None] = {}
        for name in names:
            own = rows.get(name, [])
            end = now
            if name not in live:
                evidence = [own[-1][0]] if own else []
                if last_minutes.get(name) is not None:
                    evidence.append(last_minutes[name] + 60.0)
                end = min(now, max(evidence, default=-1.0))
            out[name] = _uptime(before.get(name), own, start, end, now)
        return out

    def minutes(self, model: str, since: Since = None) -> list[MinuteRecord]:
        """Per-minute check figures of ``model``, oldest first."""
        start = self._since(since)
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT minute, checks, failures, lat_min, lat_sum, lat_max, "
                f"{', '.join(_BUCKET_COLS)} FROM minutes WHERE model = ? AND minute >= ? "
                "ORDER BY minute",
                (model, -1 if start is None else int(start // 60) * 60),
            ).fetchall()
        return [
            MinuteRecord(
                model=model,
                start=_utc(r[0]),
                checks=r[1],
                failures=r[2],
                latency_min=r[3],
                latency_mean=r[4] / r[1] if r[1] else 0.0,
                latency_max=r[5],
                buckets=tuple(r[6:]),
            )
            for r in rows
        ]

    def latencies(
        self, since: Since = None, models: Iterable[str] | None = None
    ) -> dict[str, LatencySummary]:
        """:meth:`latency` of many models (every stored one by default) in one query."""
        start = self._since(since)
        sums = ", ".join(f"sum({c})" for c in _BUCKET_COLS)
        with self._reading() as conn:
            found = {
                r[0]: r[1:]
                for r in conn.execute(
                    f"SELECT model, min(lat_min), max(lat_max), {sums} FROM minutes "
                    "WHERE minute >= ? GROUP BY model",
                    (-1 if start is None else int(start // 60) * 60,),
                )
            }
        names = list(models) if models is not None else sorted(found)
        empty = LatencySummary(checks=0, p50=0.0, p95=0.0, p99=0.0, min=0.0, max=0.0)
        out: dict[str, LatencySummary] = {}
        for name in names:
            row = found.get(name)
            counts = list(row[2:]) if row is not None else []
            checks = sum(counts)
            if row is None or not checks:
                out[name] = empty
                continue
            lo, hi = row[0], row[1]
            out[name] = LatencySummary(
                checks=checks,
                p50=bucket_percentile(counts, 0.50, lo, hi),
                p95=bucket_percentile(counts, 0.95, lo, hi),
                p99=bucket_percentile(counts, 0.99, lo, hi),
                min=lo,
                max=hi,
            )
        return out

    def latency(self, model: str, since: Since = None) -> LatencySummary:
        """p50/p95/p99 (seconds) of ``model``'s checks since ``since``, from the minute buckets.

        Within a bucket the value is interpolated and clamped to the slowest and
        fastest check seen, so it is exact to a bucket's width.
        """
        rows = self.minutes(model, since)
        counts = [0] * _NBUCKETS
        for row in rows:
            for i, c in enumerate(row.buckets):
                counts[i] += c
        checks = sum(counts)
        if not checks:
            return LatencySummary(checks=0, p50=0.0, p95=0.0, p99=0.0, min=0.0, max=0.0)
        lo = min(r.latency_min for r in rows if r.checks)
        hi = max(r.latency_max for r in rows)
        return LatencySummary(
            checks=checks,
            p50=bucket_percentile(counts, 0.50, lo, hi),
            p95=bucket_percentile(counts, 0.95, lo, hi),
            p99=bucket_percentile(counts, 0.99, lo, hi),
            min=lo,
            max=hi,
        )


def _uptime(
    state: str | None, rows: list[tuple[float, str]], start: float | None, end: float, now: float
) -> float | None:
    """Share of known time up, from the state before ``start`` and the transitions after it."""
    t = start if start is not None else (rows[0][0] if rows else now)
    up = down = 0.0
    for at, new in [*rows, (max(end, t), None)]:
        span = max(0.0, min(at, end) - t)
        if state is not None and state != Status.UNKNOWN.value:
            if Status(state).is_ok:
                up += span
            else:
                down += span
        t = max(t, min(at, end))
        state = new
    known = up + down
    return None if known <= 0 else up / known
