"""Reads: transitions, uptime, per-minute figures, latency percentiles (per-thread connections)."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .._status import Status
from ._records import (
    LatencySummary,
    MinuteRecord,
    TransitionRecord,
    bucket_percentile,
)
from ._schema import _BUCKET_COLS, _NBUCKETS, _problem, _Schema

if TYPE_CHECKING:
    from .._monitor import Monitor

Since = dt.datetime | dt.timedelta | float | None


def _utc(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc)


class _Queries(_Schema):
    _clock: Callable[[], float]
    _local: threading.local
    _readers: list[sqlite3.Connection]
    _readers_lock: threading.Lock
    _monitors: list[tuple[Monitor, Callable[..., object], Callable[..., object]]]

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
