"""The history file's schema, its migrations, and opening a file for writing or reading."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing

from ._records import LATENCY_BUCKETS, HistoryError

#: ``PRAGMA user_version`` of the current schema; older files are migrated on open.
SCHEMA_VERSION = 1

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


def _problem(path: str, exc: BaseException) -> HistoryError:
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
        return HistoryError(
            f"history file {path!r} is not a usable SQLite database ({text}); "
            "move it aside (healthkit starts a new one) or point [history] path elsewhere"
        )
    return HistoryError(f"cannot use history file {path!r}: {text}")


class _Schema:
    """Opening the file: connections, creating or migrating the schema, checking a readonly one."""

    path: str

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
