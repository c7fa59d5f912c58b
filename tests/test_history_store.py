"""The SQLite history store: real files in a temp dir, a real monitor against a real predictor."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from pathlib import Path

import pytest

from _monitor_support import http_config, wait_until
from healthkit import HealthKit, Monitor
from healthkit.history import HistoryConfig, HistoryError, HistoryStore, parse_duration
from healthkit.testing import OipServer


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "history.sqlite")


def test_transitions_and_uptime_survive_a_reopen(db: str) -> None:
    clock = Clock()
    t0 = clock.now
    store = HistoryStore(db, clock=clock, flush_interval=0.05)
    store.record_transition("a", "unknown", "healthy", at=t0)
    store.record_transition("a", "healthy", "unhealthy", at=t0 + 300, detail="503")
    store.record_transition("a", "unhealthy", "healthy", at=t0 + 400)
    store.record_transition("b", "unknown", "unhealthy", at=t0 + 10)
    clock.now = t0 + 1000
    store.close()

    again = HistoryStore(db, clock=clock, readonly=True)
    got = again.transitions("a")
    assert [(t.old, t.new) for t in got] == [
        ("unknown", "healthy"),
        ("healthy", "unhealthy"),
        ("unhealthy", "healthy"),
    ]
    assert got[1].detail == "503" and got[1].at == dt.datetime.fromtimestamp(t0 + 300, dt.UTC)
    assert [t.model for t in again.transitions()] == ["a", "b", "a", "a"]
    assert [t.new for t in again.transitions("a", since=dt.timedelta(seconds=700))] == [
        "unhealthy",
        "healthy",
    ]
    # Not attached to a running monitor: the last state counts until its last evidence
    # (t0 + 400), never until "now": 300 s up, 100 s down.
    assert again.uptime("a") == pytest.approx(300 / 400)
    # From t0 + 350 (state then: unhealthy): 50 s down, nothing after the last evidence.
    assert again.uptime("a", since=dt.datetime.fromtimestamp(t0 + 350, dt.UTC)) == 0.0
    assert again.uptime("nobody") is None
    assert again.models() == ["a", "b"]


def test_minutes_and_latency_percentiles(db: str) -> None:
    clock = Clock(1_700_000_040.0)
    store = HistoryStore(db, clock=clock)
    for i in range(100):
        store.record_check("m", 0.010 + i * 0.001, failed=i % 10 == 0)  # 10 ms .. 109 ms
    clock.now += 120  # two minutes later
    store.record_check("m", 2.0, failed=True)
    assert store.flush()
    rows = store.minutes("m")
    assert [(r.checks, r.failures) for r in rows] == [(100, 10), (1, 1)]
    assert rows[0].latency_min == pytest.approx(0.010)
    assert rows[0].latency_max == pytest.approx(0.109)
    assert rows[0].latency_mean == pytest.approx(0.0595)
    summary = store.latency("m")
    assert summary.checks == 101
    assert summary.min == pytest.approx(0.010) and summary.max == pytest.approx(2.0)
    # Exact to a bucket: p50 (60 ms) lies in 50..100 ms, p95 in 100..250 ms.
    assert 0.05 <= summary.p50 <= 0.1
    assert 0.1 <= summary.p95 <= 0.25
    assert summary.p50 <= summary.p95 <= summary.p99 <= summary.max
    # ``since`` counts whole minutes: the one it falls in, and later ones.
    assert store.latency("m", since=60).checks == 1
    assert store.latency("other").checks == 0
    store.close()


def test_retention_by_age_drops_old_rows(db: str) -> None:
    clock = Clock()
    store = HistoryStore(db, clock=clock, retention=3600)
    store.record_transition("a", "unknown", "healthy", at=clock.now - 7200)
    store.record_check("a", 0.01, failed=False, at=clock.now - 7200)
    store.record_transition("a", "healthy", "unhealthy", at=clock.now - 60)
    assert store.flush()
    store._sweep(sqlite3.connect(db))
    assert [t.new for t in store.transitions("a")] == ["unhealthy"]
    assert store.minutes("a") == []
    store.close()


def test_retention_by_size_keeps_the_newest(db: str) -> None:
    clock = Clock()
    store = HistoryStore(db, clock=clock, max_size=64 * 1024)
    for i in range(3000):
        store.record_transition(
            f"model-{i % 50}", "healthy", "unhealthy", detail="x" * 100, at=clock.now - 3000 + i
        )
    assert store.flush()
    with sqlite3.connect(db) as conn:
        store._sweep(conn)
        assert store._used_bytes(conn) <= 64 * 1024
    left = store.transitions()
    assert 0 < len(left) < 3000
    assert left[-1].at == dt.datetime.fromtimestamp(clock.now - 1, dt.UTC)
    store.close()


def test_unusable_files_get_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="no directory"):
        HistoryStore(tmp_path / "missing" / "h.sqlite")
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(HistoryError, match=r"not a usable SQLite database.*move it aside"):
        HistoryStore(corrupt)
    with pytest.raises(HistoryError, match="no history file"):
        HistoryStore(tmp_path / "none.sqlite", readonly=True)
    with pytest.raises(HistoryError, match=r"cannot use history file.*unable to open"):
        HistoryStore(tmp_path)  # a directory, not a file
    newer = tmp_path / "newer.sqlite"
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(HistoryError, match="schema version 99, newer"):
        HistoryStore(newer)


def test_a_place_no_file_can_be_created_is_a_clear_error(tmp_path: Path) -> None:
    # Its "directory" is a file: nobody, root included (CI runs as root), can create
    # the database there, unlike a read-only directory that root writes anyway.
    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_text("")
    with pytest.raises(HistoryError, match="cannot use history file"):
        HistoryStore(not_a_dir / "h.sqlite")


def test_two_stores_share_one_file(db: str) -> None:
    first = HistoryStore(db)
    second = HistoryStore(db)
    first.record_transition("a", "unknown", "healthy")
    second.record_transition("b", "unknown", "healthy")
    assert first.flush() and second.flush()
    assert {t.model for t in first.transitions()} == {"a", "b"}
    first.close()
    second.close()


def test_a_full_queue_drops_and_counts_and_logs_once(
    db: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = HistoryStore(db, queue_size=1, flush_interval=60)
    with caplog.at_level(logging.WARNING, logger="healthkit.history"):
        for _ in range(100):
            store.record_transition("a", "healthy", "unhealthy")
        # Checks fold into one row per model and minute: a second row is over the bound.
        for model in ("a", "b"):
            for _ in range(50):
                store.record_check(model, 0.01, failed=False)
    stats = store.stats()
    assert stats.dropped >= 50 + 1 and stats.queued + stats.dropped == 200
    assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 1
    assert store.flush()
    assert sum(m.checks for m in store.minutes("a")) == 50
    assert store.minutes("b") == []
    store.close()


def test_a_failing_write_is_counted_and_the_writer_goes_on(
    db: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = HistoryStore(db)
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE transitions")  # every insert fails from now on
    with caplog.at_level(logging.WARNING, logger="healthkit.history"):
        store.record_transition("a", "unknown", "healthy")
        assert store.flush()
        store.record_check("a", 0.01, failed=False)
        assert store.flush()
    stats = store.stats()
    assert stats.write_errors >= 1 and stats.dropped >= 1
    assert [r for r in caplog.records if "write failed" in r.getMessage()]
    store.close()


def test_config_section_values() -> None:
    cfg = HistoryConfig(path="h.sqlite", retention="7d", max_size="100MB", flush_interval="2s")
    assert cfg.retention == 7 * 86400 and cfg.max_size == 100_000_000 and cfg.flush_interval == 2
    assert parse_duration("24h") == 86400
    for bad in ("soon", "-1h", 0, True):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)
    with pytest.raises(ValueError, match="at least 64kB"):
        HistoryConfig(path="h", max_size=10)


async def test_attached_monitor_records_real_transitions_and_checks(db: str) -> None:
    with OipServer({"a": "ready", "b": "ready"}) as predictor:
        kit = HealthKit.from_config(http_config(predictor.url, ["a", "b"], period=0.05, jitter=0.0))
        monitor = Monitor(kit)
        store = HistoryStore(db, flush_interval=0.05)
        store.attach(monitor)
        try:
            await monitor.start()
            await wait_until(monitor.server_ready)
            predictor.set_state("b", "not_ready")
            await wait_until(lambda: not monitor.is_ready("b"))
            await store.aflush()
            assert [t.new for t in store.transitions("b")] == ["healthy", "unhealthy"]
            rows = store.minutes("b")
            assert sum(r.checks for r in rows) >= 4 and sum(r.failures for r in rows) >= 1
            assert sum(r.failures for r in store.minutes("a")) == 0
            assert store.uptime("a", since=dt.timedelta(hours=1)) == 1.0
            b_up = store.uptime("b")
            assert b_up is not None and 0.0 < b_up < 1.0
        finally:
            await monitor.aclose()
            await store.aclose()
    # Stopping writes "unknown" markers: the downtime of the server counts neither way.
    reread = HistoryStore(db, readonly=True)
    assert [t.new for t in reread.transitions("a")] == ["healthy", "unknown"]
    assert reread.transitions("a")[-1].detail == "history: monitor stopped"


def test_bulk_reads_agree_with_one_model_reads(db: str) -> None:
    clock = Clock()
    t0 = clock.now
    store = HistoryStore(db, clock=clock)
    for i, name in enumerate(["a", "b", "c"]):
        store.record_transition(name, "unknown", "healthy", at=t0 - 7200)
        store.record_transition(name, "healthy", "unhealthy", at=t0 - 600 * (i + 1))
        for k in range(5):
            store.record_check(name, 0.002 * (i + 1) * (k + 1), failed=k == 0, at=t0 - 60 * k)
    assert store.flush()
    window = dt.timedelta(hours=1)
    uptimes = store.uptimes(window)
    latencies = store.latencies(window)
    assert set(uptimes) == set(latencies) == {"a", "b", "c"}
    for name in ("a", "b", "c"):
        assert uptimes[name] == pytest.approx(store.uptime(name, window))
        assert latencies[name] == store.latency(name, window)
    assert store.uptimes(window, models=["a", "ghost"]) == {
        "a": store.uptime("a", window),
        "ghost": None,
    }
    assert store.latencies(window, models=["ghost"])["ghost"].checks == 0
    store.close()


async def test_a_locked_file_never_holds_up_probes(db: str) -> None:
    """Another process holds the file locked (a stand-in for a stuck disk): probes go on."""
    with OipServer({"a": "ready"}) as predictor:
        kit = HealthKit.from_config(http_config(predictor.url, ["a"], period=0.02, jitter=0.0))
        monitor = Monitor(kit)
        store = HistoryStore(db, flush_interval=0.02)
        store.attach(monitor)
        checks: list[float] = []
        monitor.add_check_listener(lambda event: checks.append(event.seconds))
        locker = sqlite3.connect(db, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")  # the writer now waits up to its busy timeout
        try:
            await monitor.start()
            await wait_until(lambda: monitor.is_ready("a"))
            before = len(checks)
            await wait_until(lambda: len(checks) >= before + 20)
            assert monitor.is_ready("a")
        finally:
            locker.execute("ROLLBACK")
            locker.close()
            await monitor.aclose()
            await store.aclose()
    reread = HistoryStore(db, readonly=True)
    assert [t.new for t in reread.transitions("a")][:1] == ["healthy"]
    assert sum(m.checks for m in reread.minutes("a")) >= 20
