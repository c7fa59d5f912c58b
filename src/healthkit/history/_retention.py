"""Retention: what the writer thread deletes (age, then size) so the file stays bounded."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable


class _Retention:
    retention: float
    max_size: int | None
    _clock: Callable[[], float]

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
