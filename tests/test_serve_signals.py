"""``healthkit serve`` and signals: a real process, real signals, polled (never slept) answers.

SIGTERM (what Kubernetes sends) is a graceful shutdown with exit 0; SIGHUP
reloads the config file with the no-churn reload, and a config with errors
keeps the running one. Logs go to stderr, the banner alone to stdout.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from healthkit.testing import OipServer

MAIN = "from healthkit.cli import main; main()"

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")


class Served:
    """``healthkit serve CONFIG --port 0`` in a subprocess; stderr to a file we can poll."""

    def __init__(self, config: Path, *args: str, tmp_path: Path) -> None:
        self.stderr_path = tmp_path / "serve.stderr"
        self._stderr = self.stderr_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", MAIN, "serve", str(config), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        assert self.proc.stdout is not None
        self.banner = self.proc.stdout.readline().strip()
        self.url = self.banner.rsplit(" ", 1)[-1]
        self.rest_of_stdout = ""

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_for_log(self, text: str, *, after: int = 0, timeout: float = 15.0) -> str:
        """Poll stderr until ``text`` appears after offset ``after``; return the new part."""
        deadline = time.monotonic() + timeout
        while True:
            new = self.stderr[after:]
            if text in new:
                return new
            assert self.proc.poll() is None, f"serve exited {self.proc.returncode}: {self.stderr}"
            assert time.monotonic() < deadline, f"no {text!r} in stderr:\n{self.stderr}"
            time.sleep(0.02)

    def finish(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if self.proc.stdout is not None:
            self.rest_of_stdout = self.proc.stdout.read()
            self.proc.stdout.close()
        self._stderr.close()
        return code


@pytest.fixture
def predictor() -> Iterator[OipServer]:
    with OipServer({"alpha": "ready", "beta": "ready"}) as server:
        yield server


def config_text(url: str, models: dict[str, Any]) -> str:
    check = {"strategy": "http", "base_url": url, "period": 0.1, "jitter": 0.0, "timeout": 0.5}
    return json.dumps({"defaults": {"health_check": check}, "models": models})


def poll(url: str, path: str, done: Callable[[httpx.Response], bool]) -> httpx.Response:
    deadline = time.monotonic() + 15.0
    with httpx.Client(base_url=url, timeout=5) as client:
        while True:
            response = client.get(path)
            if done(response):
                return response
            assert time.monotonic() < deadline, f"{path}: still {response.status_code}"
            time.sleep(0.02)


def test_sigterm_is_a_graceful_shutdown_with_exit_0(predictor: OipServer, tmp_path: Path) -> None:
    path = tmp_path / "healthkit.json"
    path.write_text(config_text(predictor.url, {"alpha": {}}))
    served = Served(path, "--log-level", "debug", tmp_path=tmp_path)
    try:
        assert served.banner.startswith("healthkit: serving 1 models on http://127.0.0.1:")
        poll(served.url, "/readyz", lambda r: r.status_code == 200)
    finally:
        code = served.finish(signal.SIGTERM)
    assert code == 0, served.stderr
    assert "Application shutdown complete" in served.stderr
    # Logs, the access log included, are on stderr; stdout holds the banner alone.
    assert '"GET /readyz HTTP/1.1" 200' in served.stderr
    assert served.rest_of_stdout == ""


def test_sighup_reloads_only_what_changed(predictor: OipServer, tmp_path: Path) -> None:
    path = tmp_path / "healthkit.json"
    path.write_text(config_text(predictor.url, {"alpha": {}}))
    served = Served(path, tmp_path=tmp_path)
    try:
        poll(served.url, "/readyz", lambda r: r.status_code == 200)
        assert poll(served.url, "/v2/models/beta/ready", lambda r: True).status_code == 404

        path.write_text(config_text(predictor.url, {"alpha": {}, "beta": {}}))
        mark = len(served.stderr)
        served.proc.send_signal(signal.SIGHUP)
        log = served.wait_for_log("reloaded ", after=mark)
        assert f"reloaded {path}: added: beta; changed: none; removed: none; 1 unchanged" in log
        # alpha kept its instance: the shared one serves beta too.
        assert "0 instance(s) created, 0 closed" in log
        poll(served.url, "/v2/models/beta/ready", lambda r: r.status_code == 200)
        assert poll(served.url, "/v2/models/alpha/ready", lambda r: True).status_code == 200
    finally:
        code = served.finish()
    assert code == 0, served.stderr


def test_sighup_with_a_bad_config_keeps_the_running_one(
    predictor: OipServer, tmp_path: Path
) -> None:
    path = tmp_path / "healthkit.json"
    path.write_text(config_text(predictor.url, {"alpha": {}}))
    served = Served(path, tmp_path=tmp_path)
    try:
        poll(served.url, "/readyz", lambda r: r.status_code == 200)

        bad = {
            "alpha": {"health_check": {"timeout": -1}},
            "beta": {"health_check": {"strategy": "no-such-strategy"}},
        }
        path.write_text(config_text(predictor.url, bad))
        mark = len(served.stderr)
        served.proc.send_signal(signal.SIGHUP)
        served.wait_for_log("models.beta.health_check.strategy: unknown strategy", after=mark)
        log = served.stderr[mark:]
        assert f"reload of {path} failed, the running config stays in place (2 errors):" in log
        # Every error, each with its path.
        assert "models.alpha.health_check.timeout: must be > 0, got -1" in log, log
        # Still serving the old config, still answering.
        assert poll(served.url, "/readyz", lambda r: True).status_code == 200
        assert poll(served.url, "/v2/models/beta/ready", lambda r: True).status_code == 404
        assert served.proc.poll() is None

        # Fixed: the next SIGHUP applies it.
        path.write_text(config_text(predictor.url, {"alpha": {}, "beta": {}}))
        mark = len(served.stderr)
        served.proc.send_signal(signal.SIGHUP)
        served.wait_for_log("reloaded ", after=mark)
        poll(served.url, "/v2/models/beta/ready", lambda r: r.status_code == 200)
    finally:
        code = served.finish()
    assert code == 0, served.stderr


def test_sigint_still_exits_0(predictor: OipServer, tmp_path: Path) -> None:
    path = tmp_path / "healthkit.json"
    path.write_text(config_text(predictor.url, {"alpha": {}}))
    served = Served(path, tmp_path=tmp_path)
    try:
        poll(served.url, "/livez", lambda r: r.status_code == 200)
    finally:
        code = served.finish(signal.SIGINT)
    assert code == 0, served.stderr
    assert "Traceback" not in served.stderr
