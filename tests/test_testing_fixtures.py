"""The pytest plugin's server fixtures, which plugin tests use instead of copies of their own.

No conftest defines ``healthkit_refused_url`` or ``healthkit_oip_server``: they come
from the ``pytest11`` entry point, like ``healthkit_silent_server``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from healthkit import HealthKit, Status
from healthkit.testing import OipServer


def _get(url: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return int(reply.status), json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_refused_url_refuses_connections(healthkit_refused_url: str) -> None:
    assert healthkit_refused_url.startswith("http://127.0.0.1:")
    port = int(healthkit_refused_url.rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_refused_url_and_port_name_the_same_port(
    healthkit_refused_url: str, healthkit_refused_port: int
) -> None:
    assert healthkit_refused_url == f"http://127.0.0.1:{healthkit_refused_port}"


def test_oip_server_serves_its_three_models(healthkit_oip_server: OipServer) -> None:
    assert type(healthkit_oip_server) is OipServer
    base = f"{healthkit_oip_server.url}/v2/models"
    assert _get(f"{base}/alpha/ready") == (200, {"name": "alpha", "ready": True})
    assert _get(f"{base}/beta/ready") == (503, {"name": "beta", "ready": False})
    flaky = [_get(f"{base}/flaky/ready")[0] for _ in range(4)]
    assert flaky == [200, 503, 200, 503]
    assert _get(f"{base}/nope/ready")[0] == 404
    assert healthkit_oip_server.requests["/v2/models/flaky/ready"] == 4


async def test_a_strategy_checks_the_oip_server_and_the_refused_url(
    healthkit_oip_server: OipServer, healthkit_refused_url: str
) -> None:
    url = healthkit_oip_server.url
    models = {"alpha": url, "beta": url, "gone": healthkit_refused_url}
    tables = {m: {"health_check": {"strategy": "http", "base_url": u}} for m, u in models.items()}
    kit = HealthKit.from_config({"models": tables})
    async with kit:
        statuses = {name: (await kit.acheck(name)).status for name in models}
    assert statuses == {
        "alpha": Status.HEALTHY,
        "beta": Status.UNHEALTHY,
        "gone": Status.UNHEALTHY,
    }


INNER = """
import socket

import pytest

PORTS = []


def test_fails_while_the_server_runs(healthkit_oip_server):
    PORTS.append(healthkit_oip_server.port)
    socket.create_connection(("127.0.0.1", PORTS[0]), timeout=5).close()
    assert False, "fails on purpose"


def test_the_server_of_the_failed_test_is_stopped():
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", PORTS[0]), timeout=5).close()
"""


def test_oip_server_is_stopped_after_a_failing_test(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(INNER)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "1 failed, 1 passed" in done.stdout, done.stdout + done.stderr
    assert "fails on purpose" in done.stdout


def test_every_fixture_and_server_is_documented() -> None:
    from healthkit.testing import _pytest_plugin

    page = (Path(__file__).parent.parent / "docs" / "writing-plugins.md").read_text()
    names = [*_pytest_plugin.__all__, "OipServer", "OipServicer", "serve_grpc", "SilentServer"]
    assert [n for n in names if f"`{n}`" not in page] == []
