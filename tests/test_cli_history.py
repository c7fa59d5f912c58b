"""``healthkit history`` and the server's history: a real server writes, a restart keeps it."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import httpx
from click.testing import CliRunner, Result

from _monitor_support import UvicornThread
from healthkit import HealthKit
from healthkit.asgi import create_app
from healthkit.cli._main import cli
from healthkit.history import HistoryStore
from healthkit.testing import OipServer


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _config(tmp_path: Path, url: str, *, history: bool = True) -> Path:
    text = f"""
[defaults.health_check]
strategy = "http"
base_url = "{url}"
period = 0.05
jitter = 0.0

[models.alpha]
[models.beta]
"""
    if history:
        text += '\n[history]\npath = "state/history.sqlite"\nflush_interval = 0.05\n'
    path = tmp_path / "healthkit.toml"
    path.write_text(text)
    (tmp_path / "state").mkdir(exist_ok=True)
    return path


def _wait(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.02)


def _serve_once(config: Path, predictor: OipServer, flip: str | None = None) -> None:
    app = create_app(HealthKit.from_config(str(config)))
    with UvicornThread(app) as server:
        _wait(lambda: httpx.get(f"{server.url}/readyz").status_code == 200 or flip is not None)
        assert app.state.history is not None
        if flip is not None:
            predictor.set_state(flip, "not_ready")
            _wait(lambda: httpx.get(f"{server.url}/v2/models/{flip}/ready").status_code == 503)
            metrics = httpx.get(f"{server.url}/metrics").text
            assert "healthkit_history_dropped_total 0.0" in metrics


def test_a_served_history_survives_a_restart_and_the_cli_shows_it(tmp_path: Path) -> None:
    with OipServer({"alpha": "ready", "beta": "ready"}) as predictor:
        config = _config(tmp_path, predictor.url)
        _serve_once(config, predictor)
        _serve_once(config, predictor, flip="beta")  # the restart appends to the same file
    db = tmp_path / "state" / "history.sqlite"
    assert db.exists()

    result = run("history", str(config), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    models = {m["name"]: m for m in data["models"]}
    assert set(models) == {"alpha", "beta"}
    beta = [(t["old"], t["new"]) for t in models["beta"]["transitions"]]
    # First run: up, then stopped; second run: up, down, stopped.
    assert beta == [
        ("unknown", "healthy"),
        ("healthy", "unknown"),
        ("unknown", "healthy"),
        ("healthy", "unhealthy"),
        ("unhealthy", "unknown"),
    ]
    assert models["alpha"]["uptime"] == 1.0
    assert 0.0 < models["beta"]["uptime"] < 1.0
    assert models["beta"]["checks"] > 0 and models["beta"]["failures"] > 0

    table = run("history", str(config), "--model", "beta", "--since", "1h")
    assert table.exit_code == 0, table.output
    assert "beta" in table.output and "alpha" not in table.output
    assert "healthy -> unhealthy" in table.output


def test_history_usage_and_file_problems_exit_3(tmp_path: Path) -> None:
    config = _config(tmp_path, "http://127.0.0.1:9")
    missing = run("history", str(config))
    assert missing.exit_code == 3 and "no history file" in missing.output
    HistoryStore(tmp_path / "state" / "history.sqlite").close()
    assert run("history", str(config)).exit_code == 0
    unknown = run("history", str(config), "--model", "gamma")
    assert unknown.exit_code == 3 and "no model 'gamma'" in unknown.output
    bad_since = run("history", str(config), "--since", "soon")
    assert bad_since.exit_code == 3 and "duration" in bad_since.output
    with sqlite3.connect(tmp_path / "state" / "history.sqlite") as conn:
        conn.execute("PRAGMA user_version = 7")
    newer = run("history", str(config))
    assert newer.exit_code == 3 and "schema version 7" in newer.output
    plain = _config(tmp_path, "http://127.0.0.1:9", history=False)
    off = run("history", str(plain))
    assert off.exit_code == 3 and "no [history] section" in off.output


def test_an_unusable_history_file_leaves_the_server_serving(tmp_path: Path) -> None:
    with OipServer({"alpha": "ready", "beta": "ready"}) as predictor:
        config = _config(tmp_path, predictor.url)
        (tmp_path / "state" / "history.sqlite").write_bytes(b"not a database" * 100)
        app = create_app(HealthKit.from_config(str(config)))
        with UvicornThread(app) as server:
            _wait(lambda: httpx.get(f"{server.url}/readyz").status_code == 200)
            assert app.state.history is None
            assert "not a usable SQLite database" in (app.state.operations.history_error or "")
