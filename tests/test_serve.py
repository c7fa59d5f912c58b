"""``healthkit serve``: the real command in a subprocess, probed over HTTP."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from healthkit.cli._serve import serve
from healthkit.testing import OipServer

MAIN = "from healthkit.cli import main; main()"


async def poll(
    client: httpx.AsyncClient, path: str, done: Callable[[httpx.Response], bool]
) -> httpx.Response:
    deadline = time.monotonic() + 10.0
    while True:
        response = await client.get(path)
        if done(response):
            return response
        assert time.monotonic() < deadline, f"{path}: still {response.status_code} {response.text}"
        await asyncio.sleep(0.02)


class Served:
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

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
        return code

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()


@pytest.fixture
def predictor() -> Iterator[OipServer]:
    with OipServer({"alpha": "ready", "beta": "ready", "gamma": "ready"}) as server:
        yield server


def write_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "healthkit.json"
    path.write_text(
        json.dumps(
            {
                "defaults": {
                    "health_check": {
                        "strategy": "http",
                        "base_url": url,
                        "period": 0.1,
                        "jitter": 0.0,
                        "timeout": 0.5,
                    }
                },
                # beta and gamma share a batch instance: one repository index call for both.
                "models": {
                    "alpha": {},
                    "beta": {"health_check": {"batch": True}},
                    "gamma": {"health_check": {"batch": True}},
                },
            }
        )
    )
    return path


async def test_serve_answers_readiness_health_and_metrics(
    predictor: OipServer, tmp_path: Path
) -> None:
    served = Served(
        write_config(tmp_path, predictor.url), "--log-level", "warning", tmp_path=tmp_path
    )
    try:
        assert served.banner.startswith("healthkit: serving 3 models on http://127.0.0.1:"), (
            served.stderr
        )
        async with httpx.AsyncClient(base_url=served.url, timeout=5) as client:
            assert (await client.get("/livez")).json() == {"live": True}
            await poll(client, "/readyz", lambda r: r.status_code == 200)
            assert (await client.get("/v2/models/alpha/ready")).json() == {
                "name": "alpha",
                "ready": True,
            }
            assert (await client.get("/v1/models/beta")).json() == {"name": "beta", "ready": True}
            assert (await client.get("/v2/models/nope/ready")).status_code == 404
            health = (await client.get("/health")).json()
            assert health == {"status": "healthy", "live": True, "ready": True}
            metrics = (await client.get("/metrics")).text
            assert "healthkit_resolver_instances 2.0" in metrics  # beta's batch config differs
            assert 'healthkit_model_ready{model="beta"} 1.0' in metrics
    finally:
        code = served.stop()
    assert code == 0, served.stderr


async def test_serve_show_details_always(predictor: OipServer, tmp_path: Path) -> None:
    served = Served(
        write_config(tmp_path, predictor.url),
        "--show-details",
        "always",
        "--log-level",
        "warning",
        tmp_path=tmp_path,
    )
    try:
        async with httpx.AsyncClient(base_url=served.url, timeout=5) as client:
            response = await poll(client, "/health", lambda r: r.json()["ready"] is True)
            models = response.json()["models"]
            assert isinstance(models, dict)
            assert set(models) == {"alpha", "beta", "gamma"}
            assert models["beta"]["last"]["detail"] == "READY in repository index"
    finally:
        served.stop()


def test_serve_bad_config_exits_3_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps({"models": {"m": {"health_check": {"strategy": "http", "period": -1}}}})
    )
    result = subprocess.run(
        [sys.executable, "-c", MAIN, "serve", str(path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 3
    assert "models.m.health_check.period" in result.stderr
    assert "models.m.health_check.base_url" in result.stderr


def test_serve_options() -> None:
    runner = CliRunner()
    result = runner.invoke(serve, ["--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--show-details", "never|always", "--max-in-flight"):
        assert option in result.output
    bad = runner.invoke(serve, ["x.toml", "--show-details", "sometimes"])
    assert bad.exit_code == 3
